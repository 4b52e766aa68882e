"""scripts/page_faults.py: each family alone in a process, its faults and times per call."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "page_faults.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=300)


def test_one_row_per_family_with_numbers_and_the_load_around_them():
    done = _run("--families", "paraformer-loop,paraformer-fused", "--depth", "2", "--batch", "2",
                "--width", "tiny", "--img-size", "32", "--threads", "1", "--calls", "2")
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| paraformer")]
    assert [r.split("|")[1].strip() for r in rows] == ["paraformer-loop", "paraformer-fused"]
    for row in rows:
        ms, faults, sys_ms = (float(c) for c in row.split("|")[2:5])
        assert ms > 0 and faults >= 0 and sys_ms >= 0
    assert "load average before" in done.stdout and "load average after" in done.stdout


def test_bad_input_is_one_line_and_a_nonzero_exit():
    done = _run("--families", "nope")
    assert done.returncode == 2 and "unknown family nope" in done.stderr
    assert "Traceback" not in done.stderr
    done = _run("--families", "resnet", "--depth", "4", "--calls", "1")
    assert done.returncode == 1 and done.stderr.startswith("error: resnet:")
    assert "Traceback" not in done.stderr
