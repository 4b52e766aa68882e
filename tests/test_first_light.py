"""First light's orchestration: each part under its own limit, a hang or failure leaves
the others running, the budget reserves time for later parts, the output folder stays
within what a GPU job brings back, and the figures never fail on partial results.
(The whole command runs for real, on CPU under the image's imports, in
scripts/ci_first_light.sh.)"""
from __future__ import annotations

import json
import os
import sys
import tarfile
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import first_light  # noqa: E402
from first_light import Part, part_limit, run_part  # noqa: E402
from first_light_figures import headline, read_bench_table  # noqa: E402

SH = "/bin/sh"


def test_a_hung_part_is_killed_with_its_children_at_its_limit(tmp_path):
    pidfile = tmp_path / "child.pid"
    part = Part("hang", 1, 1, [[SH, "-c", f"sleep 60 & echo $! > {pidfile}; wait"]])
    t0 = time.monotonic()
    run_part(part, 1.0, tmp_path)
    assert part.rc == 124 and "limit" in part.note
    assert time.monotonic() - t0 < 20
    child = int(pidfile.read_text())
    time.sleep(0.2)
    assert not _alive(child)  # the whole process group went, not just sh


def _alive(pid: int) -> bool:
    """Running, not gone and not a zombie waiting for a parent that never reaps it."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def test_a_part_stops_at_its_first_failing_command(tmp_path):
    marker = tmp_path / "second-ran"
    part = Part("two", 10, 1, [[SH, "-c", "echo one; exit 3"], ["touch", str(marker)]])
    run_part(part, 10, tmp_path)
    assert part.rc == 3 and "exited 3" in part.note and not marker.exists()
    assert "one" in (tmp_path / "two.log").read_text()


def test_a_missing_program_is_a_row_not_a_crash(tmp_path):
    part = Part("absent", 10, 1, [["/nonexistent/program"]])
    run_part(part, 10, tmp_path)
    assert part.rc == 127 and "/nonexistent/program" in part.note


def test_the_budget_keeps_the_least_time_of_every_later_part():
    parts = [Part(n, 150, least, []) for n, least in (("a", 30), ("b", 40), ("c", 25))]
    assert part_limit(parts[0], parts[1:], 360) == 150  # its own limit
    assert part_limit(parts[0], parts[1:], 100) == 100 - 65  # later parts keep 65 s
    assert part_limit(parts[1], parts[2:], 30) is None  # 5 s left for a 40 s part: skipped
    assert part_limit(parts[2], [], 20) == 20


def test_failures_and_hangs_leave_the_other_parts_running(tmp_path, monkeypatch):
    def plan(device, work):
        return [Part("fails", 10, 1, [[SH, "-c", "exit 3"]]),
                Part("hangs", 1, 1, [[SH, "-c", "sleep 60"]]),
                Part("works", 10, 1, [[SH, "-c", f"echo mode=eager > {work}/works.txt"]])]

    monkeypatch.setattr(first_light, "plan", plan)
    out = tmp_path / "out"
    rc = first_light.main(["--out", str(out), "--work", str(tmp_path / "work"),
                           "--device", "cpu", "--budget", "60"])
    assert rc == 1
    summary = (out / "summary.txt").read_text()
    rows = {ln.split()[0]: ln.split()[1] for ln in summary.splitlines()
            if ln.split()[:1] and ln.split()[0] in ("fails", "hangs", "works")}
    assert rows == {"fails": "3", "hangs": "124", "works": "0"}
    assert "CPU REHEARSAL" in summary
    assert sorted(p.name for p in out.iterdir()) == ["first-light.tar.gz", "summary.txt"]
    with tarfile.open(out / "first-light.tar.gz") as tar:
        assert "first-light/works.txt" in tar.getnames()


def test_only_refuses_an_unknown_part(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        first_light.main(["--out", str(tmp_path), "--only", "bench,nope"])
    assert e.value.code == 2 and "nope" in capsys.readouterr().err


def test_the_plan_matches_the_issue_on_a_gpu(tmp_path):
    parts = {p.name: p for p in first_light.plan("cuda", tmp_path)}
    assert list(parts) == ["device", "bench", "sweep", "tests", "report", "kernels"]
    sweep = " ".join(parts["sweep"].commands[0])
    for want in ("paraformer-fused,paraformer-serial,vit", "--depth 1,8,48", "--batch 1,256",
                 "--mode eager,graph", "--dtype bfloat16", "--width paper", "--point-timeout"):
        assert want in sweep
    bench = " ".join(parts["bench"].commands[0])
    for want in ("--preset fused-goals", "--mode graph", "--batch 1,256", "--depth 1,8,48",
                 "--dtype bfloat16", "--width paper", "--point-timeout"):
        assert want in bench
    assert [c[3] for c in parts["bench"].commands[1:]] == ["export", "report"]
    assert any("test_gpu_path.py" in a for a in parts["tests"].commands[0])
    # what the parts may take, in all, if each ran to its limit, is kept to the budget by
    # part_limit; what they are expected to take must fit the 6 minutes with room
    assert sum(p.least_s for p in parts.values()) < 360 / 2


_TURNS_REPORT = """# report

## Families timed in turns

**Each family's latency over the references'.**

| cell | fused group | fused ms | vit ms | fused / vit |
|---|---|---|---|---|
| d1 b256 bfloat16 graph | 1 | 0.5 | 0.6 | 0.83 [0.8–0.86] |
| d48 b256 bfloat16 graph | 48 | 2.0 | 9.5 | 0.21 [0.2–0.22] |

## Throughput
"""


def test_figures_from_partial_results_say_what_is_missing(tmp_path):
    (tmp_path / "bench.csv").write_text("mode,batch,depth,family,status,median_ms\n"
                                        "graph,1,1,paraformer-fused,ok,0.5\n")
    (tmp_path / "bench-report").mkdir()
    (tmp_path / "bench-report" / "report.md").write_text(_TURNS_REPORT)
    (tmp_path / "sweep.json").write_text(json.dumps([
        {"family": "vit", "depth": 48, "batch": 256, "status": "ok", "energy_j_per_image": 0.25,
         "extra": {"sm_clock_mhz_start": 1980}}]))
    (tmp_path / "kernels.json").write_text("not json")
    lines = headline(tmp_path, "cuda", [])
    text = "\n".join(lines)
    assert "paraformer-fused batch 1 graph, K/depth 1/8/48: 0.500 / - / - ms" in text
    assert "fused / vit at batch 256, depth 48: 0.21 [0.2–0.22]" in text
    assert "least-work / vit at batch 256, depth 48: -" in text  # not in the table
    table = read_bench_table(tmp_path / "bench-report")
    assert "d48 b256 bfloat16 graph" in table and "---" not in table
    assert "vit depth 48 batch 256: 0.25 J/image" in text
    assert "1980-1980 MHz" in text and "gpu tests: -" in text
    assert "no bench table" in read_bench_table(tmp_path / "absent")


def test_a_tarball_too_big_to_come_back_is_packed_again_without_traces(tmp_path):
    work, out = tmp_path / "work", tmp_path / "out"
    (work / "traces").mkdir(parents=True)
    out.mkdir()
    (work / "traces" / "big.json").write_bytes(os.urandom(first_light.MAX_FILE_BYTES + 1))
    (work / "sweep.json").write_text("[]")
    note = first_light.pack(out, work)
    assert "traces left out" in note
    assert (out / "first-light.tar.gz").stat().st_size <= first_light.MAX_FILE_BYTES
    with tarfile.open(out / "first-light.tar.gz") as tar:
        names = tar.getnames()
    assert "first-light/sweep.json" in names and not any("traces/" in n for n in names)
    (work / "traces" / "big.json").write_text("{}")
    assert first_light.pack(out, work) == ""  # small enough: traces kept
