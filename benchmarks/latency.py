"""Forward latency per family, depth, batch and mode, timed by parabench (see __init__)."""
from __future__ import annotations

from typing import ClassVar

from .common import RESNET_DEPTHS, SWEEP, TRANSFORMER_FAMILIES, PreparedPoint, latency_samples_s


class TransformerLatency:
    """Para-Former (loop and fused), serial ViT and timm's parallel ViT at equal width."""

    params = (
        list(TRANSFORMER_FAMILIES),
        list(SWEEP.depths),
        list(SWEEP.batches),
        list(SWEEP.modes),
    )
    param_names: ClassVar[list[str]] = ["family", "depth", "batch", "mode"]
    unit = "seconds"
    timeout = 600

    def setup(self, family, depth, batch, mode):
        self.point = PreparedPoint()
        self.step = self.point.open(family, depth, batch, mode).step

    def teardown(self, family, depth, batch, mode):
        self.step = None
        self.point.close()

    def track_latency(self, family, depth, batch, mode):
        return latency_samples_s(self.step)


class ResNetLatency:
    """timm ResNet at its conventional depths: the convolutional serial baseline."""

    params = (
        list(RESNET_DEPTHS),
        list(SWEEP.batches),
        list(SWEEP.modes),
    )
    param_names: ClassVar[list[str]] = ["depth", "batch", "mode"]
    unit = "seconds"
    timeout = 600

    def setup(self, depth, batch, mode):
        self.point = PreparedPoint()
        self.step = self.point.open("resnet", depth, batch, mode).step

    def teardown(self, depth, batch, mode):
        self.step = None
        self.point.close()

    def track_latency(self, depth, batch, mode):
        return latency_samples_s(self.step)
