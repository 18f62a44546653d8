"""Engines move bytes: read input, call the core, persist state and offsets, publish output."""
