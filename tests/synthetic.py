"""Synthetic results databases with a known answer, for tests and for trying the report
without a GPU. The latency model is the physics of PARAFORMER.md in miniature: a serial
stack pays launch cost plus compute per layer; a fused Para-Former pays one launch cost
and compute that only shows once the batch is large enough to fill the device.

    python -c "from parabench.report.synthetic import make_db; make_db('x.db', 'paper')"
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..records import Record
from ..store import Store

__all__ = ["SYNTHETIC_TRUTH", "make_db"]

PAPER = dict(
    families=("paraformer-loop", "paraformer-fused", "vit", "vit-parallel", "resnet"),
    depths=(1, 2, 4, 8, 12, 24, 48), resnet_depths=(18, 34, 50, 101, 152),
    batches=(1, 32, 256), modes=("eager", "graph"), device="cuda", dtype="bfloat16",
    width="paper", img_size=224, n_samples=40, preset="paper",
)
QUICK = dict(
    families=("paraformer-loop", "paraformer-fused", "vit", "resnet"),
    depths=(1, 2, 4, 8), resnet_depths=(18, 34), batches=(1,), modes=("eager",),
    device="cpu", dtype="float32", width="tiny", img_size=32, n_samples=15, preset="quick",
)

#: The verdict each synthetic regime is built to have, as (family, batch) -> verdict,
#: for the GPU database (every mode). The fused model is flat while it is launch-bound.
SYNTHETIC_TRUTH = {
    ("paraformer-fused", 1): "flat",
    ("paraformer-fused", 256): "linear",
    ("vit", 1): "linear",
    ("vit", 256): "linear",
    ("paraformer-loop", 1): "linear",
}

LAUNCH_MS = {"eager": 0.12, "graph": 0.03, "compile": 0.05}  # per serial layer
WORK_MS = 0.0015  # ms per image per layer once compute-bound
GFLOPS_PER_LAYER = 0.38  # ViT-S block at 197 tokens, forward, per image


def _latency(fam: str, depth: int, batch: int, mode: str, gpu: bool) -> float:
    launch, work = LAUNCH_MS[mode], WORK_MS
    if not gpu:  # CPU: compute-bound from the start, no launch cost to hide
        launch, work = 0.01, 0.08
    base = (0.06 if mode == "graph" else 0.25) + batch * 0.002
    if fam == "paraformer-fused":  # compute hides under a floor until the device fills
        return base + 4 * launch + max(0.05, depth * batch * work * 1.7)
    if fam == "resnet":
        return base + depth / 3 * (launch + batch * work * 0.8)
    per_layer = max(launch, batch * work) + 0.1 * batch * work
    if fam == "paraformer-loop":
        per_layer *= 1.08
    elif fam == "vit-parallel":
        per_layer *= 0.85
    return base + depth * per_layer


def make_db(path, kind: str = "paper", *, seed: int = 0, family_alias: dict | None = None,
            comparison: bool = True) -> tuple[Store, str]:
    """Create (or add to) the database at `path` with one synthetic run of `kind`
    ('paper': GPU-like, 5 families x 7 depths x 3 batches x 2 modes, with profile,
    energy and efficiency metrics on some points; 'quick': CPU-like, no GPU metrics).
    `family_alias` renames families (e.g. to test escaping). Returns (store, run_id)."""
    spec = PAPER if kind == "paper" else QUICK
    gpu = spec["device"] == "cuda"
    rng = np.random.default_rng(seed)
    alias = family_alias or {}
    store = Store(Path(path))
    env = {"machine": "synthetic-h100" if gpu else "synthetic-cpu",
           "git": {"commit": "0123456789abcdef" * 2 + "01234567", "dirty": False},
           "torch": "2.11.0", "timm": "1.0.20", "python": "3.11", "threads": 2,
           "gpu": {"name": "NVIDIA H100 80GB HBM3 (synthetic)", "driver": "570.00"}
           if gpu else None, "cpu": "synthetic x86_64, 2 cores"}
    run_id = store.start_run(sweep={"synthetic": kind}, preset=spec["preset"],
                             command=f"synthetic {kind}", env=env)
    for fam in spec["families"]:
        depths = spec["resnet_depths"] if fam == "resnet" else spec["depths"]
        for d in depths:
            for b in spec["batches"]:
                for mode in spec["modes"]:
                    rec = _record(fam, d, b, mode, spec, gpu, rng)
                    rec.family = alias.get(fam, fam)
                    rec.key = f"{rec.family}/d{d}/b{b}/{spec['dtype']}/{mode}/infer"
                    store.add_record(run_id, rec)
    if gpu and comparison:
        rows = [
            dict(key="paraformer-fused/d48/b1/bfloat16/graph/infer", family="paraformer-fused",
                 depth=48, batch=1, mode="graph", unit="ms", baseline=0.30, contender=0.39,
                 ratio=1.31, ci_low=1.22, ci_high=1.40, p_value=1e-6, verdict="slower",
                 note=None),
            dict(key="vit/d48/b1/bfloat16/graph/infer", family="vit", depth=48, batch=1,
                 mode="graph", unit="ms", baseline=1.60, contender=1.61, ratio=1.01,
                 ci_low=0.98, ci_high=1.03, p_value=0.4, verdict="unchanged", note=None),
        ]
        store.add_comparison(run_id, run_id, {"rows": rows, "regressed": True,
                                              "counts": {"slower": 1, "unchanged": 1}})
    store.finish_run(run_id, "finished")
    return store, run_id


def _record(fam, d, b, mode, spec, gpu, rng) -> Record:
    common = dict(key="", family=fam, depth=d, batch=b, dtype=spec["dtype"], mode=mode,
                  workload="infer", device=spec["device"], img_size=spec["img_size"],
                  width=spec["width"])
    if gpu and fam == "vit-parallel" and d == 48 and b == 256:
        return Record(**common, status="oom", reason="CUDA out of memory (synthetic)")
    if gpu and fam == "resnet" and mode == "graph" and d == 152:
        return Record(**common, status="skipped", reason="graph capture not attempted")
    mu = _latency(fam, d, b, mode, gpu)
    samples = (mu * rng.lognormal(0.0, 0.03, spec["n_samples"])).round(5).tolist()
    layers = d / 3 if fam == "resnet" else d
    gflops = 0.35 + GFLOPS_PER_LAYER * layers
    extra = {}
    if gpu:
        fwd_s = mu / 1e3
        achieved = gflops * 1e9 * b / fwd_s / 1e12
        extra.update(achieved_tflops=achieved, peak_fraction=achieved / 700.0)
        if mode == "eager":  # the profile pass ran in eager mode only
            kernels = 30 if fam == "paraformer-fused" else 12 * layers + 8
            busy = min(0.97, (mu - LAUNCH_MS["eager"] * 0.6 * (kernels / 12)) / mu)
            extra.update(kernels_per_forward=kernels, gpu_busy_fraction=max(busy, 0.05),
                         cpu_dispatch_ms=kernels * 0.009,
                         trace_dir=f"traces/{fam}-d{d}-b{b}")
        if mode == "graph" and b > 1:  # energy windows only for the longer points
            power = 120 + 500 * min(1.0, b * WORK_MS * 10)
            extra.update(mean_power_w=power, energy_j_per_image=power * fwd_s / b,
                         throttled=int(b == 256 and d == 48))
    return Record(
        **common, samples_ms=samples, params=int(5e5 + 1.78e6 * layers),
        flops=gflops * 1e9, flops_analytic=gflops * 1e9 * 1.02,
        peak_mem_allocated=int((60 + 7 * layers + 0.4 * b * layers) * 2**20) if gpu else None,
        peak_rss=int((300 + 2 * layers) * 2**20), extra=extra,
    )
