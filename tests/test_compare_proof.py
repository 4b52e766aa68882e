"""Proof: in a throwaway git repository, a commit that slows Para-Former is flagged by
`parabench compare --interleave`, and a commit that changes nothing is not, repeatedly.

The repository is a copy of this project (parabench + models + pyproject) with three
commits: the base, a no-op (a comment), and a planted slowdown inside
`ParaFormer.forward` (a busy wait proportional to the forward's own time, so the
slowdown is the same fraction whatever the machine's speed).

Why the margins are so wide (it flaked once at a 25% threshold: the untouched ViT came
out 1.278x [1.159, 1.336]). Nine interleaved comparisons of one commit against itself
on the 2-core development VM (vit and paraformer-fused, depth 2 and 4, 12 rounds,
both workers pinned to one core) gave point ratios from 0.823 to 1.119 (sd of the log
ratio 0.05; 2 of 9 comparisons would have failed at the default 10%). Two mechanisms:
  * per-process bias: in 2 of 9 comparisons every point moved the same way, in every
    round (e.g. paraformer-fused/d2 0.892 with all 12 per-round ratios 0.86-0.94, vit
    0.956 and 0.968 in the same comparison); across comparisons the points' ratios
    correlate (+0.26 to +0.55) and the comparison means vary 2.5x more than
    independent points would. Same core, same code, no steal (2 of 4600 ticks), THP
    only on madvise: a bias fixed for a worker process's lifetime (address-space
    layout / cache aliasing is the likely cause) that changes when the workers restart;
  * interference: single turns run at about half speed (per-round ratios down to 0.49
    and up to 1.94 of 432) when another runnable thread shares the pinned core; with
    12 rounds a few such turns move one point's median by 10-20%.
No point's ratio came near 2x (the 1.278 in CI is the largest seen). So the plant is
4x (a busy wait of 3x the forward) and the comparison counts only changes of 2x or more
(`--threshold 1.0`): the planted family must come out "slower" beyond 2.5x, the control
must stay below 2x, and no-op comparisons must exit 0 with every point "unchanged" --
still a real test of the rule, with a margin noise cannot close.

What it costs, and where it runs. Each comparison starts 3 sets x 2 worker processes,
each importing torch on one pinned core (3.5-7 s apiece): about 25 s a comparison and
2 minutes for the five, the largest part of the test suite. Cutting rounds or process
sets does not help: the start-ups are the cost, and the interval is a t interval over
the process sets (2 degrees of freedom at 3 sets; at 6 rounds the planted 5x already
came out p = 0.024, "unchanged"). So the proof keeps its full size and runs only when
PARABENCH_PROOF_TESTS=1, which CI sets for this file in a step of its own; a plain
`pytest` skips it and says how to run it.
"""
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import parabench
from parabench.cli import main

ROOT = Path(parabench.__file__).resolve().parents[1]

_PLANT = '''    def forward(self, x: Tensor) -> Tensor:
        import time as _t

        t0 = _t.perf_counter()
        out = self._forward_unplanted(x)
        end = _t.perf_counter() + {factor} * (_t.perf_counter() - t0)
        while _t.perf_counter() < end:  # planted slowdown
            pass
        return out

    def _forward_unplanted(self, x: Tensor) -> Tensor:
'''
_FORWARD = re.compile(r"^    def forward\(self, x: Tensor\) -> Tensor:\n", re.M)


def _git(repo, *args):
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True,
                          text=True).stdout.strip()


def make_repo(dest: Path, slowdowns=(1.0,)) -> dict:
    """Copy the project into `dest`, commit base / noop / one commit per slowdown
    (each on top of base). Returns {"base": sha, "noop": sha, 1.0: sha, ...}."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    dest.mkdir(parents=True)
    for name in ("parabench", "models"):
        shutil.copytree(ROOT / name, dest / name, ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", dest / "pyproject.toml")
    _git(dest, "init", "-q", "-b", "main")
    _git(dest, "config", "user.email", "proof@example.invalid")
    _git(dest, "config", "user.name", "proof")
    _git(dest, "add", "-A")
    _git(dest, "commit", "-q", "-m", "base")
    shas = {"base": _git(dest, "rev-parse", "HEAD")}
    model = dest / "models" / "paraformer" / "model.py"
    original = model.read_text()
    assert len(_FORWARD.findall(original)) == 1, "ParaFormer.forward signature changed"
    model.write_text(original + "\n# a comment: this commit changes nothing\n")
    _git(dest, "commit", "-q", "-am", "noop")
    shas["noop"] = _git(dest, "rev-parse", "HEAD")
    for factor in slowdowns:
        _git(dest, "checkout", "-q", shas["base"])
        model.write_text(_FORWARD.sub(_PLANT.format(factor=factor), original))
        _git(dest, "commit", "-q", "-am", f"slow down Para-Former by {factor:.0%}")
        shas[factor] = _git(dest, "rev-parse", "HEAD")
    _git(dest, "checkout", "-q", shas["base"])
    return shas


def ab(repo: Path, db: Path, a: str, b: str, *extra) -> tuple[int, dict]:
    """Interleaved compare of two commits; (exit code, result dict)."""
    out = db.parent / "cmp.json"
    code = main(["compare", a, b, "--interleave", "--repo", str(repo), "--db", str(db),
                 "--family", "paraformer-fused,vit", "--depth", "2", "--rounds", "12",
                 "--processes", "3",
                 "--threads", "1", "--no-progress", "--format", "json", "-o", str(out),
                 # only a 2x change counts: noise here stayed within 0.82-1.28x (see the
                 # module docstring), the planted slowdown is 4x
                 "--threshold", "1.0", *extra])
    return code, json.loads(out.read_text())


#: set to 1 to run the proof (about 2 minutes); CI does
PROOF_ENV = "PARABENCH_PROOF_TESTS"


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get(PROOF_ENV) != "1",
                    reason=f"about 2 minutes: set {PROOF_ENV}=1 (CI runs it so)")
def test_planted_slowdown_flagged_and_noop_not(tmp_path, capsys):
    repo = tmp_path / "repo"
    shas = make_repo(repo, slowdowns=(3.0,))
    db = tmp_path / "ab.db"
    for _ in range(2):
        code, res = ab(repo, db, shas["base"], shas[3.0])
        rows = {r["family"]: r for r in res["rows"]}
        assert code == 1, res
        assert res["measurement"] == "interleaved"
        assert set(rows) == {"paraformer-fused", "vit"}, rows
        assert rows["paraformer-fused"]["verdict"] == "slower", rows
        assert rows["paraformer-fused"]["ratio"] > 2.5, rows  # planted 4x
        assert rows["vit"]["verdict"] != "slower" and rows["vit"]["ratio"] < 2.0, rows
    for _ in range(3):
        code, res = ab(repo, db, shas["base"], shas["noop"])
        assert code == 0, res
        assert all(r["verdict"] == "unchanged" for r in res["rows"]), res["rows"]
    capsys.readouterr()
    # the store now holds both sides of every comparison, with their commits
    from parabench.store import Store

    with Store(db, create=False) as s:
        runs = s.runs_frame()
        assert len(runs) == 10
        assert set(runs.git_commit) == {shas["base"], shas[3.0], shas["noop"]}
        assert s.latest_comparison()["result"]["rows"]


def test_interleave_bad_refs_exit_2(tmp_path, capsys):
    repo = tmp_path / "r"
    repo.mkdir()
    _git(repo, "init", "-q")
    code = main(["compare", "nope", "WORKTREE", "--interleave", "--repo", str(repo),
                 "--db", str(tmp_path / "x.db")])
    assert code == 2 and "not a git ref" in capsys.readouterr().err
    code = main(["compare", "a", "b", "--interleave", "--repo", str(tmp_path / "none"),
                 "--db", str(tmp_path / "x.db")])
    assert code == 2
    capsys.readouterr()
    # a commit whose code has no interleave worker cannot be measured: one line, exit 2
    (repo / "f.txt").write_text("old code")
    _git(repo, "add", "f.txt")
    _git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "-m", "old")
    code = main(["compare", "HEAD", "WORKTREE", "--interleave", "--repo", str(repo),
                 "--db", str(tmp_path / "x.db"), "--family", "vit", "--depth", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "predates the interleave worker" in err, err
    assert len(err.strip().splitlines()) == 1
