"""Output of `sdxfer gen` for the shipped schema (events.py, xfer.h, LAYOUT.md)."""
