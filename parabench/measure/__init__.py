"""Measurement primitives, one concern a module: timing, memory, flops, nvml, profile."""
