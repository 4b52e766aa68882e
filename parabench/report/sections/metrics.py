"""One figure per setup for a derived metric: throughput, efficiency, energy, memory."""
from __future__ import annotations

import pandas as pd

from ..content import Missing, Section
from ..figures import Metric, grid
from .context import HOW, Context

__all__ = ["efficiency_section", "energy_section", "memory_section", "metric_section",
           "throughput_section"]


def metric_section(ctx: Context, sid: str, title: str, metrics: list[Metric],
                   missing: Missing, intro: str = "") -> Section:
    """A section with one figure per setup: a row per metric, a column per batch size,
    colour = family, line style = mode. A metric with no value anywhere becomes a
    missing-data note."""
    s = Section(sid, title)
    for label, stem, g in ctx.setups():
        p = grid(g, ctx.figdir / f"{sid}_{stem}.png", metrics, row="metric", col="batch",
                 style="mode", logx=True, title=f"{title} ({label})")
        fig = ctx.figure(p, f"{title}: {label}.")
        if fig:
            s.figures.append(fig)
    absent = [m.label for m in metrics if m.col not in ctx.ok
              or pd.to_numeric(ctx.ok[m.col], errors="coerce").notna().sum() == 0]
    if len(absent) == len(metrics):
        s.missing.append(missing)
    elif absent:
        s.missing.append(Missing(f"{missing.what}: no values for {', '.join(absent)}",
                                 missing.how))
    if s.figures and intro:
        s.paragraphs.insert(0, intro)
    return s


def throughput_section(ctx: Context) -> Section:
    return metric_section(
        ctx, "throughput", "Throughput", [Metric("throughput", "throughput (img/s)", logy=True)],
        Missing("no latency measurements to derive throughput from", HOW["run"]),
        "Images per second = batch / median latency (a training step counts its batch once).")


def efficiency_section(ctx: Context) -> Section:
    s = metric_section(
        ctx, "efficiency", "Efficiency: achieved TFLOP/s and % of peak",
        [Metric("achieved_tflops", "achieved TFLOP/s", logy=True),
         Metric("peak_fraction", "% of measured peak", percent=True)],
        Missing("efficiency not measured (needs FLOP counts and the device's measured peak)",
                HOW["profile"]),
        "Achieved TFLOP/s = forward FLOPs × batch / latency; the peak is the device's own "
        "large-matmul throughput in the run's dtype, measured once per machine.")
    if not s.figures:
        return s
    ok = ctx.ok
    if "peak_fraction" in ok and pd.to_numeric(ok["peak_fraction"], errors="coerce").notna().any():
        best = ok.loc[pd.to_numeric(ok["peak_fraction"], errors="coerce").idxmax()]
        s.bullets.append(f"Highest share of peak: {100 * best['peak_fraction']:.1f}% "
                         f"({best['family']}, depth {best['depth']}, batch {best['batch']}, "
                         f"{best['mode']}).")
    return s


def energy_section(ctx: Context) -> Section:
    s = metric_section(
        ctx, "energy", "Energy: J/image and power",
        [Metric("energy_j_per_image", "energy (J/image)", logy=True),
         Metric("mean_power_w", "mean power (W)")],
        Missing("energy not measured (needs an NVIDIA GPU with NVML)", HOW["energy"]),
        "From NVML's total-energy counter over windows of at least one second.")
    ok = ctx.ok
    if "throttled" in ok:
        thr = ok[pd.to_numeric(ok["throttled"], errors="coerce") == 1]
        if not thr.empty:
            s.bullets.append(f"{len(thr)} point(s) ran with throttled clocks; their "
                             "latency and energy may be pessimistic.")
    return s


def memory_section(ctx: Context) -> Section:
    kinds = set(ctx.ok["peak_mem_kind"].dropna()) if "peak_mem_kind" in ctx.ok else set()
    label = "peak memory (MiB)"
    intro = ("GPU: torch's peak allocated memory after a reset. " if "GPU allocated" in kinds
             else "") + ("CPU: process peak RSS (includes the Python process itself)."
                         if "RSS" in kinds else "")
    return metric_section(ctx, "memory", "Peak memory",
                          [Metric("peak_mem_mib", label, logy=True)],
                          Missing("peak memory not recorded", HOW["run"]), intro)
