"""Measurement primitives, one concern a module: preparing a point (prepare), the device
funnel (device: sync, free memory), timing, memory, flops, nvml, telemetry, profile,
efficiency, and the extra passes that run after the latency pass."""
