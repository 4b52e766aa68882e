"""Benchmark values across commits, and the commits where they stepped.

Two sources, one shape (columns benchmark, params, commit, date, value, unit, plus
machine and source columns that keep series apart):

* asv results (`load_asv_history`): one value per benchmark, parameter combination,
  commit and machine; the value is asv's median for latencies, the tracked number
  otherwise; `date` is the commit's date.
* the parabench store (`load_store_history`): one value per point key and run, the
  median latency in ms; `date` is the run's start, `commit` the run's git commit.

`detect_change_points` looks for *persistent* steps: binary segmentation that splits a
series where two local medians (up to `window` points either side) fit best in least
absolute deviations, and keeps a split only when
  * both sides hold at least `min_segment` points, and the `min_segment` points on each
    side of the split all lie on their own side of the midpoint between the two levels
    (a step that persists, not a blip);
  * the medians differ by at least `min_effect` (relative);
  * the step exceeds `noise_k` robust standard deviations of the noise, taking the larger
    of two estimates: the series' point-to-point noise (1.4826 x median |difference of
    neighbours| / sqrt 2) and the spread of the window's points around their medians.
One outlier moves neither a median of three or more points nor the median of the
differences, so it is never reported, and neither is noise between neighbours.

asv result files are read by `asv_results` (the same reader `compare` uses). numpy and
pandas are imported inside the functions: the command line reads this module's
defaults while building `--help`.
"""
from __future__ import annotations

import math

from .asv_results import iter_results

__all__ = [
    "HISTORY_COLUMNS",
    "CHANGE_COLUMNS",
    "detect_change_points",
    "load_asv_history",
    "load_store_history",
]

HISTORY_COLUMNS = ["benchmark", "params", "commit", "date", "value", "unit"]
CHANGE_COLUMNS = ["benchmark", "params", "commit", "date", "before", "after", "ratio"]
#: Columns that, when present, separate series (a value on another machine is another series).
_SERIES_EXTRA = ("machine", "source")

DEFAULT_MIN_SEGMENT = 3
DEFAULT_MIN_EFFECT = 0.10
DEFAULT_NOISE_K = 3.0


def _empty_history():
    import pandas as pd

    df = pd.DataFrame({c: pd.Series(dtype=object) for c in HISTORY_COLUMNS + list(_SERIES_EXTRA)})
    df["date"] = pd.to_datetime(df["date"], utc=True)
    df["value"] = df["value"].astype(float)
    return df


def _topo_positions(repo) -> dict:
    """commit -> position in `git rev-list --topo-order` (oldest first), {} without git."""
    import subprocess

    if repo is None:
        return {}
    try:
        out = subprocess.run(["git", "rev-list", "--topo-order", "--reverse", "--all"],
                             cwd=repo, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return {}
    if out.returncode != 0:
        return {}
    return {c: i for i, c in enumerate(out.stdout.split())}


def load_asv_history(results_dir, *, repo="."):
    """Every result in an asv results directory (all machines) as one long DataFrame,
    ordered by commit date; commits with the same date (a rebase, a scripted series)
    fall back to their order in the git history of `repo` when that is available."""
    import pandas as pd

    rows = [{"benchmark": r.benchmark, "params": r.params, "commit": r.commit,
             "date": r.date, "value": r.value, "unit": r.unit, "machine": r.machine,
             "source": "asv"}
            for r in iter_results(results_dir) if r.value is not None]
    if not rows:
        return _empty_history()
    df = pd.DataFrame(rows)
    df["date"] = pd.to_datetime(df["date"], unit="ms", utc=True)
    pos = _topo_positions(repo)
    df["_topo"] = df["commit"].map(lambda c: pos.get(c, -1))
    df = df.sort_values(["date", "_topo", "commit", "benchmark", "params"], kind="stable",
                        ignore_index=True)
    return df.drop(columns="_topo")


def load_store_history(db=None):
    """Median latency of every ok point of every stored run, ordered by run time."""
    import numpy as np
    import pandas as pd

    from ..store import Store

    with Store(db, create=False, readonly=True) as s:
        df = s.records_frame(status="ok")
    if df.empty:
        return _empty_history()
    out = pd.DataFrame({
        "benchmark": df["key"],
        "params": [f"device={d}, width={w}, img_size={i}"
                   for d, w, i in zip(df["device"], df["width"], df["img_size"], strict=False)],
        "commit": df["git_commit"],
        "date": pd.to_datetime(df["run_created_at"], utc=True, format="ISO8601"),
        "value": df["median_ms"].astype(float),
        "unit": "ms",
        "machine": df["machine"],
        "source": "store",
        "run_id": df["run_id"],
    })
    out = out[np.isfinite(out["value"])]
    # records come in insertion order; a stable sort keeps runs started in one second apart
    return out.sort_values("date", kind="stable", ignore_index=True)


def _noise_sigma(x) -> float:
    """Robust noise level from neighbour differences: a step adds one large difference,
    an outlier two, so their median still measures the point-to-point noise."""
    import numpy as np

    if x.size < 3:
        return 0.0
    return 1.4826 * float(np.median(np.abs(np.diff(x)))) / math.sqrt(2.0)


class _Segmenter:
    """Binary segmentation with local windows: in an interval, each candidate split i is
    scored by how much two medians (over `min_segment` and over `window` points either
    side, clipped to the interval) reduce the mean absolute deviation against one median;
    the best-scoring candidate that passes `_accept` splits the interval, and both halves
    are searched again."""

    def __init__(self, x, min_segment, min_effect, noise_k, window):
        self.x = x
        self.m = min_segment
        self.w = max(window, min_segment)
        self.min_effect = min_effect
        self.noise_k = noise_k
        self.sigma = _noise_sigma(x)
        self.out: list[int] = []

    def _accept(self, i: int, before: float, after: float, local_sigma: float) -> bool:
        import numpy as np

        step = abs(after - before)
        if step == 0 or step <= self.noise_k * max(self.sigma, local_sigma):
            return False
        if before != 0 and step / abs(before) < self.min_effect:
            return False
        # persistence: the m points on each side of the split sit on their own level
        mid = (before + after) / 2.0
        up = after > before
        pre, post = self.x[i - self.m:i], self.x[i:i + self.m]
        return bool(np.all((post > mid) if up else (post < mid))
                    and np.all((pre < mid) if up else (pre > mid)))

    def split(self, lo: int, hi: int) -> None:
        import numpy as np

        x, m, w = self.x, self.m, self.w
        if hi - lo < 2 * m:
            return
        scored = []
        for width in sorted({m, w}):  # the short window sees short-lived steps too
            for i in range(lo + m, hi - m + 1):
                left, right = x[max(lo, i - width):i], x[i:min(hi, i + width)]
                both = np.concatenate([left, right])
                before, after = float(np.median(left)), float(np.median(right))
                one = np.abs(both - np.median(both)).sum()
                two = np.abs(left - before).sum() + np.abs(right - after).sum()
                resid = np.concatenate([left - before, right - after])
                local = 1.4826 * float(np.median(np.abs(resid)))
                scored.append(((one - two) / both.size, -i, before, after, local))
        for gain, neg_i, before, after, local in sorted(scored, reverse=True):
            i = -neg_i
            if gain > 0 and self._accept(i, before, after, local):
                self.split(lo, i)
                self.out.append(i)
                self.split(i, hi)
                return


def _change_points(values, min_segment: int, min_effect: float, noise_k: float,
                   window: int) -> list[int]:
    import numpy as np

    x = np.asarray(values, dtype=float)
    seg = _Segmenter(x, min_segment, min_effect, noise_k, window)
    seg.split(0, x.size)
    cps = sorted(seg.out)
    # the reported levels are medians of whole segments: drop a change whose whole-segment
    # step falls below the minimum effect, until every remaining one holds
    while cps:
        bounds = [0, *cps, x.size]
        meds = [float(np.median(x[a:b])) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        weak = [j for j in range(len(cps))
                if meds[j] != 0 and abs(meds[j + 1] / meds[j] - 1) < min_effect]
        if not weak:
            break
        cps.pop(weak[0])
    return cps


def detect_change_points(
    df,
    *,
    min_segment: int = DEFAULT_MIN_SEGMENT,
    min_effect: float = DEFAULT_MIN_EFFECT,
    noise_k: float = DEFAULT_NOISE_K,
    window: int | None = None,
):
    """Persistent steps in each series of a history frame (see the module docstring),
    as a DataFrame.

    One row per change: the first commit of the new level, its date, the medians of the
    segments before and after (between neighbouring change points), and after/before.
    """
    import numpy as np
    import pandas as pd

    extra = [c for c in _SERIES_EXTRA if c in df.columns]
    rows = []
    if df is None or df.empty:
        return pd.DataFrame(columns=CHANGE_COLUMNS + extra + ["previous_commit", "unit"])
    keys = ["benchmark", "params"] + extra
    for gkey, g in df.groupby(keys, sort=True, dropna=False):
        g = g.sort_values("date", kind="stable")
        vals = g["value"].to_numpy(dtype=float)
        ok = np.isfinite(vals)
        g, vals = g[ok], vals[ok]
        cps = _change_points(vals, min_segment, min_effect, noise_k,
                             window if window is not None else 2 * min_segment)
        bounds = [0, *cps, len(vals)]
        for j, cp in enumerate(cps):
            before = float(np.median(vals[bounds[j]:cp]))
            after = float(np.median(vals[cp:bounds[j + 2]]))
            row = dict(zip(keys, gkey if isinstance(gkey, tuple) else (gkey,), strict=False))
            row.update(
                commit=g["commit"].iloc[cp], date=g["date"].iloc[cp], before=before,
                after=after, ratio=after / before if before else math.inf,
                previous_commit=g["commit"].iloc[cp - 1], unit=g["unit"].iloc[cp],
            )
            rows.append(row)
    cols = CHANGE_COLUMNS + extra + ["previous_commit", "unit"]
    if not rows:
        return pd.DataFrame(columns=cols)
    return pd.DataFrame(rows)[cols].sort_values(["date", "benchmark", "params"],
                                                kind="stable", ignore_index=True)
