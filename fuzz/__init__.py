"""Fuzz harnesses for every parser of provider- or co-writer-controlled bytes (see README.md)."""
