"""Achieved TFLOP/s and the measured, cached peak."""
from __future__ import annotations

import time
import types

import pytest

from parabench.config import Point, Sweep
from parabench.measure import efficiency
from parabench.measure.efficiency import (
    achieved_tflops,
    efficiency_pass,
    measure_peak,
    peak_key,
    peak_tflops,
)
from parabench.store import Store


@pytest.fixture
def tf32_switches():
    """Set torch's two TF32 switches for one test, and put them back after it."""
    import torch

    mm, conv = torch.backends.cuda.matmul, torch.backends.cudnn
    saved = (mm.allow_tf32, conv.allow_tf32)

    def set_switches(matmul: bool, cudnn: bool):
        mm.allow_tf32, conv.allow_tf32 = matmul, cudnn

    yield set_switches
    mm.allow_tf32, conv.allow_tf32 = saved


def test_achieved_tflops_arithmetic():
    # 1 GFLOP per image, batch 4, 2 ms -> 2 TFLOP/s
    assert achieved_tflops(1e9, 4, 2.0) == pytest.approx(2.0)
    assert achieved_tflops(1e9, 4, 2.0, "train") == pytest.approx(6.0)
    assert achieved_tflops(None, 4, 2.0) is None
    assert achieved_tflops(1e9, 4, 0.0) is None


def test_cpu_peak_size_grows_only_while_a_call_fits_the_window():
    """The CPU peak's matmul is sized from a call of the smallest size up, so a dtype
    with slow kernels here (bfloat16 on an AVX2-only CPU: a 2048 matmul for well over a
    minute) is measured small instead of holding its point past any timeout."""
    import torch

    from parabench.measure.efficiency import CPU_SIZES, _cpu_size

    assert _cpu_size(torch.float32, min_time_s=1e-7) == CPU_SIZES[0]  # nothing fits
    assert _cpu_size(torch.float32, min_time_s=1e4) == CPU_SIZES[-1]  # everything does
    t = time.perf_counter()
    _, detail = measure_peak("cpu", "bfloat16", min_time_s=0.2)
    assert time.perf_counter() - t < 20 and detail["size"] in CPU_SIZES


def test_cpu_peak_is_sane():
    tflops, detail = measure_peak("cpu", "float32", size=512, min_time_s=0.2)
    assert 1e-4 < tflops < 20  # 2 cores: tens of GFLOP/s; anything in range is a real number
    assert detail["size"] == 512 and detail["reps"] >= 3 and detail["threads"] >= 1
    # the peak is the median call, not the luckiest one
    assert tflops == pytest.approx(2 * 512**3 / detail["median_s"] / 1e12)
    assert detail["median_s"] >= detail["best_s"]


def test_peak_is_measured_once_and_cached(tmp_path, monkeypatch):
    calls = []

    def fake_measure(device, dtype, **kw):
        calls.append((device, dtype))
        return 0.05, {"size": 1}

    monkeypatch.setattr(efficiency, "measure_peak", fake_measure)
    with Store(tmp_path / "db.sqlite") as store:
        assert peak_tflops(store, "cpu", "float32", machine="m") == (0.05, "measured")
        assert peak_tflops(store, "cpu", "float32", machine="m") == (0.05, "cached")
        dev, dt = peak_key("cpu", "float32")
        assert store.get_peak("m", dev, dt) == 0.05
    assert calls == [("cpu", "float32")]


def test_efficiency_pass(tmp_path, monkeypatch):
    monkeypatch.setattr(efficiency, "measure_peak", lambda d, t, **kw: (0.02, {}))
    sweep = Sweep(families=("vit",), depths=(2,))
    point = Point("vit", 2, 4, "float32", "eager", "infer")
    with Store(tmp_path / "db.sqlite") as store:
        fn = efficiency_pass(store)
        ctx = types.SimpleNamespace(point=point, sweep=sweep, latency_ms=1.0, store=store)
        out = fn(ctx)
    from parabench.catalog import model_info

    flops = model_info("vit", 2, width="tiny", img_size=32)["flops"]
    assert out["achieved_tflops"] == pytest.approx(flops * 4 / 1e-3 / 1e12)
    assert out["peak_fraction"] == pytest.approx(out["achieved_tflops"] / 0.02)
    assert out["peak_source"] == "measured" and out["flops_factor"] == 1.0


@pytest.mark.parametrize("matmul_tf32, cudnn_tf32, matmul_key, conv_key", [
    # torch's defaults: convolutions on TF32, matmuls not: a transformer's fp32 point is
    # divided by an IEEE peak, ResNet's by a TF32 one
    (False, True, "float32", "float32+tf32conv"),
    (True, True, "float32+tf32mm", "float32+tf32conv"),
    (False, False, "float32", "float32"),
    (True, False, "float32+tf32mm", "float32"),
])
def test_cuda_peak_key_follows_the_switch_of_the_points_own_work(
        tf32_switches, matmul_tf32, cudnn_tf32, matmul_key, conv_key):
    tf32_switches(matmul_tf32, cudnn_tf32)
    assert peak_key("cuda", "float32", "matmul") == ("cuda", matmul_key)
    assert peak_key("cuda", "float32", "conv") == ("cuda", conv_key)
    assert peak_key("cuda", "bfloat16", "conv") == ("cuda", "bfloat16")  # TF32 is fp32's


def test_efficiency_pass_takes_each_familys_own_peak(tmp_path, monkeypatch, tf32_switches):
    """A transformer and ResNet in one fp32 CUDA sweep are divided by different peaks
    when only cuDNN's TF32 switch is on (torch's default)."""
    tf32_switches(False, True)
    asked = []

    def fake_peak(store, device, dtype, *, machine=None, work="matmul"):
        asked.append(peak_key(device, dtype, work))
        return (400.0 if work == "conv" else 60.0), "measured"

    monkeypatch.setattr(efficiency, "peak_tflops", fake_peak)
    sweep = Sweep(families=("vit", "resnet"), depths=(2,), depth_overrides=(("resnet", (18,)),),
                  device="cuda")
    fn = efficiency_pass(None)
    outs = {}
    for fam, depth in (("vit", 2), ("resnet", 18)):
        ctx = types.SimpleNamespace(point=Point(fam, depth, 4, "float32", "eager", "infer"),
                                    sweep=sweep, latency_ms=1.0, store=None)
        outs[fam] = fn(ctx)
    assert asked == [("cuda", "float32"), ("cuda", "float32+tf32conv")]
    assert outs["vit"]["peak_tflops"] == 60.0 and outs["resnet"]["peak_tflops"] == 400.0


@pytest.mark.gpu
@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs CUDA")
def test_gpu_peak_is_sane():
    tflops, detail = measure_peak("cuda", "bfloat16")
    assert 1 < tflops < 5000 and detail["size"] == 8192
    assert detail["median_s"] >= detail["best_s"] and detail["bursts"] >= 5


@pytest.mark.gpu
@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs CUDA")
def test_gpu_float32_peak_uses_tf32_only_for_the_work_whose_switch_is_on(tf32_switches):
    import torch

    tf32_switches(False, True)
    _, conv = measure_peak("cuda", "float32", size=4096, work="conv")
    _, matmul = measure_peak("cuda", "float32", size=4096, work="matmul")
    assert conv["tf32"] is True and matmul["tf32"] is False
    assert torch.backends.cuda.matmul.allow_tf32 is False  # the switch is restored
