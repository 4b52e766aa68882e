"""NVML telemetry: absent for real on this machine, present through a fake pynvml."""
from __future__ import annotations

import time
import types

import pytest

from parabench.measure import nvml
from parabench.measure.telemetry import (
    Sampler,
    decode_reasons,
    energy_window,
    measure_telemetry,
    telemetry_pass,
)


def _sleep_step(ms: float):
    def step():
        time.sleep(ms / 1e3)
    return step


def test_decode_reasons():
    assert decode_reasons(0) == []
    assert decode_reasons(0x1) == ["gpu_idle"]
    assert decode_reasons(0x4 | 0x40) == ["sw_power_cap", "hw_thermal_slowdown"]
    assert decode_reasons(0x10000) == ["0x10000"]


def test_absent_nvml_for_real_every_value_missing_with_reason():
    nvml.reset()
    ok, reason = nvml.status()
    if ok:
        pytest.skip("this machine has a working NVML")
    out = measure_telemetry(_sleep_step(1), batch=4, device="cpu", latency_ms=1.0)
    assert out["energy_j_per_image"] is None
    assert out["mean_power_w"] is None and out["throttled"] is None
    assert out["telemetry_missing"] == reason
    with Sampler(nvml.cuda_handle(0), 0.01) as s:  # a sampler on a missing handle is inert
        time.sleep(0.05)
    assert s.samples == [] and s.summary()["telemetry_unsupported"]["device"] == reason


def test_telemetry_pass_on_cpu_records_why():
    ctx = types.SimpleNamespace(sweep=types.SimpleNamespace(device="cpu"))
    out = telemetry_pass()(ctx)
    assert out["energy_j_per_image"] is None and "GPU" in out["telemetry_missing"]


def test_sampler_collects_samples_and_decodes_throttling(fake_nvml):  # noqa: F811
    fake = fake_nvml(reasons=0x4 | 0x1, temperature=False)
    with Sampler(nvml.handle(0), interval_s=0.01) as s:
        time.sleep(0.25)
    summary = s.summary()
    assert 8 <= summary["telemetry_samples"] <= 30
    assert 8 <= summary["sample_interval_ms"] <= 25
    assert summary["power_w_mean"] == pytest.approx(250.0)
    assert summary["power_source"].startswith("nvmlDeviceGetPowerUsage")  # no instant field
    # NVML's rates, named for what they are; both come from one call per sample
    assert summary["gpu_busy_pct_mean"] == 87 and summary["mem_busy_pct_mean"] == 41
    assert fake.calls["nvmlDeviceGetUtilizationRates"] == summary["telemetry_samples"]
    assert summary["sm_clock_mhz_min"] == 1755
    assert summary["mem_used_mb_max"] == 3 * 1024
    assert summary["throttle_reasons"] == ["gpu_idle", "sw_power_cap"]
    assert summary["throttled"] is True and summary["throttled_fraction"] == 1.0
    # an unsupported field is asked once, recorded, and not asked again
    assert "Not Supported" in summary["telemetry_unsupported"]["temperature"]
    assert fake.calls["nvmlDeviceGetTemperature"] == 1
    assert "temp_c_max" not in summary


def test_sampler_reads_instantaneous_power_where_the_driver_has_it(fake_nvml):  # noqa: F811
    fake = fake_nvml(watts=250.0, instant_watts=312.5)
    with Sampler(nvml.handle(0), interval_s=0.01) as s:
        time.sleep(0.05)
    summary = s.summary()
    assert summary["power_w_mean"] == pytest.approx(312.5) and summary["power_source"] == "instant"
    assert "nvmlDeviceGetPowerUsage" not in fake.calls  # the 1 s average is not read at all


def test_default_sampling_period_matches_what_nvml_updates():
    from parabench.measure.telemetry import SAMPLE_INTERVAL_S

    assert 0.05 <= SAMPLE_INTERVAL_S <= 0.1
    assert Sampler(nvml.Missing("none")).interval_s == SAMPLE_INTERVAL_S


def test_telemetry_pass_runs_at_the_largest_batch_and_costs_the_sampler_once_per_family(
        monkeypatch):
    import torch

    from parabench.measure import telemetry

    calls = []
    monkeypatch.setattr(telemetry, "measure_telemetry",
                        lambda step, **kw: calls.append(kw) or {"energy_j_per_image": 1.0})
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    run = telemetry_pass(min_batch=256)
    sweep = types.SimpleNamespace(device="cuda", min_samples=5, max_samples=10, min_time_s=0.1)

    def ctx(family, batch):
        point = types.SimpleNamespace(family=family, batch=batch, mode="eager")
        return types.SimpleNamespace(sweep=sweep, point=point, step=None, latency_ms=2.0)

    small = run(ctx("vit", 1))
    assert small["energy_j_per_image"] is None and "batch 256" in small["telemetry_missing"]
    eager = telemetry_pass(min_batch=256, modes=("graph",))(ctx("vit", 256))
    assert eager["energy_j_per_image"] is None and "graph" in eager["telemetry_missing"]
    for family in ("vit", "vit", "resnet", "vit"):
        assert run(ctx(family, 256))["energy_j_per_image"] == 1.0
    # the sampler-overhead re-measure: first vit and first resnet point only
    assert [c["latency_ms"] for c in calls] == [2.0, None, 2.0, None]


def test_idle_is_not_throttling(fake_nvml):  # noqa: F811
    fake_nvml(reasons=0x1)
    with Sampler(nvml.handle(0), interval_s=0.01) as s:
        time.sleep(0.05)
    assert s.summary()["throttled"] is False


def test_energy_from_the_counter(fake_nvml):  # noqa: F811
    fake_nvml(watts=200.0)
    h = nvml.handle(0)
    out = energy_window(_sleep_step(5), handle=h, images_per_call=8, min_window_s=0.3)
    assert out["energy_source"] == "energy_counter"
    assert out["energy_window_s"] >= 0.3
    assert out["mean_power_w"] == pytest.approx(200.0, rel=0.05)
    calls = out["energy_images"] / 8
    expected = 200.0 * out["energy_window_s"] / (calls * 8)
    assert out["energy_j_per_image"] == pytest.approx(expected, rel=0.05)


def test_energy_falls_back_to_sampled_power(fake_nvml):  # noqa: F811
    fake_nvml(watts=300.0, energy=False)
    h = nvml.handle(0)
    with Sampler(h, interval_s=0.01) as s:
        out = energy_window(_sleep_step(5), handle=h, images_per_call=1, min_window_s=0.3,
                            sampler=s)
    assert out["energy_source"] == "sampled_power"
    assert "energy_counter_missing" in out
    assert out["mean_power_w"] == pytest.approx(300.0, rel=0.15)  # edges not sampled


def test_measure_telemetry_with_fake_nvml(fake_nvml):  # noqa: F811
    fake_nvml(watts=150.0, reasons=0)
    out = measure_telemetry(_sleep_step(2), batch=2, device="cpu", latency_ms=2.1,
                            min_window_s=0.3,
                            timing={"warmup": 1, "min_samples": 5, "max_samples": 50,
                                    "min_time_s": 0.05})
    assert "telemetry_missing" not in out
    assert out["throttled"] is False and out["throttle_reasons"] == []
    assert out["mean_power_w"] == pytest.approx(150.0, rel=0.05)
    assert out["energy_j_per_image"] > 0
    assert 0.5 < out["sampler_latency_ratio"] < 3
    assert out["telemetry_samples"] >= 5  # 0.3 s at the 50 ms period


@pytest.mark.gpu
@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs CUDA")
def test_real_nvml_on_gpu():
    import torch

    nvml.reset()
    ok, reason = nvml.status()
    if not ok:
        pytest.skip(f"CUDA without NVML: {reason}")
    a = torch.randn(4096, 4096, device="cuda", dtype=torch.bfloat16)

    def step():
        return a @ a

    out = measure_telemetry(step, batch=1, device="cuda", latency_ms=1.0, min_window_s=1.0,
                            timing={"warmup": 3, "min_samples": 10, "max_samples": 200,
                                    "min_time_s": 0.2})
    assert "telemetry_missing" not in out, out
    assert out["telemetry_samples"] > 10 and out["power_w_mean"] > 10
    assert out["energy_source"] == "energy_counter"
    assert out["energy_j_per_image"] > 0 and 10 < out["mean_power_w"] < 2000
    assert out["throttled"] in (True, False)
    assert 0 <= out["gpu_busy_pct_mean"] <= 100 and out["power_source"]


@pytest.mark.gpu
@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs CUDA")
def test_energy_window_paces_launches_so_it_ends_on_time():
    """A step that is one cheap launch for the host and ~20 ms for the GPU: unpaced,
    the host queues a second's worth of calls in far less than a second, and the
    window's closing sync waits for all of them."""
    import torch

    a = torch.randn(8192, 8192, device="cuda", dtype=torch.float32)

    def step():
        torch.mm(a, a)

    for _ in range(3):
        step()
    torch.cuda.synchronize()
    t = time.perf_counter()
    step()
    torch.cuda.synchronize()
    per_call = time.perf_counter() - t
    out = energy_window(step, handle=nvml.Missing("not needed"), images_per_call=1,
                        device="cuda", min_window_s=0.5)
    assert out["energy_window_s"] < 0.5 + 4 * per_call + 0.1, (out, per_call)
