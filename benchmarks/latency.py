"""Forward latency per family, depth, batch and mode, timed by parabench (see __init__)."""
from __future__ import annotations

from typing import ClassVar

from .common import PROFILE, TRANSFORMER_FAMILIES, build_point, latency_samples_s


class TransformerLatency:
    """Para-Former (loop and fused), serial ViT and timm's parallel ViT at equal width."""

    params = (
        list(TRANSFORMER_FAMILIES),
        list(PROFILE.transformer_depths),
        list(PROFILE.batches),
        list(PROFILE.modes),
    )
    param_names: ClassVar[list[str]] = ["family", "depth", "batch", "mode"]
    unit = "seconds"
    timeout = 600

    def setup(self, family, depth, batch, mode):
        self.model, self.step, self.x = build_point(family, depth, batch, mode)

    def teardown(self, family, depth, batch, mode):
        self.model = self.step = self.x = None

    def track_latency(self, family, depth, batch, mode):
        return latency_samples_s(self.step)


class ResNetLatency:
    """timm ResNet at its conventional depths: the convolutional serial baseline."""

    params = (
        list(PROFILE.resnet_depths),
        list(PROFILE.batches),
        list(PROFILE.modes),
    )
    param_names: ClassVar[list[str]] = ["depth", "batch", "mode"]
    unit = "seconds"
    timeout = 600

    def setup(self, depth, batch, mode):
        self.model, self.step, self.x = build_point("resnet", depth, batch, mode)

    def teardown(self, depth, batch, mode):
        self.model = self.step = self.x = None

    def track_latency(self, depth, batch, mode):
        return latency_samples_s(self.step)
