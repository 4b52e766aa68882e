"""Synthetic results databases with a known answer, for the report tests and for trying
the report without a GPU. The sweeps are the real presets (`config.PRESETS`, sizes from
`config.WIDTHS`); only the numbers are made up. The latency model is the physics of
PARAFORMER.md in miniature: a serial stack pays launch cost plus compute per layer; a
fused Para-Former pays one launch cost and compute that only shows once the batch is
large enough to fill the device.

    cd tests && python -c "from synthetic import make_db; make_db('x.db', 'paper')"
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from parabench.config import PRESETS, WIDTHS, Sweep, Width
from parabench.records import Record
from parabench.regress.verdicts import DEFAULT_ALPHA, DEFAULT_THRESHOLD
from parabench.store import Store

__all__ = ["EVIL_FAMILY", "EVIL_REASON", "SYNTHETIC_TRUTH", "make_db", "make_evil_db"]

#: Raw samples per synthetic point, per preset (the synthetic-only knob of a sweep).
N_SAMPLES = {"paper": 40, "quick": 15}

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
PEAK_TFLOPS = 700.0  # the synthetic GPU's "measured" peak


def _latency(fam: str, depth: int, batch: int, mode: str, gpu: bool) -> float:
    launch, work = LAUNCH_MS[mode], WORK_MS
    if not gpu:  # CPU: compute-bound from the start, no launch cost to hide
        launch, work = 0.01, 0.08
    base = (0.06 if mode == "graph" else 0.25) + batch * 0.002
    if fam == "paraformer-fused":  # compute hides under a floor until the device fills
        return base + 4 * launch + max(0.05, depth * batch * work * 1.7)
    if fam == "paraformer-least-work":  # the same, with a sixth of the work per branch
        return base + 4 * launch + max(0.05, depth * batch * work * 1.7 / 6)
    if fam == "resnet":
        return base + depth / 3 * (launch + batch * work * 0.8)
    per_layer = max(launch, batch * work) + 0.1 * batch * work
    if fam == "paraformer-loop":
        per_layer *= 1.08
    elif fam == "paraformer-serial":
        per_layer *= 1.03
    elif fam == "vit-parallel":
        per_layer *= 0.85
    return base + depth * per_layer


def _sizes(w: Width, img_size: int) -> tuple[float, float, float, float]:
    """(params, forward FLOPs) of the stem + head and of one transformer block, per image,
    for width `w` at `img_size` (FLOPs = 2 x multiply-adds, as torch's counter has it)."""
    patches = (img_size // w.patch) ** 2
    tokens = patches + 1
    block_params = 4 * w.dim * w.dim + 2 * w.dim * w.mlp_dim + 9 * w.dim + w.mlp_dim
    block_flops = 2 * (tokens * (4 * w.dim * w.dim + 2 * w.dim * w.mlp_dim)
                       + 2 * tokens * tokens * w.dim)
    stem = 3 * w.patch * w.patch * w.dim
    base_params = stem + (tokens + 1) * w.dim + (w.dim + 1) * w.num_classes
    base_flops = 2 * (patches * stem + w.dim * w.num_classes)
    return base_params, base_flops, block_params, block_flops


def make_db(path, kind: str = "paper", *, seed: int = 0, family_alias: dict | None = None,
            comparison: bool = True, load=None) -> tuple[Store, str]:
    """Create (or add to) the database at `path` with one synthetic run of preset `kind`
    ('paper': GPU-like, 7 families x 7 depths x 3 batches x 2 modes, with profile,
    energy and efficiency metrics on some points; 'quick': CPU-like, no GPU metrics).
    `family_alias` renames families (e.g. to test escaping); `load(point)`, when given,
    returns the load conditions recorded in each record's extra. Returns (store, run_id)."""
    sweep = PRESETS[kind]
    gpu = sweep.device == "cuda"
    rng = np.random.default_rng(seed)
    alias = family_alias or {}
    store = Store(Path(path))
    commit = "0123456789abcdef" * 2 + "01234567"
    env = {"machine": "synthetic-h100" if gpu else "synthetic-cpu",
           "git": {"commit": commit, "dirty": False},
           "torch": "2.11.0", "timm": "1.0.20", "python": "3.11", "threads": 2,
           "gpu": {"name": "NVIDIA H100 80GB HBM3 (synthetic)", "driver": "570.00"}
           if gpu else None, "cpu": "synthetic x86_64, 2 cores"}
    run_id = store.start_run(sweep={"synthetic": kind}, preset=sweep.name,
                             command=f"synthetic {kind}", env=env)
    for p in sweep.points():
        rec = _record(p, sweep, N_SAMPLES[kind], gpu, rng)
        rec.family = alias.get(p.family, p.family)
        rec.key = f"{rec.family}/d{p.depth}/b{p.batch}/{p.dtype}/{p.mode}/{p.workload}"
        if load is not None:
            rec.extra.update(load(p))
        store.add_record(run_id, rec)
    if gpu and comparison:
        store.add_comparison(run_id, run_id, _comparison(run_id, commit, env))
    store.finish_run(run_id, "finished")
    return store, run_id


def _comparison(run_id: str, commit: str, env: dict) -> dict:
    """A stored comparison in `compare.compare_sides`'s shape: one regression."""
    def row(family, baseline, contender, ratio, ci_low, ci_high, p_value, verdict):
        return dict(key=f"{family}/d48/b1/bfloat16/graph/infer", family=family, depth=48,
                    batch=1, mode="graph", unit="ms", ratio=ratio, ci_low=ci_low,
                    ci_high=ci_high, p_value=p_value, verdict=verdict, baseline=baseline,
                    contender=contender, n_baseline=40, n_contender=40, note=None)

    side = {"kind": "store", "id": run_id, "label": f"run {run_id} ({commit[:10]})",
            "env": {"machine": env["machine"], "gpu": env["gpu"]["name"],
                    "torch": env["torch"], "cuda": None, "threads": env["threads"]},
            "dirty": False}
    return {"baseline": side, "contender": side, "measurement": "separate runs",
            "threshold": DEFAULT_THRESHOLD, "alpha": DEFAULT_ALPHA, "mixed": False,
            "mixed_reasons": [], "counts": {"slower": 1, "unchanged": 1}, "regressed": True,
            "rows": [row("paraformer-fused", 0.30, 0.39, 1.31, 1.22, 1.40, 1e-6, "slower"),
                     row("vit", 1.60, 1.61, 1.01, 0.98, 1.03, 0.4, "unchanged")]}


def _record(p, sweep: Sweep, n_samples: int, gpu: bool, rng) -> Record:
    fam, d, b, mode = p.family, p.depth, p.batch, p.mode
    common = dict(key="", family=fam, depth=d, batch=b, dtype=p.dtype, mode=mode,
                  workload=p.workload, device=sweep.device, img_size=sweep.img_size,
                  width=sweep.width)
    if gpu and fam == "vit-parallel" and d == 48 and b == 256:
        return Record(**common, status="oom", reason="CUDA out of memory (synthetic)")
    if gpu and fam == "resnet" and mode == "graph" and d == 152:
        return Record(**common, status="skipped", reason="graph capture not attempted")
    mu = _latency(fam, d, b, mode, gpu)
    samples = (mu * rng.lognormal(0.0, 0.03, n_samples)).round(5).tolist()
    layers = d / 3 if fam == "resnet" else d
    base_params, base_flops, block_params, block_flops = _sizes(WIDTHS[sweep.width],
                                                                sweep.img_size)
    flops = base_flops + block_flops * layers
    if fam == "paraformer-least-work":  # the same output for about a sixth of the work
        flops = base_flops + block_flops * layers / 6.3
    extra = {}
    if gpu:
        fwd_s = mu / 1e3
        achieved = flops * b / fwd_s / 1e12
        extra.update(achieved_tflops=achieved, peak_fraction=achieved / PEAK_TFLOPS)
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
        **common, samples_ms=samples, params=int(base_params + block_params * layers),
        flops=flops, flops_analytic=flops * 1.02,
        peak_mem_allocated=int((60 + 7 * layers + 0.4 * b * layers) * 2**20) if gpu else None,
        peak_rss=int((300 + 2 * layers) * 2**20), extra=extra,
    )


#: what the paper-sized report's user strings carry, to be shown escaped (and never run)
EVIL_FAMILY = {"resnet": "resnet<script>alert(1)</script>"}
EVIL_REASON = '<img src=x onerror="alert(2)">'


def make_evil_db(path, kind: str):
    """A synthetic database of preset `kind` whose resnet family is named with markup,
    plus one error row whose reason is markup. Returns (path, run_id)."""
    store, run_id = make_db(path, kind, family_alias=EVIL_FAMILY)
    store.add_record(run_id, Record(
        key="bad", family="vit", depth=3, batch=1, dtype="float32", mode="eager",
        workload="infer", device="cpu", img_size=32, width="tiny", status="error",
        reason=EVIL_REASON))
    store.close()
    return path, run_id
