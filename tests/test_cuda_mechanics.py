"""The CUDA measurement mechanics that a CPU can show: one capture stream for the whole
process, cuBLAS workspaces dropped between points, warm-up by time, the SM clock read
through the NVML funnel. (On a GPU, tests/test_gpu_path.py runs them for real.)"""
from __future__ import annotations

import time
import types

import pytest

from parabench import workloads
from parabench.config import Sweep
from parabench.errors import UsageError
from parabench.measure import device as device_mod
from parabench.measure import timing

from fake_nvml import fake_nvml  # noqa: F401


@pytest.fixture
def fake_cuda(monkeypatch):
    """torch.cuda's stream and graph API as recording fakes, so capture_graph's stream
    handling runs without a GPU."""
    import contextlib

    import torch

    made, captured_on = [], []

    class Stream:
        def __init__(self):
            made.append(self)

        def wait_stream(self, other):
            pass

    @contextlib.contextmanager
    def graph(g, stream=None, **kw):
        captured_on.append(stream)
        yield

    monkeypatch.setattr(workloads, "_side_streams", {})
    for name, value in {
        "Stream": Stream, "current_stream": lambda: Stream.__new__(Stream),
        "stream": lambda s: contextlib.nullcontext(), "CUDAGraph": object, "graph": graph,
        "current_device": lambda: 0,
    }.items():
        monkeypatch.setattr(torch.cuda, name, value)
    return types.SimpleNamespace(made=made, captured_on=captured_on)


def test_every_capture_in_a_process_uses_one_side_stream(fake_cuda):
    """A new stream per capture made cuBLAS add a workspace per point that empty_cache()
    never frees: peaks grew with the points before them."""
    for _ in range(3):
        _, out = workloads.capture_graph(lambda: "y")
        assert out == "y"
    assert len(fake_cuda.made) == 1
    assert fake_cuda.captured_on == [fake_cuda.made[0]] * 3  # capture on the warm-up stream


def test_free_memory_drops_cublas_workspaces_before_emptying_the_cache(monkeypatch):
    import torch

    calls = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda: calls.append("sync"))
    monkeypatch.setattr(torch._C, "_cuda_clearCublasWorkspaces", lambda: calls.append("clear"),
                        raising=False)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: calls.append("empty"))
    device_mod.free_memory("cuda")
    assert calls == ["sync", "clear", "empty"]
    calls.clear()
    device_mod.free_memory("cpu")
    assert calls == []


def _counting(sleep_s: float = 0.0):
    calls = []

    def fn():
        calls.append(time.perf_counter())
        if sleep_s:
            time.sleep(sleep_s)

    return fn, calls


def test_warm_up_lasts_the_asked_time_and_at_least_the_asked_calls():
    fn, calls = _counting(0.002)
    cond = {}
    samples = timing.measure(fn, warmup=2, warmup_s=0.1, min_samples=3, max_samples=3,
                             min_time_s=0, conditions=cond)
    assert len(samples) == 3
    assert cond["warmup_calls"] == len(calls) - 3 and cond["warmup_calls"] >= 10
    assert cond["warmup_s"] >= 0.1
    assert calls[cond["warmup_calls"]] - calls[0] >= 0.1  # timing began after the time
    fn, calls = _counting()
    cond = {}
    timing.measure(fn, warmup=5, warmup_s=0.0, min_samples=1, max_samples=1, min_time_s=0,
                   conditions=cond)
    assert cond["warmup_calls"] == 5 and len(calls) == 6
    assert "sm_clock_mhz_start" not in cond  # no GPU clock on a CPU point


def test_warm_up_time_defaults_to_the_devices_need():
    assert timing.warmup_seconds("cuda", None) == timing.CUDA_WARMUP_S >= 0.2
    assert timing.warmup_seconds("cuda:1", 0.0) == 0.0  # asked for: taken as asked
    assert timing.warmup_seconds("cpu", None) == 0.0


def test_the_per_call_estimate_leaves_out_the_first_slow_calls():
    """Compilation and autotuning make the first calls slow; the timed-call count is
    chosen from the later calls, so the timed window is not cut short."""
    state = {"n": 0}

    def fn():
        state["n"] += 1
        time.sleep(0.05 if state["n"] == 1 else 0.001)

    done, elapsed, per_call = timing.warm_up(fn, "cpu", 6, 0.0)
    assert done == 6 and elapsed >= 0.05 and per_call < 0.01


def test_sm_clock_is_read_through_the_nvml_funnel(fake_nvml):  # noqa: F811
    fake_nvml()
    read = timing._sm_clock_reader("cuda:0")
    assert read() == 1755  # the fake's SM clock
    assert timing._sm_clock_reader("cpu") is None


def test_sm_clock_is_none_when_nvml_is_missing(monkeypatch):
    from parabench.measure import nvml

    monkeypatch.setattr(nvml, "cuda_handle", lambda i: nvml.Missing("no driver"))
    assert timing._sm_clock_reader("cuda")() is None


@pytest.mark.parametrize("bad", [-0.1, float("nan"), 601.0])
def test_a_warm_up_time_out_of_range_is_refused(bad):
    with pytest.raises(UsageError, match="warm-up time"):
        Sweep(families=("vit",), depths=(1,), warmup_s=bad).validate()


def test_warmup_time_flag_refused_in_one_line(cli, tmp_path):
    r = cli("run", "--warmup-time", "-1", "--no-progress", db=tmp_path / "r.db")
    assert r.returncode == 2 and "warm-up time" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
