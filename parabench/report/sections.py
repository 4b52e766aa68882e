"""One function per report section: DataFrames in, a `Section` out.

A section whose data is absent still appears, saying what is missing and the command
that produces it (`HOW`), so a reader of a CPU-only report learns how to get the rest.
"""
from __future__ import annotations

import importlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .. import analysis
from ..config import FAMILIES
from .content import Figure, Missing, Section, Table, fmt, table_from_frame
from .figures import Metric, grid, history_figure

__all__ = ["Context", "all_sections"]

#: Commands that produce each kind of data; one place to keep them right.
HOW = {
    "run": "python -m parabench run --preset quick",
    "gpu": "python -m parabench run --preset paper   # on a CUDA machine",
    "profile": "python -m parabench run --profile   # or: python -m parabench profile",
    "energy": "python -m parabench run --preset paper   # on a CUDA machine with NVML "
              "(nvidia-ml-py)",
    "asv": "asv run && python -m parabench report --asv-results .asv/results",
    "compare": "python -m parabench compare BASELINE CONTENDER",
}

SETUP_KEYS = ("device", "dtype", "workload", "width")
ERRBAR = "Error bars: p10–p90 of the raw samples of each point."


@dataclass
class Context:
    """Everything a section may need, loaded once by `build`."""

    records: pd.DataFrame  # every record of the selected runs, any status
    runs: list[dict]  # rows of the runs table
    figdir: Path
    out: Path
    comparison: dict | None = None
    asv_results: Path | None = None
    db: Path | None = None
    ok: pd.DataFrame = field(init=False)
    fits: pd.DataFrame = field(init=False)
    ratios: pd.DataFrame = field(init=False)

    def __post_init__(self):
        if "width" in self.records:  # the one nullable key column; NaN keys break lookups
            self.records = self.records.assign(width=self.records["width"].fillna("-"))
        self.ok = analysis.with_derived(analysis.ok_records(self.records))
        self.fits = _family_sorted(analysis.depth_fits(self.records))
        self.ratios = analysis.parallel_over_serial(self.records)

    def setups(self):
        """(label, stem, frame) per device/dtype/workload/width combination of ok rows."""
        if self.ok.empty:
            return []
        out = []
        groups = list(self.ok.groupby(list(SETUP_KEYS), sort=True, dropna=False))
        for i, (keys, g) in enumerate(groups):
            label = " · ".join(f"{k} {v}" for k, v in zip(SETUP_KEYS, keys, strict=True))
            out.append((label, f"s{i}", g))
        return out

    def figure(self, path: Path | None, caption: str) -> Figure | None:
        if path is None:
            return None
        return Figure(path, path.relative_to(self.out).as_posix(), caption)


def _family_sorted(df: pd.DataFrame) -> pd.DataFrame:
    if df.empty or "family" not in df:
        return df
    rank = {f: i for i, f in enumerate(FAMILIES)}
    key = df["family"].map(lambda f: (rank.get(f, len(rank)), str(f)))
    return df.assign(_k=key).sort_values(["_k"] + [c for c in ("mode", "batch")
                                                   if c in df]).drop(columns="_k")


def _varying(df: pd.DataFrame, keys) -> list[str]:
    return [k for k in keys if k in df and df[k].nunique(dropna=False) > 1]


def _ci(b, lo, hi) -> str:
    if not np.isfinite(b):
        return "–"
    ci = f" [95% CI {fmt(lo)}, {fmt(hi)}]" if np.isfinite(lo) and np.isfinite(hi) else ""
    return f"{b:+.3g} ms/layer{ci}"


# -- sections ----------------------------------------------------------------------------

def verdict(ctx: Context) -> Section:
    s = Section("verdict", "Verdict: is latency flat in depth?")
    if ctx.fits.empty or (ctx.fits["verdict"] == "not fitted").all():
        what = ("no successful measurement in the selected run(s)" if ctx.ok.empty
                else "no regime was measured at two or more depths, so nothing can be fitted")
        s.missing.append(Missing(what, HOW["run"]))
        return s
    ends = _family_sorted(analysis.flatness_end(ctx.fits))
    show = _varying(ends, ("device", "dtype", "workload", "width"))
    s.lead += _headline(ends, show)
    fits = {tuple(f[k] for k in analysis.REGIME_KEYS): f for f in ctx.fits.to_dict("records")}
    for row in ends.to_dict("records"):
        def at(batch, row=row):
            f = fits[tuple(batch if k == "batch" else row[k] for k in analysis.REGIME_KEYS)]
            return (f"{f['verdict']} at batch {batch} (growth x{f['growth']:.2f}, "
                    f"{_ci(f['b_ms_per_layer'], f['b_lo'], f['b_hi'])})")

        batches = row["batches"]
        if row["ends_at"] is None:
            text = f"flat at every measured batch; {at(batches[-1])}"
        elif row["flat_up_to"] is None:
            text = f"not flat even at the smallest batch: {at(batches[0])}"
        else:
            text = f"{at(row['flat_up_to'])}; flatness ends: {at(row['ends_at'])}"
        who = " · ".join(str(row[k]) for k in ["family", "mode"] + show)
        s.bullets.append(f"{who}: {text}.")
    ratio_table = _ratio_headline_table(ctx.ratios)
    if ratio_table:
        s.tables.append(ratio_table)
    s.notes.append(
        "How to read it: per regime, latency = a + b·depth is fitted to the median latency "
        "at each depth; b is the cost of one more layer (Para-Former: one more branch), "
        "with a 95% confidence interval covering both curvature (t-interval on the medians) "
        "and measurement noise (bootstrap of the raw samples). Growth is the deepest "
        "point's latency over the shallowest's. Flat: latency grows slower than "
        f"depth^{analysis.FLAT_ELASTICITY} (over depths 1 to 48: less than "
        f"x{48 ** analysis.FLAT_ELASTICITY:.2f}); "
        f"linear: at least like depth^{analysis.LINEAR_ELASTICITY} (1 to 48: "
        f"x{48 ** analysis.LINEAR_ELASTICITY:.1f} or more); sub-linear in between; "
        "inconclusive: it grows more than flat allows, but the interval of b includes 0.")
    cols = {"family": "family", "mode": "mode", "batch": "batch"}
    cols.update({k: k for k in show})
    cols.update({"depths": "depths", "latency_min_ms": "ms at min", "latency_max_ms":
                 "ms at max", "growth": "growth ×", "b_ms_per_layer": "ms/layer",
                 "ci": "95% CI", "elasticity": "elasticity", "verdict": "verdict"})
    f = ctx.fits
    fits = f.assign(
        depths=[f"{fmt(a)}–{fmt(b)}" for a, b in zip(f["depth_min"], f["depth_max"], strict=True)],
        ci=[f"{fmt(a)} to {fmt(b)}" for a, b in zip(f["b_lo"], f["b_hi"], strict=True)])
    s.tables.append(table_from_frame(fits, "Depth-scaling fit per regime", cols))
    return s


def _headline(ends: pd.DataFrame, show: list[str]) -> list[str]:
    """One or two sentences: which families are flat in depth, and up to which batch."""
    flat, never, noisy = {}, [], []
    for row in ends.to_dict("records"):
        fam = " · ".join(str(row[k]) for k in ["family"] + show)
        if row["flat_up_to"] is None:
            (noisy if row["verdicts"][0] == "inconclusive" else never).append(fam)
        else:
            where = ("at every measured batch" if row["ends_at"] is None
                     else f"up to batch {row['flat_up_to']}, not at {row['ends_at']}")
            flat.setdefault(fam, []).append(f"{row['mode']} {where}")
    out = []
    if flat:
        out.append("Flat in depth: " + "; ".join(
            f"{fam} ({', '.join(parts)})" for fam, parts in flat.items()) + ".")
    else:
        out.append("No family is flat in depth at any measured batch size.")
    nf = list(dict.fromkeys(f for f in never if f not in flat))
    if nf:
        out.append("Not flat in any measured regime: " + ", ".join(nf) + ".")
    nz = list(dict.fromkeys(f for f in noisy if f not in flat and f not in nf))
    if nz:
        out.append("Too noisy to call at the smallest batch (the slope's interval includes "
                   "0): " + ", ".join(nz) + ". Measure longer (--min-time) or on a quiet "
                   "machine.")
    return out


def _ratio_headline_table(ratios: pd.DataFrame) -> Table | None:
    """Parallel over serial latency at each pair's deepest common depth, per batch."""
    if ratios.empty:
        return None
    rows, batches = [], sorted(ratios["batch"].unique())
    for (fam, twin, mode), g in ratios.groupby(["family", "serial", "mode"], sort=True):
        dmax = g["depth"].max()
        at = dict(zip(g[g["depth"] == dmax]["batch"], g[g["depth"] == dmax]["ratio"], strict=True))
        rows.append([f"{fam} / {twin}", str(mode), str(dmax)]
                    + [f"{at[b]:.2f}×" if b in at else "–" for b in batches])
    return Table("Parallel over serial latency at the deepest common depth "
                 "(below 1: the parallel model is faster)",
                 ["pair", "mode", "depth"] + [f"batch {b}" for b in batches], rows)


def environment(ctx: Context) -> Section:
    s = Section("environment", "Environment")
    for run in ctx.runs:
        commit = run.get("git_commit") or "unknown"
        dirty = run.get("git_dirty")
        fields = {
            "run": run.get("run_id"), "status": run.get("status"),
            "started": run.get("created_at"), "finished": run.get("finished_at"),
            "preset": run.get("preset"), "command": run.get("command"),
            "git commit": f"{commit}{' (dirty tree)' if dirty else ''}",
            "machine": run.get("machine"),
        }
        try:
            env = json.loads(run.get("env_json") or "{}")
        except (TypeError, ValueError):
            env = {}
        for k, v in _flatten(env).items():
            if k not in ("git.commit", "git.dirty", "machine"):
                fields[k] = v
        rows = [[k, _short(fmt(v))] for k, v in fields.items()]
        s.tables.append(Table(f"Run {run.get('run_id')}", ["field", "value"], rows))
        if not env:
            s.missing.append(Missing(f"run {run.get('run_id')} recorded no environment",
                                     HOW["run"]))
    return s


def _flatten(d, prefix="") -> dict:
    out = {}
    if not isinstance(d, dict):
        return {prefix.rstrip("."): d}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flatten(v, f"{prefix}{k}."))
        elif isinstance(v, (list, dict)):
            out[f"{prefix}{k}"] = json.dumps(v, default=str)
        else:
            out[f"{prefix}{k}"] = v
    return out


def _short(text: str, n: int = 240) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def latency(ctx: Context) -> Section:
    s = Section("latency", "Latency against depth")
    if ctx.ok.empty:
        s.missing.append(Missing("no successful latency measurement", HOW["run"]))
        return s
    if "noisy" in ctx.ok and (ctx.ok["noisy"] == 1).any():
        n = int((ctx.ok["noisy"] == 1).sum())
        s.bullets.append(f"{n} of {len(ctx.ok)} points are noisy (IQR above 10% of the "
                         "median): their error bars are wide and their fits less certain.")
    s.paragraphs.append(ERRBAR + " One panel per batch size (rows) and execution mode "
                        "(columns). On log-log axes a flat curve is horizontal and a curve "
                        "proportional to depth has slope 1.")
    for label, stem, g in ctx.setups():
        lin = g
        note = ""
        if g["family"].nunique() > 1 and (g["family"] == "resnet").any():
            lin = g[g["family"] != "resnet"]
            note = " ResNet (depth = 18, 34, 50... layers) is shown on the log-log plot only."
        lat = [Metric("median_ms", "latency (ms)", lo="p10_ms", hi="p90_ms")]
        lat_log = [Metric("median_ms", "latency (ms)", logy=True, lo="p10_ms", hi="p90_ms")]
        f1 = grid(lin, ctx.figdir / f"latency_{stem}_linear.png", lat,
                  title=f"Latency vs depth, linear axes ({label})")
        f2 = grid(g, ctx.figdir / f"latency_{stem}_log.png", lat_log, logx=True,
                  title=f"Latency vs depth, log-log axes ({label})")
        for f, cap in ((f1, f"Median latency, linear axes: {label}.{note}"),
                       (f2, f"Median latency, log-log axes: {label}.")):
            fig = ctx.figure(f, cap)
            if fig:
                s.figures.append(fig)
    return s


def ratio(ctx: Context) -> Section:
    s = Section("ratio", "Para-Former over serial ViT at equal depth (equal FLOPs)")
    r = ctx.ratios
    if r.empty:
        have = sorted(ctx.ok["family"].unique()) if not ctx.ok.empty else []
        s.missing.append(Missing(
            "needs a parallel family (paraformer-fused, paraformer-loop or vit-parallel) and "
            "the serial vit measured at the same depths, batch sizes and modes; measured "
            f"families: {', '.join(map(str, have)) or 'none'}", HOW["gpu"]))
        return s
    s.paragraphs.append(
        "Latency of the parallel model divided by the serial ViT of the same width and "
        "number of blocks (equal parameters and FLOPs up to biases). Below 1 (dashed line) "
        "the parallel model is faster.")
    fr = pd.to_numeric(r["flops_ratio"], errors="coerce").dropna()
    if not fr.empty:
        s.paragraphs.append(f"FLOPs ratio parallel/serial over these points: "
                            f"{fr.min():.3f} to {fr.max():.3f}.")
    for i, (keys, g) in enumerate(r.groupby(list(SETUP_KEYS), sort=True)):
        label = " · ".join(f"{k} {v}" for k, v in zip(SETUP_KEYS, keys, strict=True))
        p = grid(g, ctx.figdir / f"ratio_s{i}.png",
                 [Metric("ratio", "parallel / serial latency", logy=True)],
                 row="family", col="mode", hue="batch", logx=True, hline=1.0,
                 title=f"Para-Former over serial at equal depth ({label})")
        fig = ctx.figure(p, f"Latency ratio at equal depth: {label}.")
        if fig:
            s.figures.append(fig)
    wide = r.pivot_table(index=["family", "mode", "batch"], columns="depth", values="ratio")
    wide = _family_sorted(wide.reset_index())
    cols = {"family": "family", "mode": "mode", "batch": "batch"}
    cols.update({d: f"depth {d}" for d in wide.columns if d not in cols})
    s.tables.append(table_from_frame(wide, "Parallel / serial latency ratio", cols,
                                     {d: lambda v: fmt(v) + "×" if pd.notna(v) else "–"
                                      for d in cols if d not in ("family", "mode", "batch")}))
    return s


def _metric_section(ctx: Context, sid: str, title: str, metrics: list[Metric],
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


def throughput(ctx: Context) -> Section:
    return _metric_section(
        ctx, "throughput", "Throughput", [Metric("throughput", "throughput (img/s)", logy=True)],
        Missing("no latency measurements to derive throughput from", HOW["run"]),
        "Images per second = batch / median latency (a training step counts its batch once).")


def efficiency(ctx: Context) -> Section:
    s = _metric_section(
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


def energy(ctx: Context) -> Section:
    s = _metric_section(
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


def memory(ctx: Context) -> Section:
    kinds = set(ctx.ok["peak_mem_kind"].dropna()) if "peak_mem_kind" in ctx.ok else set()
    label = "peak memory (MiB)"
    intro = ("GPU: torch's peak allocated memory after a reset. " if "GPU allocated" in kinds
             else "") + ("CPU: process peak RSS (includes the Python process itself)."
                         if "RSS" in kinds else "")
    return _metric_section(ctx, "memory", "Peak memory",
                           [Metric("peak_mem_mib", label, logy=True)],
                           Missing("peak memory not recorded", HOW["run"]), intro)


def profile(ctx: Context) -> Section:
    s = _metric_section(
        ctx, "profile", "Profiler summary: why the curves look the way they do",
        [Metric("kernels_per_forward", "kernels (GPU) / ops (CPU) per forward", logy=True),
         Metric("gpu_busy_fraction", "GPU busy (% of timed window)", percent=True),
         Metric("cpu_dispatch_ms", "CPU dispatch per forward (ms)", logy=True)],
        Missing("no profiler summary", HOW["profile"]),
        "A launch-bound model shows many kernels per forward and a GPU that sits idle "
        "while the CPU issues them; a compute-bound one keeps the GPU busy.")
    ok = ctx.ok
    if "gpu_busy_fraction" in ok:
        busy = pd.to_numeric(ok["gpu_busy_fraction"], errors="coerce")
        low = ok[busy < 0.5]
        if not low.empty:
            fams = ", ".join(sorted(map(str, low["family"].unique())))
            s.bullets.append(f"{len(low)} point(s) kept the GPU busy less than half the time "
                             f"(launch-bound): {fams}.")
    table = _profile_table(ok)
    if table:
        s.tables.append(table)
    if "trace_dir" in ok and ok["trace_dir"].notna().any():
        n = ok["trace_dir"].nunique()
        s.bullets.append(f"{n} trace folder(s) recorded; open them with "
                         "`tensorboard --logdir <trace_dir>` (paths in data.csv).")
    return s


def _profile_table(ok: pd.DataFrame) -> Table | None:
    """Shallowest -> deepest profiled point per (family, mode, batch)."""
    cols = [c for c in ("kernels_per_forward", "gpu_idle_fraction", "cpu_dispatch_ms")
            if c in ok and pd.to_numeric(ok[c], errors="coerce").notna().any()]
    if not cols:
        return None
    sub = ok[ok[cols].notna().any(axis=1)].sort_values("depth")
    heads = {"kernels_per_forward": "kernels or ops / forward",
             "gpu_idle_fraction": "GPU idle", "cpu_dispatch_ms": "CPU dispatch (ms)"}
    show = {"gpu_idle_fraction": lambda v: "–" if pd.isna(v) else f"{100 * v:.0f}%"}
    rows = []
    for (fam, mode, batch), g in _family_sorted(sub).groupby(
            ["family", "mode", "batch"], sort=False):
        first, last = g.iloc[0], g.iloc[-1]
        row = [str(fam), str(mode), str(batch), f"{first['depth']} → {last['depth']}"]
        for c in cols:
            f = show.get(c, fmt)
            row.append(f"{f(first[c])} → {f(last[c])}")
        rows.append(row)
    return Table("Profiled points, shallowest → deepest (every point is in data.csv)",
                 ["family", "mode", "batch", "depth"] + [heads[c] for c in cols], rows)


def history(ctx: Context) -> Section:
    """asv results across commits; failing those, the store's own runs when it holds
    several. A broken results folder or a failing detector never sinks the report."""
    s = Section("history", "History across commits")
    try:
        hist_mod = importlib.import_module("parabench.history")
    except ImportError:
        s.missing.append(Missing("parabench.history is not available in this install",
                                 HOW["asv"]))
        return s
    hist, source, problems = None, "", []
    d = ctx.asv_results
    if d is not None and Path(d).is_dir():
        try:
            hist = hist_mod.load_asv_history(d)
            source = f"asv results in {d}"
        except Exception as e:  # noqa: BLE001 -- any failure becomes a note
            problems.append(f"could not read asv results in {d}: {type(e).__name__}: {e}")
        if hist is not None and hist.empty:
            problems.append(f"asv results in {d} hold no benchmark values")
            hist = None
    else:
        problems.append(f"no asv results at {d}" if d else "no asv results folder given or found")
    if hist is None and ctx.db is not None and hasattr(hist_mod, "load_store_history"):
        try:
            store_hist = hist_mod.load_store_history(ctx.db)
        except Exception:  # noqa: BLE001
            store_hist = None
        runs = "run_id" if store_hist is not None and "run_id" in store_hist else "commit"
        if store_hist is not None and not store_hist.empty and store_hist[runs].nunique() > 1:
            hist, source = store_hist, f"the runs stored in {ctx.db} (no asv results)"
    if hist is None:
        for p in problems:
            s.missing.append(Missing(p, HOW["asv"]))
        return s
    hist = _with_series(hist)
    try:
        changes = _with_series(hist_mod.detect_change_points(hist))
    except Exception as e:  # noqa: BLE001
        changes = hist.iloc[0:0]
        s.bullets.append(f"Change-point detection failed: {type(e).__name__}: {e}")
    s.paragraphs.append(
        f"{hist['benchmark'].nunique()} benchmark(s) over {hist['commit'].nunique()} "
        f"commit(s) from {source}; {len(changes)} change point(s), i.e. steps that "
        "persist rather than noise between neighbours.")
    fig = ctx.figure(history_figure(hist, changes, ctx.figdir / "history.png"),
                     "Values per commit, oldest to newest; red rings mark change points "
                     "(the benchmarks with the most change points are shown).")
    if fig:
        s.figures.append(fig)
    if not changes.empty:
        s.tables.append(table_from_frame(
            changes.sort_values("date"), "Change points",
            {"benchmark": "benchmark", "series": "parameters", "commit": "commit",
             "date": "date", "before": "before", "after": "after", "ratio": "after / before"},
            {"commit": lambda c: str(c)[:10], "date": lambda t: str(t)[:19],
             "ratio": lambda v: "–" if pd.isna(v) else f"{v:.2f}×"}))
    return s


def _with_series(df: pd.DataFrame) -> pd.DataFrame:
    """A `series` label per line: the parameters, plus the machine when there are several."""
    if df is None or df.empty or "params" not in df:
        return df if df is not None else pd.DataFrame()
    label = df["params"].astype(str)
    if "machine" in df and df["machine"].nunique(dropna=True) > 1:
        label = label + " @ " + df["machine"].astype(str)
    return df.assign(series=label)


_REGRESSION_WORDS = {"slower", "failed", "regression", "regressed", "worse"}
_COMPARE_COLUMNS = ("key", "benchmark", "family", "depth", "batch", "mode", "baseline",
                    "contender", "unit", "ratio", "ci_low", "ci_high", "p_value", "verdict",
                    "note")


def _comparison_rows(result) -> list[dict]:
    """Rows of a stored comparison, whatever its exact shape (list of dicts, or a dict of
    per-benchmark dicts, possibly under 'rows'/'benchmarks'/'results')."""
    if isinstance(result, dict):
        for k in ("rows", "benchmarks", "results", "items"):
            if isinstance(result.get(k), (list, dict)):
                return _comparison_rows(result[k])
        if result and all(isinstance(v, dict) for v in result.values()):
            return [{"benchmark": k, **v} for k, v in result.items()]
        return []
    if isinstance(result, list):
        return [r for r in result if isinstance(r, dict)]
    return []


def _is_regression(row: dict) -> bool:
    if row.get("regressed") is True or row.get("regression") is True:
        return True
    return any(str(row.get(k, "")).lower() in _REGRESSION_WORDS
               for k in ("verdict", "status", "change", "result"))


def comparison(ctx: Context) -> Section:
    s = Section("comparison", "Regressions in the last comparison")
    c = ctx.comparison
    if not c:
        s.missing.append(Missing("no comparison stored in this database", HOW["compare"]))
        return s
    rows = _comparison_rows(c.get("result"))
    s.paragraphs.append(f"Baseline {c.get('baseline')} against contender {c.get('contender')}, "
                        f"compared {c.get('created_at')}.")
    if not rows:
        s.paragraphs.append("The stored result has no per-benchmark rows: "
                            + _short(json.dumps(c.get("result"), default=str), 400))
        return s
    frame = pd.DataFrame(rows)
    frame = frame[[k for k in frame.columns if frame[k].map(
        lambda v: not isinstance(v, (list, dict))).all()]]
    preferred = [k for k in _COMPARE_COLUMNS if k in frame]
    frame = frame[preferred + [k for k in frame.columns if k not in preferred]]
    reg = frame[[_is_regression(r) for r in rows]]
    result = c.get("result") if isinstance(c.get("result"), dict) else {}
    if result.get("mixed"):
        s.bullets.append("Compared across different machines or environments: "
                         + "; ".join(map(str, result.get("mixed_reasons") or [])) + ".")
    if isinstance(result.get("counts"), dict):
        s.bullets.append("Verdicts: " + ", ".join(
            f"{n} {v}" for v, n in sorted(result["counts"].items(), key=str)) + ".")
    s.lead.append(f"{len(reg)} regression(s) among {len(frame)} benchmark(s)."
                  if len(reg) else f"No regression among {len(frame)} benchmark(s).")
    ratio_fmt = {k: (lambda v: "–" if pd.isna(v) else f"{v:.3f}×") for k in ("ratio",)}
    if len(reg):
        s.tables.append(table_from_frame(reg, "Regressions", formats=ratio_fmt))
    s.tables.append(table_from_frame(frame, "All compared benchmarks", formats=ratio_fmt))
    return s


def not_measured(ctx: Context) -> Section:
    s = Section("not-measured", "Points not measured (skipped, out of memory, errors)")
    bad = ctx.records[ctx.records["status"] != "ok"] if not ctx.records.empty else ctx.records
    if bad.empty:
        s.paragraphs.append("Every point of the selected run(s) was measured.")
        return s
    counts = bad["status"].value_counts()
    s.bullets.append(", ".join(f"{n} {st}" for st, n in counts.items()) + ".")
    s.tables.append(table_from_frame(
        _family_sorted(bad), "Points without a latency",
        {k: k for k in ("family", "depth", "batch", "dtype", "mode", "workload", "device",
                        "status", "reason")},
        {"reason": lambda v: _short(fmt(v), 300)}))
    return s


def files(ctx: Context, written: list[tuple[str, str]]) -> Section:
    """`written`: (relative path, description) of every file next to index.html."""
    s = Section("files", "Files")
    s.paragraphs.append("Written next to this page (figures are embedded in it as well):")
    s.links.extend(written)
    return s


SECTIONS = (verdict, environment, latency, ratio, throughput, efficiency, energy, memory,
            profile, history, comparison, not_measured)


def all_sections(ctx: Context) -> list[Section]:
    return [make(ctx) for make in SECTIONS]
