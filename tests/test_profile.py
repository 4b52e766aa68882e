"""Profile pass: trace layout, per-forward summary (synthetic GPU traces and real CPU
traces), and integration with the runner, the store and the CLI."""
from __future__ import annotations

import json
import types

import pytest
import torch

from parabench import cli
from parabench.catalog import build
from parabench.config import Sweep
from parabench.measure import efficiency
from parabench.measure.passes import extra_passes, guarded
from parabench.measure.profile import CHROME_NAME, profile_step, summarize_trace
from parabench.runner import run_sweep
from parabench.store import Store


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: on a shared 2-core machine two OpenMP threads can be 100x slower
    while other processes run (a descheduled thread stalls every parallel region)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _x(name, cat, ts, dur, **kw):
    return {"ph": "X", "name": name, "cat": cat, "ts": ts, "dur": dur, "pid": 1,
            "tid": kw.pop("tid", 1), **kw}


def _gpu_trace(kernels, *, steps=((0, 100), (100, 100)), sync=((60, 40), (160, 40)),
               graph=False):
    ev = [_x(f"ProfilerStep#{i}", cat, ts, d, tid=tid) for i, (ts, d) in enumerate(steps)
          for cat, tid in (("user_annotation", 1), ("gpu_user_annotation", 7))]
    for base in (0, 100):
        ev += [_x("aten::linear", "cpu_op", base + 5, 20),
               _x("aten::addmm", "cpu_op", base + 10, 10),
               _x("aten::relu", "cpu_op", base + 30, 5)]
    ev += [_x("cudaDeviceSynchronize", "cuda_runtime", ts, d) for ts, d in sync]
    if graph:
        ev += [_x("cudaGraphLaunch", "cuda_runtime", ts, 5) for ts in (50, 150)]
    else:
        ev += [_x("cudaLaunchKernel", "cuda_runtime", ts - 3, 2) for ts, _, _ in kernels]
    ev += [_x(name, "kernel", ts, d, tid=7) for ts, d, name in kernels]
    return {"traceEvents": ev}


def test_summary_of_a_launch_bound_gpu_trace():
    kernels = [(20, 5, "gemm"), (40, 5, "relu"), (120, 5, "gemm"), (140, 5, "relu")]
    s = summarize_trace(_gpu_trace(kernels))
    assert s["profile_unit"] == "kernels" and s["profiled_steps"] == 2
    assert s["kernels_per_forward"] == 2.0
    # per call: 10 us of kernels over the 25 us from the first kernel's start to the last's end
    assert s["gpu_busy_fraction"] == pytest.approx(20 / 50)
    assert s["launch_bound"] is True
    # host time per step minus the time blocked in cudaDeviceSynchronize
    assert s["cpu_dispatch_ms"] == pytest.approx((200 - 80) / 2 / 1e3)
    assert s["ops_per_forward"] == 2.0 and s["aten_calls_per_forward"] == 3.0
    assert s["top_kernels"][0]["name"] == "gemm"
    assert s["top_kernels"][0]["gpu_ms_per_forward"] == pytest.approx(5 / 1e3)
    top = {o["name"]: o for o in s["top_ops"]}
    assert top["aten::linear"]["self_ms_per_forward"] == pytest.approx(10 / 1e3)  # 20 - child 10


def test_busy_fraction_leaves_out_the_harness_between_calls():
    """Back-to-back kernels inside each call, long gaps between calls (timing events,
    the sync after each call): the GPU is fully busy while a forward runs. Over the
    whole window it would read 120/200 and call a GPU-bound forward launch-bound."""
    kernels = [(10, 40, "gemm"), (50, 20, "gemm"), (110, 60, "gemm")]
    s = summarize_trace(_gpu_trace(kernels))
    assert s["gpu_busy_fraction"] == pytest.approx(1.0)
    assert s["launch_bound"] is False


def test_kernels_outlasting_the_host_step_count_for_their_call():
    # the second call's kernel runs past its host annotation: still that call's work
    s = summarize_trace(_gpu_trace([(20, 30, "gemm"), (70, 10, "gemm"), (150, 150, "gemm")]))
    assert s["gpu_busy_fraction"] == pytest.approx((40 + 150) / (60 + 150))


def test_graph_replay_without_kernel_events_is_missing_not_zero():
    s = summarize_trace(_gpu_trace([], graph=True))
    assert s["kernels_per_forward"] is None and s["gpu_busy_fraction"] is None
    assert s["graph_launches_per_forward"] == 1.0
    assert "graph" in s["profile_note"]


def test_trace_without_steps_is_an_error():
    with pytest.raises(ValueError, match="ProfilerStep"):
        summarize_trace({"traceEvents": []})


def _ops_per_forward(family, depth, tmp_path):
    torch.manual_seed(0)
    model = build(family, depth, width="tiny", img_size=32)
    x = torch.randn(1, 3, 32, 32)

    def step():
        with torch.inference_mode():
            return model(x)

    res = profile_step(step, tmp_path / f"{family}-{depth}", wait=0, warmup=1, active=2)
    return summarize_trace(res["trace"]), res


def test_cpu_ops_per_forward_fused_flat_loop_grows(tmp_path):
    fused = [_ops_per_forward("paraformer-fused", k, tmp_path)[0] for k in (1, 4)]
    loop = [_ops_per_forward("paraformer-loop", k, tmp_path)[0] for k in (1, 4)]
    vit = [_ops_per_forward("vit", k, tmp_path)[0] for k in (1, 4)]
    assert fused[0]["ops_per_forward"] == fused[1]["ops_per_forward"]
    assert loop[1]["ops_per_forward"] > 3 * loop[0]["ops_per_forward"] * 0.8
    assert vit[1]["ops_per_forward"] > vit[0]["ops_per_forward"]
    for s in fused + loop:
        assert s["profile_unit"] == "ops" and s["gpu_busy_fraction"] is None
        assert s["kernels_per_forward"] == s["ops_per_forward"]
        assert s["cpu_dispatch_ms"] >= 0 and len(s["top_ops"]) == 10


def test_trace_layout_tensorboard_and_chrome(tmp_path):
    _, res = _ops_per_forward("paraformer-fused", 2, tmp_path)
    assert res["trace"].name.endswith(".pt.trace.json")  # what torch-tb-profiler lists
    assert res["chrome"].name == CHROME_NAME
    chrome = json.loads(res["chrome"].read_text())
    assert any(e.get("cat") == "cpu_op" for e in chrome["traceEvents"])
    assert len(res["step_ms"]) == 2
    # profiling the same point again replaces its trace instead of adding a second worker
    _, again = _ops_per_forward("paraformer-fused", 2, tmp_path)
    assert len(list(again["trace"].parent.glob("*.pt.trace.json"))) == 1


def test_failing_pass_keeps_the_point():
    def boom(ctx):
        raise RuntimeError("profiler exploded\nsecond line")

    boom.__name__ = "profile"
    out = guarded(boom)(types.SimpleNamespace(sweep=types.SimpleNamespace(device="cpu")))
    assert out == {"profile_error": "RuntimeError: profiler exploded"}


def _tiny_sweep(**kw):
    return Sweep(families=("paraformer-fused", "paraformer-loop"), depths=(1, 3), warmup=1,
                 min_samples=3, max_samples=5, min_time_s=0.0, threads=1, name="t", **kw)


def test_profile_and_telemetry_passes_fill_the_store(tmp_path, monkeypatch):
    monkeypatch.setattr(efficiency, "measure_peak", lambda d, t, **kw: (0.05, {"size": 0}))
    sweep = _tiny_sweep()
    with Store(tmp_path / "r.db") as store:
        passes = extra_passes(sweep, profile=True, telemetry=True, trace_dir=tmp_path / "tr",
                              store=store)
        run_id = run_sweep(sweep, store, passes=passes, progress=False, log=lambda m: None)
        df = store.records_frame([run_id])
    assert list(df["status"]) == ["ok"] * 4
    for r in df.itertuples():
        assert r.trace_dir.startswith(str(tmp_path / "tr" / run_id))
        assert list((tmp_path / "tr").glob(f"{run_id}/*/*.pt.trace.json"))
        assert r.kernels_per_forward > 10 and r.cpu_dispatch_ms >= 0
        assert r.extra["profile_unit"] == "ops" and r.extra["top_ops"]
        assert r.extra["profiler_latency_ratio"] > 0
        assert r.achieved_tflops > 0 and r.peak_fraction > 0
        assert r.extra["telemetry_missing"]
        assert not any(k.endswith("_error") for k in r.extra)
    ops = df.set_index(["family", "depth"])["kernels_per_forward"]
    assert ops["paraformer-fused", 1] == ops["paraformer-fused", 3]
    assert ops["paraformer-loop", 3] > ops["paraformer-loop", 1]
    assert df["gpu_busy_fraction"].isna().all() and df["energy_j_per_image"].isna().all()


def test_efficiency_pass_always_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(efficiency, "measure_peak", lambda d, t, **kw: (0.05, {}))
    with Store(tmp_path / "r.db") as store:
        passes = extra_passes(_tiny_sweep(), profile=False, telemetry=False, trace_dir=None,
                              store=store)
        assert len(passes) == 1
        run_id = run_sweep(_tiny_sweep(), store, passes=passes, progress=False,
                           log=lambda m: None)
        df = store.records_frame([run_id])
    assert df["achieved_tflops"].notna().all() and df["trace_dir"].isna().all()


def test_cli_profile(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(efficiency, "measure_peak", lambda d, t, **kw: (0.05, {}))
    rc = cli.main(["profile", "--family", "paraformer-fused", "--depth", "1", "--db",
                   str(tmp_path / "p.db"), "--trace-dir", str(tmp_path / "tr"), "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "paraformer-fused/d1/b1/float32/eager/infer" in out and "ops" in out
    assert f"tensorboard --logdir {tmp_path / 'tr'}" in out


@pytest.mark.parametrize("argv, message", [
    (["--family", "nope"], "unknown family"),
    (["--depth", "0"], "must be between 1 and"),
    (["--device", "cuda"], "cuda"),
])
def test_cli_profile_bad_input(tmp_path, capsys, argv, message):
    if argv == ["--device", "cuda"] and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    rc = cli.main(["profile", "--db", str(tmp_path / "p.db"), *argv])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1


def test_cli_profile_trace_dir_is_a_file(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("")
    assert cli.main(["profile", "--trace-dir", str(f), "--db", str(tmp_path / "p.db")]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_cli_profile_help(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["profile", "--help"])
    assert e.value.code == 0
    assert "tensorboard" in capsys.readouterr().out


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_profile_counts_kernels(tmp_path):
    model = build("paraformer-fused", 4, width="tiny", img_size=32, device="cuda")
    x = torch.randn(1, 3, 32, 32, device="cuda")

    def step():
        with torch.inference_mode():
            return model(x)

    res = profile_step(step, tmp_path / "gpu", device="cuda", wait=1, warmup=2, active=3)
    s = summarize_trace(res["trace"])
    assert s["profile_unit"] == "kernels" and s["kernels_per_forward"] > 5
    assert 0 < s["gpu_busy_fraction"] <= 1 and s["cpu_dispatch_ms"] > 0
