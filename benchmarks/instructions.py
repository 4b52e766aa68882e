"""Instructions per forward under Callgrind: the suite's deterministic CPU value.

Counted by `parabench.measure.instructions` (valgrind through torch.utils.benchmark),
always on CPU at the `quick` preset's sizes whatever PARABENCH_ASV_PRESET says:
valgrind sees no GPU work, and a tiny model keeps a count to a few minutes, most of
it valgrind's start-up. Counts repeat to ~0.3% between processes, so asv's history
of them shows a step of a few percent at the commit that made it; asv runs a
`track_*` benchmark once per commit, which is all a count needs. Skipped where
valgrind is missing.
"""
from __future__ import annotations

import shutil
from typing import ClassVar

from .common import skip

#: Two telling points: the fused Para-Former and its serial twin, at depth 4.
POINTS = ["paraformer-fused:4", "vit:4"]


class InstructionCount:
    params = (POINTS,)
    param_names: ClassVar[list[str]] = ["model"]
    unit = "instructions"
    timeout = 1800  # ~105 s a count on a quiet machine, several minutes on a busy one

    def setup(self, model):
        if shutil.which("valgrind") is None:
            skip("valgrind is not installed")

    def track_instructions(self, model):
        from parabench.config import PRESETS, Point
        from parabench.measure.instructions import count_instructions

        family, depth = model.rsplit(":", 1)
        sweep = PRESETS["quick"]
        point = Point(family, int(depth), 1, sweep.dtypes[0], "eager", "infer")
        counts = count_instructions(point, sweep, repeats=1)
        return counts[0]

    track_instructions.unit = "instructions"
