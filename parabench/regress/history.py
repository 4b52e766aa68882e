"""Benchmark values across commits, and the commits where they stepped.

Two sources, one shape (columns benchmark, params, commit, date, value, unit, order,
plus machine and source columns that keep series apart):

* asv results (`load_asv_history`): one value per benchmark, parameter combination,
  commit and machine; the value is asv's median for latencies, the tracked number
  otherwise (instructions per forward included); only commits on the branch's
  first-parent line, `order` their position on it.
* the parabench store (`load_store_history`): one value per point key and run, the
  median latency in ms (or the instruction count); `order` is the order the runs ran.

`detect_change_points` uses asv's own step detection (`asv.step_detect.detect_steps`,
the penalised piecewise-constant fit behind asv's regressions page), then keeps the
steps that count by asv's regression rule: neighbouring levels closer than
`min_effect` are one level, and an excursion shorter than `min_segment` commits that
returns to where it was is a blip. Unlike asv's regressions page (which lists only
regressions still present), every step is reported, up or down, with the commit
range from the fit: the last commit at the old level and the first at the new one.

How many commits a step needs (asv's detection on synthetic series, 50 per cell):
with counts (noise ~0.3%) one commit after the step finds it. With timings of 2%
noise, a 30% step was found in 49-50 of 50 series with 2-3 commits on each side and
no false step in 50 flat series; with 5% noise a 30% step was found in only 27-30 of
50 with 5-10 commits on each side, and a 10% step almost never: history of noisy
timings shows only large steps; use counts (or interleaved `compare`) for small ones.
On the 2-core development VM, asv timings of six commits of identical code spread by a
median 1.48x per benchmark: planted steps of 5-30% were found in 0 of 15 real series
and false steps appeared in 6 of 20 (README has the table); there, keep history of
counts.

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
    "first_parent_line",
    "load_asv_history",
    "load_store_history",
]

HISTORY_COLUMNS = ["benchmark", "params", "commit", "date", "value", "unit", "order"]
CHANGE_COLUMNS = ["benchmark", "params", "commit", "date", "before", "after", "ratio"]
#: Columns that, when present, separate series (a value on another machine is another series).
_SERIES_EXTRA = ("machine", "source")

#: asv's `min_size`: a step whose new level lasts fewer commits is accepted only when
#: the values do not return to the old level afterwards (asv's own rule)
DEFAULT_MIN_SEGMENT = 2
#: asv's `threshold`: smaller relative steps are merged into their neighbours
DEFAULT_MIN_EFFECT = 0.10


def _empty_history():
    import pandas as pd

    df = pd.DataFrame({c: pd.Series(dtype=object) for c in HISTORY_COLUMNS + list(_SERIES_EXTRA)})
    df["date"] = pd.to_datetime(df["date"], utc=True)
    df["value"] = df["value"].astype(float)
    return df


def _columns_first(df):
    """HISTORY_COLUMNS first, the series columns after, whatever built the frame."""
    return df[HISTORY_COLUMNS + [c for c in df.columns if c not in HISTORY_COLUMNS]]


def first_parent_line(repo, branch: str = "HEAD") -> list[str] | None:
    """Commits of `branch`'s first-parent line, oldest first (as `asv publish` walks a
    branch: a merged side branch shows as its merge commit only); None without git."""
    import subprocess

    if repo is None:
        return None
    try:
        out = subprocess.run(["git", "rev-list", "--first-parent", "--reverse", branch],
                             cwd=repo, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.split() if out.returncode == 0 else None


def load_asv_history(results_dir, *, repo=".", branch: str = "HEAD"):
    """Every result in an asv results directory (all machines) as one long DataFrame in
    commit order: only commits on `branch`'s first-parent line in `repo`, `order` their
    position on it (git's order, never a sort of dates: a rebase gives many commits one
    date). Results of other commits (a side branch, `asv continuous` on a pull request)
    are left out; `df.attrs["off_line"]` counts them. Without git (`repo` None or not a
    repository) every commit is kept, ordered by date, and `df.attrs["order"]` says so."""
    import pandas as pd

    rows = [{"benchmark": r.benchmark, "params": r.params, "commit": r.commit,
             "date": r.date, "value": r.value, "unit": r.unit, "machine": r.machine,
             "source": "asv"}
            for r in iter_results(results_dir) if r.value is not None]
    if not rows:
        return _empty_history()
    df = pd.DataFrame(rows)
    df["date"] = pd.to_datetime(df["date"], unit="ms", utc=True)
    line = first_parent_line(repo, branch)
    if line is None:
        df = df.sort_values(["date", "commit", "benchmark", "params"], kind="stable",
                            ignore_index=True)
        df["order"] = df.groupby("commit", sort=False).ngroup()
        df = _columns_first(df)
        df.attrs["order"] = "commit date (no git repository to order by)"
        return df
    pos = {c: i for i, c in enumerate(line)}
    df["order"] = df["commit"].map(pos)
    off = df["order"].isna()
    n_off = int(df.loc[off, "commit"].nunique())
    df = df[~off].astype({"order": int}).sort_values(
        ["order", "benchmark", "params"], kind="stable", ignore_index=True)
    df = _columns_first(df)
    df.attrs["off_line"] = n_off
    df.attrs["order"] = f"first-parent line of {branch}"
    return df


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
    out = out.sort_values("date", kind="stable", ignore_index=True)
    out["order"] = out.groupby("run_id", sort=False).ngroup()  # runs, in the order they ran
    return _columns_first(out)


def _levels(vals, min_effect: float, min_segment: int) -> list[list[int]]:
    """asv's piecewise-constant fit of `vals` (`asv.step_detect.detect_steps`) as a list
    of segments (lists of indices), with the steps that do not count merged away:
    neighbours within `min_effect` of each other, and blips (a segment shorter than
    `min_segment` between two neighbours that agree), as asv's regression rule does."""
    import numpy as np
    from asv.step_detect import detect_steps

    segs = [list(range(left, right)) for left, right, *_ in detect_steps(list(vals))]

    def level(seg):
        return float(np.median([vals[i] for i in seg]))

    def close(x, y):
        return min(x, y) > 0 and max(x, y) / min(x, y) - 1 < min_effect

    changed = True
    while changed and len(segs) > 1:
        changed = False
        for j in range(len(segs) - 1):  # neighbours at the same level: one segment
            if close(level(segs[j]), level(segs[j + 1])):
                segs[j:j + 2] = [segs[j] + segs[j + 1]]
                changed = True
                break
        else:
            for j in range(1, len(segs) - 1):  # a short excursion that comes back: a blip
                if len(segs[j]) < min_segment and close(level(segs[j - 1]), level(segs[j + 1])):
                    segs[j - 1:j + 2] = [segs[j - 1] + segs[j] + segs[j + 1]]
                    changed = True
                    break
    if len(segs) > 1 and len(segs[-1]) < min_segment:  # too new to tell from a blip
        segs[-2:] = [segs[-2] + segs[-1]]
    return segs


def detect_change_points(
    df,
    *,
    min_segment: int = DEFAULT_MIN_SEGMENT,
    min_effect: float = DEFAULT_MIN_EFFECT,
):
    """Steps in each series of a history frame, found by asv's step detection (see the
    module docstring), as a DataFrame.

    One row per step: `previous_commit` .. `commit` is the range asv gives (the last
    commit at the old level, the first at the new one; further apart when commits
    between them have no value), its date, the medians of the neighbouring segments
    (between the steps found), and after/before. Series are walked in `order` (their
    position on the first-parent line), never by date.
    """
    import numpy as np
    import pandas as pd

    extra = [c for c in _SERIES_EXTRA if c in df.columns] if df is not None else []
    cols = CHANGE_COLUMNS + extra + ["previous_commit", "unit"]
    rows = []
    if df is None or df.empty:
        return pd.DataFrame(columns=cols)
    keys = ["benchmark", "params"] + extra
    for gkey, g in df.groupby(keys, sort=True, dropna=False):
        g = g.sort_values("order" if "order" in g else "date", kind="stable")
        vals = g["value"].to_numpy(dtype=float)
        ok = np.isfinite(vals)
        g, vals = g[ok], vals[ok]
        if vals.size < 2:
            continue
        segs = _levels(vals, min_effect, min_segment)
        for old, new in zip(segs[:-1], segs[1:], strict=True):
            before_i, after_i = old[-1], new[0]
            before = float(np.median(vals[old]))
            after = float(np.median(vals[new]))
            row = dict(zip(keys, gkey if isinstance(gkey, tuple) else (gkey,), strict=False))
            row.update(
                commit=g["commit"].iloc[after_i], date=g["date"].iloc[after_i], before=before,
                after=after, ratio=after / before if before else math.inf,
                previous_commit=g["commit"].iloc[before_i], unit=g["unit"].iloc[after_i],
            )
            rows.append(row)
    if not rows:
        return pd.DataFrame(columns=cols)
    return pd.DataFrame(rows)[cols].reset_index(drop=True)
