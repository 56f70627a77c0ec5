"""sdxfer's sample probe (hids.bpf.c) and the BPF helper headers probes share, shipped as package data."""
