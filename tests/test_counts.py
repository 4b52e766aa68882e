"""Instruction counts: stored as their own kind of record, compared by the exact-count
rule, refused clearly where they cannot run. One real Callgrind count is opt-in
(PARABENCH_VALGRIND_TESTS=1: minutes under valgrind); CI counts for real in
scripts/ci_count_gate.sh."""
import os
import shutil

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


def test_setup_puts_the_checkout_first_only_under_valgrind(tmp_path):
    code = instructions._setup_code(POINT, PRESETS["quick"], tmp_path)
    lines = code.splitlines()
    guard = next(i for i, ln in enumerate(lines) if "timer_callgrind.py" in ln)
    assert lines[guard + 1].strip().startswith("sys.path[:0]") and str(tmp_path) in lines[guard + 1]
    ns = {}
    exec(code, ns)  # here (not under valgrind): builds the point with this parabench
    assert callable(ns["step"])
    ns["_point"].__exit__(None, None, None)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("valgrind") is None, reason="needs valgrind")
@pytest.mark.skipif(os.environ.get("PARABENCH_VALGRIND_TESTS") != "1",
                    reason="minutes under valgrind: set PARABENCH_VALGRIND_TESTS=1")
def test_real_count_repeats_closely():
    counts = instructions.count_instructions(Point("vit", 1, 1, "float32", "eager", "infer"),
                                             PRESETS["quick"], number=2, repeats=2)
    assert len(counts) == 2 and min(counts) > 1e5
    assert max(counts) / min(counts) - 1 < 0.01
