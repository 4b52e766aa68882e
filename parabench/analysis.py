"""Pure pandas/numpy analysis of stored records: depth-scaling fits, verdicts, ratios.

Everything here takes and returns DataFrames shaped like `Store.records_frame()`; nothing
draws, prints or touches the database, so the report and tests share one implementation.

Depth scaling
-------------
For every regime -- one (family, device, dtype, mode, workload, width, batch) -- we fit

    latency_ms = a + b * depth

by ordinary least squares on the per-depth medians. `b` is the cost of one extra layer
(for Para-Former, one extra branch) in milliseconds. Its 95% confidence interval is the
envelope of two intervals, so that it covers both ways the slope can be wrong:

* the t-interval of the OLS slope on the medians (n_depths - 2 degrees of freedom), which
  widens when the curve is not a straight line; needs three or more depths;
* a percentile bootstrap over the raw samples (resample every depth's samples, take the
  medians, refit), which widens when the measurements are noisy; works with two depths.

Fitting the raw samples directly would treat thousands of correlated timings as
independent and give a far too narrow interval, hence the medians.

The verdict uses the *depth elasticity* of the measured curve,

    growth     = median(latency at deepest) / median(latency at shallowest)
    elasticity = ln(growth) / ln(depth_max / depth_min)

which is 0 when latency ignores depth and 1 when it is proportional to depth, whatever
the depth range. The rule, with the thresholds as module constants:

* **flat in depth** -- elasticity < FLAT_ELASTICITY (0.1: over depths 1..48 this means
  growing less than 1.47x);
* **inconclusive** -- the curve grows by more than that, but the slope's CI reaches down
  to 0 or below: the measurements are too noisy to tell growth from noise (they are not
  called flat, which would be the claim under test winning by default);
* **linear in depth** -- elasticity >= LINEAR_ELASTICITY (0.5: over 1..48 at least 6.9x)
  and the slope's CI is above 0;
* **sub-linear in depth** -- everything in between: latency grows with depth, but much
  less than depth does (e.g. a fused model whose fixed launch cost still dominates).

"Flatness ends" at the smallest batch size whose regime is not flat (inconclusive
included), provided every smaller measured batch was flat.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .families import serial_twins

__all__ = [
    "FLAT_ELASTICITY",
    "LINEAR_ELASTICITY",
    "REGIME_KEYS",
    "SERIAL_TWIN",
    "DepthFit",
    "depth_fits",
    "fit_depth",
    "flatness_end",
    "ok_records",
    "parallel_over_serial",
    "split_machines",
    "with_derived",
]

FLAT_ELASTICITY = 0.1
LINEAR_ELASTICITY = 0.5
CONFIDENCE = 0.95
N_BOOTSTRAP = 400

#: Columns that identify one depth-scaling curve (everything but depth).
REGIME_KEYS = ("family", "device", "dtype", "mode", "workload", "width", "batch")

#: Parallel families and the serial families they are compared with at equal depth
#: (same width, same number of blocks: equal parameters, and equal FLOPs up to biases
#: except for paraformer-least-work, which does less work for the same output; its
#: `flops_ratio` says how much). `paraformer-serial` is Para-Former's own code with one
#: branch of depth d, so parallel/paraformer-serial isolates parallelism from framework
#: overhead; parallel/vit is what users compare against. Declared by each family in
#: `parabench.families`.
SERIAL_TWIN = serial_twins()


_FIT_COLUMNS = [
    "a_ms", "b_ms_per_layer", "b_lo", "b_hi", "n_depths", "depth_min", "depth_max",
    "latency_min_ms", "latency_max_ms", "growth", "elasticity", "verdict", "why",
]


class DepthFit(dict):
    """One regime's fit; a dict so it drops straight into a DataFrame row.

    Keys: a_ms, b_ms_per_layer, b_lo, b_hi, n_depths, depth_min, depth_max,
    latency_min_ms, latency_max_ms, growth, elasticity, verdict, why.
    """


def split_machines(df: pd.DataFrame) -> pd.DataFrame:
    """Records measured on several machines (one run fanned out, or several runs) get the
    machine in their `device` ("cuda @ host/H100"), so that every curve, fit and ratio,
    all keyed by device, is taken within one machine and never across two."""
    if df.empty or "machine" not in df or df["machine"].nunique(dropna=True) < 2:
        return df
    return df.assign(device=df["device"].astype(str) + " @ " + df["machine"].fillna("?").astype(str))


def ok_records(df: pd.DataFrame) -> pd.DataFrame:
    """Rows that carry a latency: status ok and a finite median."""
    if df.empty:
        return df
    keep = (df["status"] == "ok") & pd.to_numeric(df["median_ms"], errors="coerce").notna()
    return df[keep]


def with_derived(df: pd.DataFrame) -> pd.DataFrame:
    """Copy of `df` with convenience columns filled where the store left gaps.

    * throughput (img/s) from batch / median when missing;
    * achieved_tflops from forward FLOPs for inference rows when missing (a training
      step's FLOPs are not just the forward's, so those stay missing);
    * peak_mem_mib: GPU peak allocated when measured, else process peak RSS, in MiB;
    * gpu_idle_fraction = 1 - gpu_busy_fraction.
    """
    out = df.copy()
    if out.empty:
        for c in ("peak_mem_mib", "gpu_idle_fraction"):
            out[c] = pd.Series(dtype=float)
        return out
    med = _num(out, "median_ms")
    out["throughput"] = _num(out, "throughput").fillna(out["batch"] / (med / 1e3))
    est = _num(out, "flops") * out["batch"] / (med / 1e3) / 1e12
    est = est.where(out["workload"] == "infer")
    out["achieved_tflops"] = _num(out, "achieved_tflops").fillna(est)
    gpu, rss = _num(out, "peak_mem_allocated"), _num(out, "peak_rss")
    out["peak_mem_mib"] = gpu.fillna(rss) / 2**20
    out["peak_mem_kind"] = np.where(gpu.notna(), "GPU allocated",
                                    np.where(rss.notna(), "RSS", None))
    out["gpu_idle_fraction"] = 1.0 - _num(out, "gpu_busy_fraction")
    return out


def _num(df: pd.DataFrame, col: str) -> pd.Series:
    """Column as floats; all-NaN when the column is absent."""
    if col not in df:
        return pd.Series(np.nan, index=df.index, dtype=float)
    return pd.to_numeric(df[col], errors="coerce").astype(float)


def _ols(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Intercept, slope and the slope's standard error (nan below three points)."""
    xm, ym = x.mean(), y.mean()
    sxx = float(((x - xm) ** 2).sum())
    b = float(((x - xm) * (y - ym)).sum() / sxx)
    a = float(ym - b * xm)
    if len(x) < 3:
        return a, b, math.nan
    resid = y - (a + b * x)
    s2 = float((resid**2).sum() / (len(x) - 2))
    return a, b, math.sqrt(s2 / sxx)


def _bootstrap_slope(depths, samples, rng, n_boot: int) -> np.ndarray:
    """Slopes refitted on medians of resampled raw samples, one per bootstrap round."""
    x = np.asarray(depths, dtype=float)
    meds = np.empty((n_boot, len(x)))
    for j, s in enumerate(samples):
        s = np.asarray(s, dtype=float)
        idx = rng.integers(0, len(s), size=(n_boot, len(s)))
        meds[:, j] = np.median(s[idx], axis=1)
    xc = x - x.mean()
    return (meds - meds.mean(axis=1, keepdims=True)) @ xc / float((xc**2).sum())


def fit_depth(depths, samples, *, seed: int = 0, n_boot: int = N_BOOTSTRAP) -> DepthFit:
    """Fit latency = a + b*depth for one regime.

    `depths` lists the depth of each point; `samples` the raw latencies (ms) of each point
    (a list of floats; a single median is acceptable). Points of equal depth are pooled.
    """
    from scipy.special import stdtrit  # scipy.stats would cost seconds to import

    pooled: dict[int, list[float]] = {}
    for d, s in zip(depths, samples, strict=True):
        vals = [float(v) for v in np.atleast_1d(s) if np.isfinite(v)]
        if vals:
            pooled.setdefault(int(d), []).extend(vals)
    ds = sorted(pooled)
    fit = DepthFit(n_depths=len(ds), depth_min=ds[0] if ds else None,
                   depth_max=ds[-1] if ds else None)
    if len(ds) < 2:
        fit.update(a_ms=math.nan, b_ms_per_layer=math.nan, b_lo=math.nan, b_hi=math.nan,
                   latency_min_ms=math.nan, latency_max_ms=math.nan, growth=math.nan,
                   elasticity=math.nan, verdict="not fitted",
                   why="needs at least two depths")
        return fit
    x = np.array(ds, dtype=float)
    y = np.array([np.median(pooled[d]) for d in ds])
    a, b, se = _ols(x, y)
    alpha = 1.0 - CONFIDENCE
    los, his = [], []
    if np.isfinite(se):
        t = float(stdtrit(len(x) - 2, 1 - alpha / 2))
        los.append(b - t * se)
        his.append(b + t * se)
    if any(len(pooled[d]) > 1 for d in ds):
        boot = _bootstrap_slope(ds, [pooled[d] for d in ds], np.random.default_rng(seed), n_boot)
        lo, hi = np.percentile(boot, [100 * alpha / 2, 100 * (1 - alpha / 2)])
        los.append(float(lo))
        his.append(float(hi))
    b_lo = min(los) if los else math.nan
    b_hi = max(his) if his else math.nan
    growth = float(y[-1] / y[0]) if y[0] > 0 else math.nan
    elasticity = (math.log(growth) / math.log(x[-1] / x[0])) if growth > 0 else math.nan
    verdict, why = _verdict(growth, elasticity, b_lo, ds[0], ds[-1])
    fit.update(a_ms=a, b_ms_per_layer=b, b_lo=b_lo, b_hi=b_hi, latency_min_ms=float(y[0]),
               latency_max_ms=float(y[-1]), growth=growth, elasticity=elasticity,
               verdict=verdict, why=why)
    return fit


def _verdict(growth, elasticity, b_lo, dmin, dmax) -> tuple[str, str]:
    span = f"x{growth:.2f} from depth {dmin} to {dmax}"
    if not np.isfinite(elasticity):
        return "not fitted", "latency at the shallowest depth is not positive"
    if elasticity < FLAT_ELASTICITY:
        return "flat", f"{span} (elasticity {elasticity:.2f} < {FLAT_ELASTICITY})"
    if np.isfinite(b_lo) and b_lo <= 0:
        return "inconclusive", f"{span}, but the slope's 95% CI includes 0: too noisy to tell"
    if elasticity >= LINEAR_ELASTICITY:
        return "linear", f"{span} (elasticity {elasticity:.2f} >= {LINEAR_ELASTICITY})"
    return "sub-linear", f"{span} (elasticity {elasticity:.2f})"


def depth_fits(df: pd.DataFrame, *, seed: int = 0) -> pd.DataFrame:
    """One row per regime (REGIME_KEYS) with the DepthFit columns. Uses ok rows only;
    raw samples where stored, else the median."""
    ok = ok_records(df)
    cols = list(REGIME_KEYS) + _FIT_COLUMNS
    if ok.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    for keys, g in ok.groupby(list(REGIME_KEYS), sort=True, dropna=False):
        samples = [
            s if isinstance(s, list) and s else [m]
            for s, m in zip(g.get("samples_ms", [[]] * len(g)), g["median_ms"], strict=True)
        ]
        fit = fit_depth(g["depth"].tolist(), samples, seed=seed)
        rows.append({**dict(zip(REGIME_KEYS, keys, strict=True)), **fit})
    return pd.DataFrame(rows, columns=cols)



def flatness_end(fits: pd.DataFrame) -> pd.DataFrame:
    """Per (family, device, dtype, mode, workload, width): the batch sizes measured, the
    largest batch up to which every regime was flat (`flat_up_to`, None if the smallest
    batch is already not flat) and the batch where flatness ends (`ends_at`, None if the
    family stayed flat at every measured batch)."""
    keys = [k for k in REGIME_KEYS if k != "batch"]
    cols = keys + ["batches", "verdicts", "flat_up_to", "ends_at"]
    fitted = fits[fits["verdict"] != "not fitted"] if not fits.empty else fits
    if fitted.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    for k, g in fitted.sort_values("batch").groupby(keys, sort=True, dropna=False):
        flat_up_to, ends_at = None, None
        for batch, verdict in zip(g["batch"], g["verdict"], strict=True):
            if verdict == "flat":
                flat_up_to = int(batch)
            else:
                ends_at = int(batch)
                break
        rows.append({**dict(zip(keys, k, strict=True)), "batches": [int(b) for b in g["batch"]],
                     "verdicts": list(g["verdict"]), "flat_up_to": flat_up_to,
                     "ends_at": ends_at})
    out = pd.DataFrame(rows, columns=cols)
    for c in ("flat_up_to", "ends_at"):  # keep None as None, not NaN in a float column
        out[c] = pd.Series([r[c] for r in rows], dtype=object, index=out.index)
    return out


def parallel_over_serial(df: pd.DataFrame) -> pd.DataFrame:
    """Latency of each parallel family over each of its serial twins (SERIAL_TWIN) at equal depth,
    batch, dtype, mode, workload, device and width. ratio < 1: the parallel model is
    faster. `flops_ratio` (parallel FLOPs / serial FLOPs) shows how equal the work is."""
    ok = ok_records(df)
    keys = ["device", "dtype", "mode", "workload", "width", "batch", "depth"]
    cols = ["family", "serial"] + keys + [
        "median_ms", "serial_median_ms", "ratio", "flops_ratio"]
    if ok.empty:
        return pd.DataFrame(columns=cols)
    busy = {"busy": ("busy", lambda s: any(v is True for v in s))} if "busy" in ok else {}
    agg = ok.groupby(["family"] + keys, as_index=False, dropna=False).agg(
        median_ms=("median_ms", "median"), flops=("flops", "median"), **busy)
    out = []
    for fam, twin in ((f, t) for f, twins in SERIAL_TWIN.items() for t in twins):
        par = agg[agg["family"] == fam]
        ser = agg[agg["family"] == twin]
        if par.empty or ser.empty:
            continue
        m = par.merge(ser, on=keys, suffixes=("", "_serial"))
        if m.empty:
            continue
        m["serial"] = twin
        m["serial_median_ms"] = m["median_ms_serial"]
        m["ratio"] = m["median_ms"] / m["serial_median_ms"]
        m["flops_ratio"] = pd.to_numeric(m["flops"], errors="coerce") / pd.to_numeric(
            m["flops_serial"], errors="coerce")
        if busy:  # either side measured beside other heavy work (parabench.measure.load)
            m["busy"] = m["busy"] | m["busy_serial"]
        out.append(m[cols + list(busy)])
    if not out:
        return pd.DataFrame(columns=cols)
    return pd.concat(out, ignore_index=True).sort_values(
        ["family"] + keys).reset_index(drop=True)
