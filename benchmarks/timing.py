"""Forward latency as asv `time_*` benchmarks: the ones `asv continuous` alternates.

asv runs a `time_*` benchmark in rounds (`rounds = 2` by default) and, under `asv
continuous`, alternates the rounds of the two commits, so a drift of machine speed
hits both. `track_*` results (benchmarks/latency.py) get one round and no alternation;
on the 2-core development VM that made `asv continuous` flag 3 of 3 no-op commits.
With these benchmarks (5 repeats per planted commit, same VM) no no-op was flagged, but
two rounds of a few samples leave about ±25 % of noise: a 30 % slowdown was flagged 2
times of 5 and an untouched ViT once at 1.68x. So they serve asv's history and site;
gating uses `parabench compare --interleave` and instruction counts (README).

The timer is right for CUDA because each timed call ends with
`torch.cuda.synchronize()`: asv's wall clock then spans the forward's GPU work, plus
one synchronisation (~10 us) that parabench's CUDA-event timer does not pay. That is
a constant offset, the same for both commits, so ratios stay honest for any forward
much longer than it; for microsecond-scale forwards use `parabench compare
--interleave` (CUDA events) instead. On CPU there is nothing to synchronise.
"""
from __future__ import annotations

from typing import ClassVar

from .common import SWEEP, TRANSFORMER_FAMILIES, PreparedPoint


def _synced(step):
    import torch

    if SWEEP.device != "cuda":
        return step

    def call():
        step()
        torch.cuda.synchronize()

    return call


class TransformerTime:
    """Para-Former (loop and fused) and serial ViT at equal width, eager, the preset's
    smallest and largest depth and its first batch: few points, since every one is run
    in alternating rounds for both commits."""

    params = (
        list(TRANSFORMER_FAMILIES),
        sorted({min(SWEEP.depths), max(SWEEP.depths)}),
        [SWEEP.batches[0]],
    )
    param_names: ClassVar[list[str]] = ["family", "depth", "batch"]
    timeout = 600
    warmup_time = 0.5

    def setup(self, family, depth, batch):
        self.point = PreparedPoint()
        self.call = _synced(self.point.open(family, depth, batch, "eager").step)
        self.call()  # allocator / autotune warm-up outside asv's samples

    def teardown(self, family, depth, batch):
        self.call = None
        self.point.close()

    def time_forward(self, family, depth, batch):
        self.call()
