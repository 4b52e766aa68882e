"""The code an interleaved arm runs: a checkout of a git ref (exported with `git
archive`), the working tree as it is (WORKTREE), or this parabench as imported, and
which worker that checkout has.

A commit whose checkout has neither the one worker (executors/worker.py) nor its
predecessor (`parabench/regress/worker.py`, protocol 1: the same "build"/"time"
messages, no memory guard) cannot be measured in turns: a UsageError naming it.
"""
from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError
from .sides import git_commit_of

__all__ = ["WORKTREE", "Tree", "checkout", "find_worker", "trees_for"]

#: Name for the uncommitted working tree as a side of `interleaved_runs`.
WORKTREE = "WORKTREE"
#: The worker of a checkout, newest first: (file in the checkout, module, protocol).
WORKERS = ((Path("parabench", "executors", "worker.py"), "parabench.executors.worker", 2),
            (Path("parabench", "regress", "worker.py"), "parabench.regress.worker", 1))


@dataclass
class Tree:
    """One checkout the arms run: where its code is, which commit, its worker."""

    ref: str | None
    path: Path | None
    commit: str
    dirty: bool
    module: str = ""
    protocol: int = 2

    @property
    def label(self) -> str:
        if self.ref is None:
            return "this parabench"
        return f"{self.ref} ({self.commit[:10]}{'+dirty' if self.dirty else ''})"


def checkout(ref: str, repo: Path, dest: Path) -> tuple[Path, str, bool]:
    """(source tree, commit, dirty) for a git ref (exported with `git archive`) or for
    WORKTREE (the repository's working tree as it is)."""
    import tarfile

    try:
        top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=repo,
                             capture_output=True, text=True)
    except OSError:
        top = None
    if top is None or top.returncode != 0:
        raise UsageError(f"{repo} is not a git repository")
    top_path = Path(top.stdout.strip())
    if ref == WORKTREE:
        head = git_commit_of("HEAD", top_path)
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                cwd=top_path, capture_output=True, text=True)
        return top_path, head or "", bool(status.stdout.strip())
    commit = git_commit_of(ref, top_path)
    if commit is None:
        raise UsageError(f"{ref!r} is not a git ref in {top_path} (or use {WORKTREE})")
    dest.mkdir(parents=True)
    tar = dest.parent / f"{dest.name}.tar"
    subprocess.run(["git", "archive", "--format=tar", "-o", str(tar), commit], cwd=top_path,
                   check=True, capture_output=True)
    with tarfile.open(tar) as t:
        t.extractall(dest, filter="data")
    tar.unlink()
    return dest, commit, False


def find_worker(tree: Tree) -> None:
    """Which worker the checkout has; UsageError when it predates them all."""
    if tree.path is None:
        return
    for file, module, protocol in WORKERS:
        if (tree.path / file).is_file():
            tree.module, tree.protocol = module, protocol
            return
    raise UsageError(
        f"{tree.ref} ({tree.commit[:10] or 'no commit'}) predates the interleave worker "
        f"({WORKERS[-1][0].as_posix()}): it cannot be measured in turns; compare stored "
        "runs or asv results instead")


def trees_for(arms, repo, tmp: Path) -> dict:
    """{ref: _Tree} for every checkout the arms name, exported once each."""
    from ..environment import collect

    trees = {}
    for i, ref in enumerate(dict.fromkeys(a.ref for a in arms)):
        if ref is None:
            git = collect().get("git") or {}
            trees[ref] = Tree(None, None, git.get("commit") or "", bool(git.get("dirty")),
                               module="parabench.executors.worker")
        else:
            path, commit, dirty = checkout(ref, Path(repo), tmp / f"src{i}")
            trees[ref] = Tree(ref, path, commit, dirty)
            find_worker(trees[ref])
    return trees
