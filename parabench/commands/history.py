"""`parabench history`: values across commits (asv results and stored runs), change points."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from ._options import DefaultsHelp, add_db
from ._values import fraction, positive_int


def register(sub) -> None:
    from ..regress.history import DEFAULT_MIN_EFFECT, DEFAULT_MIN_SEGMENT

    p = sub.add_parser(
        "history", help="benchmark values across commits and the commits where they stepped",
        description="Reads asv results (every machine; only commits on the first-parent "
        "line of --branch, in git's order) and the store's runs (in the order they ran), "
        "and reports the steps that asv's own step detection (asv.step_detect) finds, with "
        "the commit range it gives. A step needs to be at least --min-effect large; one "
        "whose new level lasts fewer than --min-segment commits counts only if it does not "
        "return to the old level.",
        formatter_class=DefaultsHelp,
    )
    p.add_argument("--asv-results", type=Path, default=None, metavar="DIR",
                   help="asv results directory (default: .asv/results if it exists)")
    add_db(p)
    p.add_argument("--repo", help="git repository whose first-parent line orders the "
                   "commits of asv results (default: the current directory)")
    p.add_argument("--branch", help="branch (or ref) whose first-parent line is followed "
                   "(default: HEAD)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--min-segment", type=positive_int, default=DEFAULT_MIN_SEGMENT,
                   help="commits a new level must last (asv's min_size)")
    p.add_argument("--min-effect", type=fraction, default=DEFAULT_MIN_EFFECT,
                   help="smallest relative step reported (asv's threshold; 0.1 or 10%%)")
    p.set_defaults(func=main)


def _sources(args):
    from ..errors import UsageError
    from ..regress.asv_results import default_asv_results
    from ..regress.history import first_parent_line, load_asv_history, load_store_history
    from ..store import default_db_path

    frames, notes = [], []
    asv_dir = args.asv_results
    if asv_dir is not None and not asv_dir.is_dir():
        raise UsageError(f"no asv results directory at {asv_dir}")
    if asv_dir is None:
        asv_dir = default_asv_results()
    given = [f for f in ("repo", "branch") if getattr(args, f) is not None]
    repo, branch = args.repo or ".", args.branch or "HEAD"
    if given and asv_dir is None:  # they order asv results only: taken silently, a typo hides
        raise UsageError(f"--{' and --'.join(given)}: only asv results are put in commit "
                         "order, and there are none here; pass --asv-results DIR")
    if args.repo is not None and not Path(args.repo).is_dir():
        raise UsageError(f"--repo {args.repo}: no such directory")
    if given and first_parent_line(repo, branch) is None:
        # asked for by name: a wrong one must not fall back to date order unnoticed
        raise UsageError(f"no branch {branch!r} in a git repository at {repo}")
    if asv_dir is not None:
        df = load_asv_history(asv_dir, repo=repo, branch=branch)
        frames.append(df)
        off = df.attrs.get("off_line", 0)
        notes.append(f"asv results {asv_dir}: {df['commit'].nunique()} commits, "
                     f"{len(df)} values, ordered by {df.attrs.get('order', 'git')}"
                     + (f"; {off} commit(s) off that line left out" if off else ""))
    db = args.db if args.db is not None else default_db_path()
    if args.db is not None and not Path(db).exists():
        raise UsageError(f"no results database at {db}")
    if Path(db).exists():
        df = load_store_history(db)
        frames.append(df)
        n_runs = df["run_id"].nunique() if "run_id" in df else 0
        notes.append(f"store {db}: {n_runs} runs, {len(df)} values")
    if not frames:
        raise UsageError("no history to read: no .asv/results here and no results database; "
                         "pass --asv-results DIR or --db PATH")
    return frames, notes


def main(args) -> int:
    import pandas as pd

    from ..errors import UsageError
    from ..regress.history import detect_change_points

    frames, notes = _sources(args)
    frames = [f for f in frames if not f.empty]
    if not frames:
        raise UsageError(f"no values to follow across commits ({'; '.join(notes)}): measure "
                         "some runs or asv results first")
    hist = pd.concat(frames, ignore_index=True)
    cps = detect_change_points(hist, min_segment=args.min_segment,
                               min_effect=args.min_effect)
    n_series = hist.groupby(
        ["benchmark", "params"] + [c for c in ("machine", "source") if c in hist]).ngroups
    if args.format == "json":
        out = {
            "sources": notes, "series": n_series,
            "settings": {"min_segment": args.min_segment, "min_effect": args.min_effect,
                         "detector": "asv.step_detect", "branch": args.branch or "HEAD"},
            "change_points": json.loads(cps.to_json(orient="records", date_format="iso")),
        }
        sys.stdout.write(json.dumps(out, indent=2) + "\n")
        return 0
    lines = [*notes, f"{n_series} series; {len(cps)} change point(s) "
             f"(asv.step_detect, >= {args.min_effect:.0%} step)"]
    for r in cps.itertuples(index=False):
        direction = "slower" if r.ratio > 1 else "faster"
        if str(r.unit) not in ("ms", "seconds"):
            direction = "up" if r.ratio > 1 else "down"
        lines.append(
            f"  {pd.Timestamp(r.date):%Y-%m-%d %H:%M}  "
            f"{str(r.previous_commit)[:10]}..{str(r.commit)[:10]}  {r.benchmark}"
            + (f" [{r.params}]" if r.params else "")
            + f"  {r.before:.4g} -> {r.after:.4g} {r.unit}  x{r.ratio:.3f} {direction}"
        )
    sys.stdout.write("\n".join(lines) + "\n")
    return 0
