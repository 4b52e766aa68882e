"""The asv suite: configuration, profile choice, and one real point of each kind."""
import importlib
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import parabench

ROOT = Path(parabench.__file__).resolve().parents[1]


@pytest.fixture
def suite(monkeypatch):
    monkeypatch.setenv("PARABENCH_ASV_PRESET", "quick")
    monkeypatch.delenv("PARABENCH_ASV_MODES", raising=False)
    monkeypatch.delenv("PARABENCH_ASV_THREADS", raising=False)
    monkeypatch.syspath_prepend(str(ROOT))
    for name in [m for m in sys.modules if m == "benchmarks" or m.startswith("benchmarks.")]:
        monkeypatch.delitem(sys.modules, name)
    common = importlib.import_module("benchmarks.common")
    latency = importlib.import_module("benchmarks.latency")
    cost = importlib.import_module("benchmarks.cost")
    return common, latency, cost


def test_asv_conf():
    from asv.config import Config

    conf = Config.load(str(ROOT / "asv.conf.json"))
    assert conf.environment_type == "virtualenv" and conf.repo == "."
    assert conf.results_dir.endswith(".asv/results") and conf.html_dir.endswith(".asv/html")
    assert conf.benchmark_dir.endswith("benchmarks")
    # never --force-reinstall: it would reinstall torch for every commit
    assert not any("force-reinstall" in c for c in conf.install_command)
    assert any("{wheel_file}" in c for c in conf.install_command)


def test_sizes_come_from_the_presets(suite, monkeypatch):
    common, latency, _ = suite
    from parabench.config import PRESETS

    quick = PRESETS["quick"]
    assert common.SWEEP == quick and common.SWEEP.threads == 1
    assert latency.TransformerLatency.params[1] == list(quick.depths)
    assert latency.ResNetLatency.params[0] == list(quick.depths_for("resnet"))
    monkeypatch.setenv("PARABENCH_ASV_PRESET", "paper")
    monkeypatch.setenv("PARABENCH_ASV_MODES", "eager,compile")
    monkeypatch.setenv("PARABENCH_ASV_THREADS", "0")
    s = common._pick_sweep()
    assert s.device == "cuda" and s.width == "paper" and s.modes == ("eager", "compile")
    assert s.threads is None and s.depths == PRESETS["paper"].depths
    monkeypatch.setenv("PARABENCH_ASV_PRESET", "tpu")
    with pytest.raises(ValueError, match="PARABENCH_ASV_PRESET"):
        common._pick_sweep()


def test_latency_returns_raw_samples_in_seconds(suite):
    common, latency, _ = suite
    bench = latency.TransformerLatency()
    assert bench.param_names == ["family", "depth", "batch", "mode"]
    bench.setup("paraformer-fused", 2, 1, "eager")
    out = bench.track_latency("paraformer-fused", 2, 1, "eager")
    assert out["number"] == 1 and len(out["samples"]) >= common.SWEEP.min_samples
    assert all(0 < s < 1 for s in out["samples"])  # seconds, not milliseconds
    # asv's statistics accept it as a timing result
    from asv_runner.statistics import compute_stats

    value, stats = compute_stats(out["samples"], out["number"])
    assert stats["ci_99_a"] <= value <= stats["ci_99_b"]


def test_impossible_points_are_skipped(suite):
    _, latency, _ = suite
    with pytest.raises(NotImplementedError, match="CUDA graphs"):
        latency.TransformerLatency().setup("vit", 1, 1, "graph")
    with pytest.raises(NotImplementedError, match="not buildable"):
        latency.ResNetLatency().setup(19, 1, "eager")


def test_model_cost(suite, monkeypatch):
    _, _, cost = suite
    monkeypatch.setattr(cost, "MODELS", ["vit:2", "resnet:19"])
    bench = cost.ModelCost()
    cache = bench.setup_cache()
    bench.setup(cache, "vit:2")
    assert bench.track_params(cache, "vit:2") > 1000
    assert math.isclose(bench.track_gflops(cache, "vit:2") * 1e9, cache["vit:2"]["flops"])
    with pytest.raises(NotImplementedError):
        bench.setup(cache, "resnet:19")
    assert not hasattr(cost, "GpuMemory")  # only defined with CUDA


def test_time_benchmarks_are_asv_timing_benchmarks(suite):
    common, _, _ = suite
    timing = importlib.import_module("benchmarks.timing")
    bench = timing.TransformerTime()
    assert bench.param_names == ["family", "depth", "batch"]
    assert bench.params[1] == sorted({min(common.SWEEP.depths), max(common.SWEEP.depths)})
    assert not hasattr(bench, "unit") and not hasattr(bench, "number")  # asv times and rounds
    bench.setup("paraformer-fused", 1, 1)
    assert bench.time_forward("paraformer-fused", 1, 1) is None
    bench.teardown("paraformer-fused", 1, 1)


def test_instruction_benchmark_skips_without_valgrind(suite, monkeypatch):
    instructions = importlib.import_module("benchmarks.instructions")
    bench = instructions.InstructionCount()
    assert bench.track_instructions.unit == "instructions"
    monkeypatch.setattr(instructions.shutil, "which", lambda name: None)
    with pytest.raises(NotImplementedError, match="valgrind"):
        bench.setup("vit:4")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_asv_discovers_the_suite(tmp_path):
    """`asv check` imports the suite the way asv does (current interpreter)."""
    env = {"PARABENCH_ASV_PRESET": "quick", "HOME": str(tmp_path),
           "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-m", "asv", "check", "--python=same", "--config",
         str(ROOT / "asv.conf.json")],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env=env,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Discovering benchmarks" in out.stdout

