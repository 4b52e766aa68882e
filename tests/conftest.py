import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Test this checkout, models included, also in the subprocesses the tests start: an
# editable install made from another checkout (a git worktree beside this one) would
# otherwise provide `paraformer` and `parabench` from there.
for _root in (ROOT / "models", ROOT):
    sys.path.insert(0, str(_root))
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(ROOT), str(ROOT / "models")] + [p for p in os.environ.get("PYTHONPATH", "").split(
        os.pathsep) if p])


def run_cli(*args, db=None, timeout=300, **kw):
    """Run `python -m parabench ...` in a subprocess, as a user would."""
    cmd = [sys.executable, "-m", "parabench", *map(str, args)]
    if db is not None:
        cmd += ["--db", str(db)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, **kw)


def start_cli(*args, db=None, env=None) -> subprocess.Popen:
    """`run_cli` without waiting, so that several runs' start-ups (each imports torch)
    overlap; `env` is added to the environment. Collect it with `finish_cli`."""
    cmd = [sys.executable, "-m", "parabench", *map(str, args)]
    if db is not None:
        cmd += ["--db", str(db)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})


def finish_cli(proc: subprocess.Popen, timeout=300) -> subprocess.CompletedProcess:
    """What `run_cli` returns, for a process from `start_cli`."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


run_cli.start, run_cli.finish = start_cli, finish_cli


@pytest.fixture(scope="session")
def cli():
    """`cli(*args, db=...)` runs parabench and waits; `cli.start(...)` starts it and
    `cli.finish(proc)` waits for it (to overlap several runs' start-ups)."""
    return run_cli


@pytest.fixture(autouse=True)
def _default_db_in_tmp(tmp_path, monkeypatch):
    # never let a test write into the user's results/parabench.db
    monkeypatch.setenv("PARABENCH_DB", str(tmp_path / "default.db"))


@pytest.fixture(scope="session")
def paper_db(tmp_path_factory):
    """The paper-sized synthetic database (with markup in user strings), for the session."""
    from synthetic import make_evil_db

    return make_evil_db(tmp_path_factory.mktemp("paper") / "paper.db", "paper")


@pytest.fixture(scope="session")
def paper_report(paper_db, tmp_path_factory):
    """Its report, built once for test_report.py and test_report_browser.py (5-11 s)."""
    import time

    from parabench.config import PRESETS
    from parabench.report import build_report

    db, run_id = paper_db
    out = tmp_path_factory.mktemp("paper-report") / "r"
    t0 = time.perf_counter()
    res = build_report(db, [run_id], out)
    print(f"\npaper-sized report ({len(PRESETS['paper'].points())} points, 7 families x 7 "
          "depths x 3 batches x 2 modes): "
          f"{time.perf_counter() - t0:.1f} s")
    return res


# the fake pynvml used by the NVML and telemetry tests (no NVIDIA driver on CI)
from fake_nvml import fake_nvml, make_fake_pynvml  # noqa: E402,F401
