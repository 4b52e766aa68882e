"""What each model costs: parameters, FLOPs per image, peak GPU memory of a forward."""
from __future__ import annotations

from typing import ClassVar

from .common import RESNET_DEPTHS, SWEEP, TRANSFORMER_FAMILIES, PreparedPoint, skip

#: One "family:depth" parameter instead of a family x depth product, because ResNet's
#: depths (18, 34, ...) are not the transformers' (1, 2, 4, ...): no skipped combos.
MODELS = [f"{f}:{d}" for f in TRANSFORMER_FAMILIES for d in SWEEP.depths] + [
    f"resnet:{d}" for d in RESNET_DEPTHS
]


def _split(model: str) -> tuple[str, int]:
    family, depth = model.rsplit(":", 1)
    return family, int(depth)


class ModelCost:
    """Deterministic per-model numbers: a change here is a change of the model itself.
    Counted once per commit in `setup_cache` (asv pickles it for every benchmark)."""

    params = (MODELS,)
    param_names: ClassVar[list[str]] = ["model"]
    timeout = 600

    def setup_cache(self):
        from parabench import catalog
        from parabench.errors import UsageError

        out = {}
        for model in MODELS:
            family, depth = _split(model)
            try:
                out[model] = catalog.model_info(
                    family, depth, width=SWEEP.width, img_size=SWEEP.img_size
                )
            except UsageError as e:
                out[model] = str(e)
        return out

    def setup(self, cache, model):
        if isinstance(cache[model], str):
            skip(cache[model])

    def track_params(self, cache, model):
        return cache[model]["params"]

    track_params.unit = "parameters"

    def track_gflops(self, cache, model):
        return cache[model]["flops"] / 1e9

    track_gflops.unit = "GFLOP"


if SWEEP.device == "cuda":  # defined only where it can run: no skipped processes on CPU

    class GpuMemory:
        """Peak GPU memory allocated by a forward (torch's allocator peak, after warm-up)."""

        params = (MODELS, list(SWEEP.batches))
        param_names: ClassVar[list[str]] = ["model", "batch"]
        unit = "bytes"
        timeout = 600

        def setup(self, model, batch):
            self.point = PreparedPoint()
            self.step = self.point.open(*_split(model), batch, "eager").step

        def teardown(self, model, batch):
            self.step = None
            self.point.close()

        def track_peak_gpu_memory(self, model, batch):
            from parabench.measure.memory import PeakMemory

            self.step()  # allocator warm-up, outside the window
            with PeakMemory(SWEEP.device) as pm:
                for _ in range(3):
                    self.step()
            return pm.result()["peak_mem_allocated"]
