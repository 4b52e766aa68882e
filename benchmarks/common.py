"""Shared by the asv benchmark modules: which sizes to run, and building one point.

Importing this module is cheap and never initialises CUDA (asv's forkserver imports
the suite once and forks every benchmark from it; CUDA must not be live before fork).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace

os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")  # is_available() without cuInit

import torch  # (imported once by asv's forkserver, so forked benchmarks start fast)

try:  # preload in the forkserver parent: timm alone takes seconds to import per child
    import timm  # noqa: F401

    import parabench.catalog  # noqa: F401
    import parabench.measure.timing  # noqa: F401
    import parabench.workloads  # noqa: F401
except ImportError:  # an old commit without these modules: the benchmarks fail, not discovery
    pass

PROFILE_ENV = "PARABENCH_ASV_PROFILE"


@dataclass(frozen=True)
class Profile:
    name: str
    device: str
    width: str
    img_size: int
    dtype: str
    transformer_depths: tuple[int, ...]
    resnet_depths: tuple[int, ...]
    batches: tuple[int, ...]
    modes: tuple[str, ...]
    warmup: int
    min_samples: int
    max_samples: int
    min_time_s: float
    threads: int | None = None  # torch CPU threads; None leaves torch's default


PROFILES = {
    "cpu": Profile(
        name="cpu", device="cpu", width="tiny", img_size=32, dtype="float32",
        transformer_depths=(1, 2, 4, 8), resnet_depths=(18, 34), batches=(1, 8),
        modes=("eager",), warmup=3, min_samples=15, max_samples=200, min_time_s=0.3,
        threads=1,
    ),
    "gpu": Profile(
        name="gpu", device="cuda", width="paper", img_size=224, dtype="bfloat16",
        transformer_depths=(1, 2, 4, 8, 12, 24, 48), resnet_depths=(18, 34, 50, 101, 152),
        batches=(1, 32, 256), modes=("eager", "graph"), warmup=10, min_samples=30,
        max_samples=300, min_time_s=0.5,
    ),
}

TRANSFORMER_FAMILIES = ("paraformer-loop", "paraformer-fused", "vit", "vit-parallel")


MODES_ENV = "PARABENCH_ASV_MODES"  # e.g. "eager,graph,compile" to add torch.compile on GPU
THREADS_ENV = "PARABENCH_ASV_THREADS"  # torch CPU threads; "0" keeps torch's default


def _pick_profile() -> Profile:
    name = os.environ.get(PROFILE_ENV, "").strip().lower()
    if not name:
        name = "gpu" if torch.cuda.is_available() else "cpu"
    if name not in PROFILES:
        raise ValueError(f"{PROFILE_ENV}={name!r}: choose from {', '.join(PROFILES)}")
    prof = PROFILES[name]
    modes = os.environ.get(MODES_ENV, "").strip()
    if modes:
        prof = replace(prof, modes=tuple(m.strip() for m in modes.split(",") if m.strip()))
    threads = os.environ.get(THREADS_ENV, "").strip()
    if threads:
        prof = replace(prof, threads=int(threads) or None)
    return prof


PROFILE = _pick_profile()


def skip(reason: str):
    """asv treats NotImplementedError from setup as 'skipped' (result n/a)."""
    raise NotImplementedError(reason)


def build_point(family: str, depth: int, batch: int, mode: str = "eager"):
    """(model, step, x) for one point, or NotImplementedError when it cannot run here."""
    from parabench import catalog
    from parabench.errors import UsageError
    from parabench.measure.timing import make_input
    from parabench.workloads import make_step, unsupported

    p = PROFILE
    if p.threads:
        torch.set_num_threads(p.threads)
    reason = unsupported(mode, "infer", p.device)
    if reason:
        skip(reason)
    try:
        catalog.check(family, depth, p.width, p.img_size)
    except UsageError as e:
        skip(str(e))
    dtype = getattr(torch, p.dtype)
    torch.manual_seed(0)
    model = catalog.build(family, depth, width=p.width, img_size=p.img_size,
                          device=p.device, dtype=dtype)
    x = make_input(batch, p.img_size, p.device, dtype)
    step = make_step(model, x, mode=mode, workload="infer",
                     num_classes=catalog.WIDTHS[p.width].num_classes)
    return model, step, x


def latency_samples_s(step) -> dict:
    """Time `step` with parabench's timer; return asv's timing-result shape, in seconds."""
    from parabench.measure.timing import measure

    p = PROFILE
    ms = measure(step, device=p.device, warmup=p.warmup, min_samples=p.min_samples,
                 max_samples=p.max_samples, min_time_s=p.min_time_s)
    return {"samples": [t / 1e3 for t in ms], "number": 1}
