"""torch.profiler traces of a point, and the summary that explains its latency curve.

A profile pass runs after the latency pass, on the same built model: `wait` calls are
ignored, `warmup` calls are profiled and thrown away (the profiler's own start-up),
then `active` calls are recorded. The trace is written by
`torch.profiler.tensorboard_trace_handler` as DIR/<run id>/<point>/<worker>.<n>.pt.trace.json,
so `tensorboard --logdir DIR` (torch-tb-profiler) lists one run per point. That file
*is* Chrome trace-event JSON; `trace.chrome.json` beside it (a hard link, else a copy)
gives it a name that Perfetto (ui.perfetto.dev) or chrome://tracing open directly. A
kineto trace can be saved once only, so the handler writes it and the link reuses it.

The summary is computed from the trace file itself (one code path for CPU and GPU):
- ops per forward: top-level aten ops (not nested in another op) per profiled call;
- kernels per forward (CUDA): GPU kernel events per call;
- GPU busy fraction: per profiled call, the union of its kernel/memcpy/memset
  intervals over the span from its first to its last GPU activity, summed over calls.
  The span deliberately leaves out what the harness adds around each call (the events
  that time it, the synchronisation after it, Python between calls): at batch 1 under
  a CUDA graph those gaps are longer than the forward itself, and counting them called
  every such point launch-bound. What is left is the idle time *inside* a forward.
  `launch_bound` when the GPU is idle more than half of it;
- CPU dispatch per forward: CUDA: host time per call minus the time blocked in
  synchronisation, i.e. the time to issue the forward. CPU: host time per call outside
  any aten op (Python and nn.Module glue between ops). The dispatcher's own cost inside
  each op is not separable from the op's compute on CPU; ops per forward times a few
  microseconds estimates it;
- top operators by self time (and, on CUDA, top kernels by GPU time).
Each profiled call is followed by a synchronisation on CUDA, so a call's kernels fall
inside its own step. The profiler itself slows every op down (shapes and memory are
recorded): `profiler_latency_ratio` is the profiled calls' median over the latency
pass's median, and the absolute times above are inflated by about that much.

CUDA graphs: a replay is one `cudaGraphLaunch`; depending on the CUDA/CUPTI version the
kernels inside it are traced or not. `graph_launches_per_forward` is recorded, and if
no kernel was seen the kernel count and busy fraction are left missing with a note
rather than reported as 0.
"""
from __future__ import annotations

import bisect
import json
import os
import shutil
import socket
import statistics
import time
from collections import defaultdict
from pathlib import Path

from .device import sync

__all__ = ["point_trace_dir", "profile_pass", "profile_step", "summarize_trace"]

#: GPU activity that counts as "busy"
_GPU_CATS = ("kernel", "gpu_memcpy", "gpu_memset")
#: idle share of the profiled window above which a point is called launch-bound
LAUNCH_BOUND_IDLE = 0.5
TOP_N = 10
CHROME_NAME = "trace.chrome.json"


def point_trace_dir(trace_dir, run_id: str, key: str) -> Path:
    """DIR/<run id>/<point key with / -> _>: one TensorBoard run per point."""
    from ..outputs import safe_name

    run = safe_name(run_id) if run_id else "adhoc"  # a stored id may hold '../'
    return Path(trace_dir) / run / safe_name(key.replace("/", "_"), "point key")


def profile_step(step, out_dir, *, device: str = "cpu", wait: int = 1, warmup: int = 2,
                 active: int = 5, worker: str | None = None) -> dict:
    """Profile `active` calls of `step` into `out_dir`; return the paths and the host
    (CPU) or CUDA-event (GPU) time of each profiled call in ms."""
    import torch
    from torch.profiler import ProfilerActivity, profile, schedule, tensorboard_trace_handler

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.pt.trace.json*"):  # a re-measured point replaces its trace
        old.unlink()
    cuda = device.startswith("cuda")
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    handler = tensorboard_trace_handler(
        str(out), worker_name=worker or f"{socket.gethostname()}_{os.getpid()}"
    )
    times: list[float] = []
    total = wait + warmup + active
    sync(device)
    with profile(activities=activities, record_shapes=True, profile_memory=True,
                 with_stack=False, on_trace_ready=handler,
                 schedule=schedule(wait=wait, warmup=warmup, active=active, repeat=1)) as prof:
        for i in range(total):
            recorded = i >= wait + warmup
            if cuda:
                start, end = (torch.cuda.Event(enable_timing=True) for _ in range(2))
                start.record()
                step()
                end.record()
                torch.cuda.synchronize()
                if recorded:
                    times.append(start.elapsed_time(end))
            else:
                t = time.perf_counter_ns()
                step()
                if recorded:
                    times.append((time.perf_counter_ns() - t) / 1e6)
            prof.step()
    traces = sorted(out.glob("*.pt.trace.json"), key=lambda p: p.stat().st_mtime)
    if not traces:
        raise RuntimeError(f"torch.profiler wrote no trace into {out}")
    trace = traces[-1]
    chrome = out / CHROME_NAME
    chrome.unlink(missing_ok=True)
    try:
        os.link(trace, chrome)
    except OSError:
        shutil.copyfile(trace, chrome)
    return {"trace": trace, "chrome": chrome, "step_ms": times}


def _interval_union(intervals) -> float:
    total, cur_s, cur_e = 0.0, None, None
    for s, e in sorted(intervals):
        if cur_e is None or s > cur_e:
            if cur_e is not None:
                total += cur_e - cur_s
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    if cur_e is not None:
        total += cur_e - cur_s
    return total


def _op_tree(ops):
    """Per thread, mark top-level ops (nested in no other op) and compute self times (us)."""
    by_thread = defaultdict(list)
    for e in ops:
        by_thread[(e.get("pid"), e.get("tid"))].append(e)
    nodes = []
    for evs in by_thread.values():
        evs.sort(key=lambda e: (e["ts"], -e["dur"]))
        stack: list[dict] = []
        for e in evs:
            start, end = e["ts"], e["ts"] + e["dur"]
            while stack and stack[-1]["end"] <= start + 1e-3:
                stack.pop()
            node = {"name": e["name"], "start": start, "end": end, "dur": e["dur"],
                    "self": e["dur"], "top": not stack}
            if stack:
                stack[-1]["self"] -= e["dur"]
            stack.append(node)
            nodes.append(node)
    return nodes


def _busy_within_calls(steps, gpu) -> float | None:
    """Busy share of the GPU between each call's first and last GPU activity. A GPU
    event belongs to the call whose host step it starts in: each profiled call ends
    with a synchronisation, so its work cannot start in a later step."""
    starts = sorted(e["ts"] for e in steps)
    per_call: dict[int, list] = defaultdict(list)
    for e in gpu:
        i = bisect.bisect_right(starts, e["ts"]) - 1
        if i >= 0:
            per_call[i].append((e["ts"], e["ts"] + e["dur"]))
    busy = span = 0.0
    for intervals in per_call.values():
        busy += _interval_union(intervals)
        span += max(e for _, e in intervals) - min(s for s, _ in intervals)
    return busy / span if span > 0 else None


def summarize_trace(trace) -> dict:
    """The per-forward summary of one trace (a parsed Chrome trace dict or its path)."""
    if not isinstance(trace, dict):
        with open(trace) as f:
            trace = json.load(f)
    events = [e for e in trace.get("traceEvents", []) if e.get("ph") == "X" and "dur" in e]
    # host-side step annotations only: CUDA traces mirror them on the GPU timeline
    # ("gpu_user_annotation"), and older torch files them as cpu_op
    steps = [e for e in events if str(e.get("name", "")).startswith("ProfilerStep#")
             and not str(e.get("cat", "")).startswith("gpu_")]
    if not steps:
        raise ValueError("trace holds no ProfilerStep events (was it recorded with a schedule?)")
    n = len(steps)
    t0 = min(e["ts"] for e in steps)
    host_end = max(e["ts"] + e["dur"] for e in steps)
    ops = [e for e in events if e.get("cat") == "cpu_op" and t0 <= e["ts"] <= host_end
           and not str(e.get("name", "")).startswith("ProfilerStep#")]
    nodes = _op_tree(ops)
    gpu = [e for e in events if e.get("cat") in _GPU_CATS]
    kernels = [e for e in gpu if e.get("cat") == "kernel"]
    runtime = [e for e in events if e.get("cat") in ("cuda_runtime", "cuda_driver")]
    graph_launches = sum(1 for e in runtime if "GraphLaunch" in e.get("name", ""))
    step_host_us = sum(e["dur"] for e in steps)
    out: dict = {
        "profiled_steps": n,
        "ops_per_forward": sum(1 for x in nodes if x["top"]) / n,
        "aten_calls_per_forward": len(nodes) / n,
    }
    self_time: dict[str, list] = defaultdict(lambda: [0.0, 0])
    for x in nodes:
        self_time[x["name"]][0] += x["self"]
        self_time[x["name"]][1] += 1
    out["top_ops"] = [
        {"name": k, "self_ms_per_forward": round(v[0] / n / 1e3, 5), "calls_per_forward": v[1] / n}
        for k, v in sorted(self_time.items(), key=lambda kv: -kv[1][0])[:TOP_N]
    ]
    if not (runtime or gpu):
        in_ops_us = _interval_union([(x["start"], x["end"]) for x in nodes if x["top"]])
        out.update(profile_unit="ops", kernels_per_forward=out["ops_per_forward"],
                   gpu_busy_fraction=None, launch_bound=None,
                   cpu_dispatch_ms=max(step_host_us - in_ops_us, 0.0) / n / 1e3)
        return out
    sync_us = sum(e["dur"] for e in runtime if "Synchronize" in e.get("name", ""))
    out["cpu_dispatch_ms"] = max(step_host_us - sync_us, 0.0) / n / 1e3
    out["profile_unit"] = "kernels"
    out["graph_launches_per_forward"] = graph_launches / n
    if not kernels:
        note = ("no kernel events in the trace" + (
            f"; {graph_launches} CUDA graph launches: this CUPTI does not trace kernels "
            "inside graph replays" if graph_launches else ""))
        out.update(kernels_per_forward=None, gpu_busy_fraction=None, launch_bound=None,
                   profile_note=note)
        return out
    busy = _busy_within_calls(steps, gpu)
    out["kernels_per_forward"] = len(kernels) / n
    out["gpu_busy_fraction"] = busy
    out["launch_bound"] = None if busy is None else (1.0 - busy) > LAUNCH_BOUND_IDLE
    per_kernel: dict[str, list] = defaultdict(lambda: [0.0, 0])
    for e in kernels:
        per_kernel[e["name"]][0] += e["dur"]
        per_kernel[e["name"]][1] += 1
    out["top_kernels"] = [
        {"name": k[:160], "gpu_ms_per_forward": round(v[0] / n / 1e3, 5),
         "calls_per_forward": v[1] / n}
        for k, v in sorted(per_kernel.items(), key=lambda kv: -kv[1][0])[:TOP_N]
    ]
    if graph_launches:
        out["profile_note"] = ("CUDA graph replay: kernels as traced by CUPTI inside "
                               f"{graph_launches} graph launches; launch cost is per graph")
    return out


def profile_pass(trace_dir, *, wait: int = 1, warmup: int = 2, active: int = 5):
    """The extra pass `fn(ctx) -> dict` that profiles each point into `trace_dir`."""

    def run(ctx) -> dict:
        out_dir = point_trace_dir(trace_dir, ctx.run_id, ctx.point.key).resolve()
        res = profile_step(ctx.step, out_dir, device=ctx.sweep.device, wait=wait,
                           warmup=warmup, active=active)
        summary = summarize_trace(res["trace"])
        summary["trace_dir"] = str(out_dir)
        summary["chrome_trace"] = str(res["chrome"])
        if res["step_ms"] and ctx.latency_ms:
            summary["profiler_latency_ratio"] = statistics.median(res["step_ms"]) / ctx.latency_ms
        return summary

    run.__name__ = "profile"
    return run
