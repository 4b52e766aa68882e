"""scripts/fused_traffic.py: the analytic kernels and bytes of one fused level."""
import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("fused_traffic", ROOT / "scripts" / "fused_traffic.py")
traffic = importlib.util.module_from_spec(spec)
sys.modules["fused_traffic"] = traffic
spec.loader.exec_module(traffic)


def test_one_row_per_batch_k_and_level_and_cuda_moves_fewer_bytes(capsys):
    assert traffic.main(["--ks", "1,12", "--batches", "1,8", "--width", "tiny",
                         "--img-size", "32"]) == 0
    rows = [r for r in capsys.readouterr().out.splitlines()[2:] if r.startswith("|")]
    assert len(rows) == 2 * 2 * 2  # batches x Ks x (shared first level, deeper)
    for row in rows:
        cuda_over_before = float(row.strip("| ").split("|")[-1])
        assert 0 < cuda_over_before < 1  # fc1's bias + GELU in one pass saves bytes


@pytest.mark.parametrize("argv", [["--ks", "0"], ["--batches", "x"], ["--img-size", "30"]])
def test_bad_input_is_one_line_and_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as e:
        traffic.main(argv)
    assert e.value.code == 2
    assert "error: " in capsys.readouterr().err.strip().splitlines()[-1]
