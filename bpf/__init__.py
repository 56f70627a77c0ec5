"""execmon's probe (hids.bpf.c), shipped as package data for sdxfer.loader."""
