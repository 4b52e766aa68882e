"""What a hostile user types: every output failure is one line and a non-zero exit, every
count has a limit, every sweep file is checked for what it is, bad input is refused in one
line; an orphaned worker leaves silently."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_store_damage import _make_db

from parabench.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "parabench", *map(str, args)],
                          capture_output=kw.pop("capture", True), text=True, timeout=120,
                          cwd=ROOT, **kw)


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    path = tmp_path_factory.mktemp("hostile") / "r.db"
    _make_db(path, n=3)
    return path


@pytest.mark.parametrize("argv", [["list"], ["export"], ["check"], ["list", "presets"]])
def test_a_full_disk_on_stdout_is_one_line_and_exit_1(argv, db):
    with open("/dev/full", "w") as full:
        r = subprocess.run([sys.executable, "-m", "parabench", *argv, "--db", str(db)],
                           stdout=full, stderr=subprocess.PIPE, text=True, timeout=120, cwd=ROOT)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1, r.stderr
    assert "No space left on device" in lines[0] and "Traceback" not in r.stderr


@pytest.mark.parametrize("argv", [["list"], ["export"], ["check"], ["env"]])
def test_a_closed_stdout_is_refused_not_thrown_away(argv, db):
    extra = [] if argv == ["env"] else ["--db", str(db)]
    before = db.read_bytes()
    r = subprocess.run([sys.executable, "-m", "parabench", *argv, *extra],
                       stderr=subprocess.PIPE, text=True, timeout=120, cwd=ROOT,
                       preexec_fn=lambda: os.close(1))
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "standard output is closed" in r.stderr
    assert db.read_bytes() == before  # nothing written into the database through fd 1


def test_an_orphaned_worker_exits_silently():
    """The driver killed (SIGKILL, SIGHUP) before the worker's first reply: the worker
    finds the pipe closed and leaves at once, with no traceback."""
    read, write = os.pipe()
    os.close(read)  # the driver is gone before the worker's first reply
    with os.fdopen(write, "w") as out:
        r = subprocess.run([sys.executable, "-m", "parabench.executors.worker"],
                           stdin=subprocess.PIPE, stdout=out, stderr=subprocess.PIPE, text=True,
                           timeout=120, cwd=ROOT)
    assert r.returncode == 0 and r.stderr == "", r.stderr


def _err_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


def _code(argv) -> int:
    try:
        return main(argv)
    except SystemExit as e:
        return e.code


def _sweep_file(tmp_path, kind: str) -> str:
    f = tmp_path / "s.toml"
    if kind == "deep":
        f.write_text("x = " + "[" * 50000 + "]" * 50000 + "\n")
    elif kind == "big":
        f.write_text("# padding\n" * 200000)
    elif kind == "fifo":
        os.mkfifo(f)  # no writer: opening it would wait forever
    elif kind == "typo":
        f.write_text('preset = "quick"\n[depths_by_family]\nresnett = [18]\n')
    return str(f)


@pytest.mark.parametrize("argv, needle", [
    (["run", "--warmup", "1000000000"], "warmup must be between 0 and"),
    (["run", "--max-samples", "10000000000"], "max samples must be between"),
    (["run", "--min-time", "1e9"], "min time must be a finite number between"),
    (["run", "--batch", "99999999999"], "batch size must be between"),
    (["run", "--workers", "50000"], "must be between 1 and 256"),
    (["compare", "--interleave", "a", "b", "--rounds", "9999999999"], "must be between 1 and"),
    (["run", "--preset", ""], "unknown preset ''"),
    (["run", "--resume", ""], "must not be empty"),
    (["run", "--config", "/dev/zero"], "not a regular file"),
    (["run", "--config", "@deep"], "nested too deeply"),
    (["run", "--config", "@big"], "larger than 1024 KiB"),
    (["run", "--config", "@fifo"], "not a regular file"),
    (["run", "--config", "@typo"], "unknown family (in depths_by_family) 'resnett'"),
    (["history", "--repo", "/nonexistent"], "commit order"),
    (["history", "--branch", "nope"], "commit order"),
])
def test_hostile_input_is_one_line_and_exit_2(argv, needle, tmp_path, capsys):
    argv = [_sweep_file(tmp_path, a[1:]) if a.startswith("@") else a for a in argv]
    db = tmp_path / "r.db"
    assert _code([*argv, "--db", str(db)]) == 2
    assert needle in _err_line(capsys)
    assert not db.exists()


def test_history_branch_that_git_does_not_know_is_refused(tmp_path, capsys):
    asv = tmp_path / "asv"
    asv.mkdir()
    assert _code(["history", "--asv-results", str(asv), "--repo", str(ROOT), "--branch",
                  "no-such-branch-here", "--db", str(tmp_path / "r.db")]) == 2
    assert "no branch 'no-such-branch-here'" in _err_line(capsys)
