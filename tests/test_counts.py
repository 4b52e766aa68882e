"""Instruction counts: stored as their own kind of record, compared by the exact-count
rule, refused clearly where they cannot run. One real Callgrind count is opt-in
(PARABENCH_VALGRIND_TESTS=1: minutes under valgrind); CI counts for real in
scripts/ci_count_gate.sh."""
import os
import shutil
from pathlib import Path

import pytest

from parabench.cli import main
from parabench.config import PRESETS, Point
from parabench.measure import instructions
from parabench.records import Record
from parabench.regress.compare import run_compare
from parabench.store import Store

POINT = Point("paraformer-fused", 4, 8, "float32", "eager", "infer")


def _count_run(store, counts, commit="c0"):
    rid = store.start_run(sweep={"counts": {}}, preset="counts:test", command="t",
                          env={"machine": "m", "git": {"commit": commit, "dirty": False}})
    rec = Record.for_point(POINT, PRESETS["quick"], unit="instructions", samples_ms=counts)
    rec.key = instructions.count_key(POINT)
    store.add_record(rid, rec)
    store.finish_run(rid, "finished")
    return rid


def test_a_count_is_a_record_of_its_own_kind(tmp_path):
    with Store(tmp_path / "c.db") as s:
        rid = _count_run(s, [2.0e7, 2.0001e7])
        df = s.records_frame([rid])
    row = df.iloc[0]
    assert row.key.startswith("instructions/") and row.key != POINT.key  # no collision
    assert row.unit == "instructions"
    assert row.throughput is None or row.throughput != row.throughput  # NULL: not a latency
    assert Record.from_row(row).unit == "instructions"
    assert Record.from_row({k: v for k, v in row.items() if k != "unit"}).unit == "ms"


@pytest.mark.parametrize(("factor", "verdict", "code"), [
    (1.003, "unchanged", 0),  # within the counter's own process-to-process spread
    (1.05, "slower", 1),      # a 5% compute slowdown
    (0.95, "faster", 0),
])
def test_exact_count_rule(tmp_path, factor, verdict, code):
    db = tmp_path / "c.db"
    with Store(db) as s:
        a = _count_run(s, [2.0e7, 2.0001e7])
        b = _count_run(s, [2.0e7 * factor, 2.0001e7 * factor])
    res = run_compare(a, b, db=db, save=False)
    row = res["rows"][0]
    assert row["verdict"] == verdict and row["ratio"] == pytest.approx(factor, rel=1e-4)
    assert "instruction count" in row["note"]
    assert main(["compare", a, b, "--db", str(db), "--no-save"]) == code


def test_count_threshold_flag(tmp_path):
    db = tmp_path / "c.db"
    with Store(db) as s:
        a, b = _count_run(s, [1e7]), _count_run(s, [1.05e7])
    assert main(["compare", a, b, "--db", str(db), "--no-save", "--count-threshold", "10%"]) == 0


def test_count_refuses_gpu_and_missing_valgrind(tmp_path, capsys, monkeypatch):
    db = str(tmp_path / "c.db")
    assert main(["count", "--device", "cuda", "--db", db]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "CPU code only" in err[0]
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert main(["count", "--family", "vit", "--depth", "1", "--db", db]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "apt-get install valgrind" in err[0]
    assert not os.path.exists(db)  # refused before a run was opened


def test_the_counted_program_builds_the_point_from_the_given_tree_only(tmp_path):
    root = Path(instructions.__file__).resolve().parents[2]
    ns = {}
    exec(instructions._build_code(POINT, PRESETS["quick"], root), ns)  # builds it here
    assert callable(ns["step"])
    ns["_held"].__exit__(None, None, None)
    # another tree: this process's parabench is not from there, and the guard says so
    with pytest.raises(AssertionError, match="parabench"):
        exec(instructions._build_code(POINT, PRESETS["quick"], tmp_path), {})


def test_counts_are_read_from_each_repeats_dump(tmp_path):
    for i, total in enumerate((23_000_000, 23_100_000), 1):
        (tmp_path / f"callgrind.out.{i}").write_text(
            f"version: 1\nevents: Ir\nsummary: {total}\nfn=(1) x\n0 5\ntotals: {total}\n")
    assert instructions._totals(tmp_path, 2) == [23_000_000, 23_100_000]
    with pytest.raises(RuntimeError, match="repeat 3"):
        instructions._totals(tmp_path, 3)  # a dump that was never written is an error


def test_a_failed_count_names_the_programs_last_line():
    err = ("==12== Callgrind\nTraceback (most recent call last):\n  File x\n"
           "ImportError: no torch\n==12== end\n")
    assert instructions._failure(err) == "ImportError: no torch"
    assert instructions._failure("==1== only valgrind\n") == "no message"


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("valgrind") is None, reason="needs valgrind")
@pytest.mark.skipif(os.environ.get("PARABENCH_VALGRIND_TESTS") != "1",
                    reason="minutes under valgrind: set PARABENCH_VALGRIND_TESTS=1")
def test_real_count_repeats_closely():
    counts = instructions.count_instructions(Point("vit", 1, 1, "float32", "eager", "infer"),
                                             PRESETS["quick"], number=2, repeats=2)
    assert len(counts) == 2 and min(counts) > 1e5
    assert max(counts) / min(counts) - 1 < 0.01
