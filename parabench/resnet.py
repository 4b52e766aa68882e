"""ResNet at any buildable depth: the layer counts behind the `resnet` family.

Depth is the conventional layer count. 18/34/50/101/152 are timm's standard nets;
another depth d builds BasicBlocks (d < 50, d = 2*blocks + 2) or Bottlenecks (d >= 50,
d = 3*blocks + 2) spread evenly over the four stages. Pure data and arithmetic
(imported by `config` through `families`, which builds the nets).
"""
from __future__ import annotations

from .errors import UsageError

__all__ = ["RESNET_STANDARD_DEPTHS", "resnet_layers"]

#: ResNet depth means its conventional layer count (18, 34, 50, ...), not a block count.
RESNET_STANDARD_DEPTHS = (18, 34, 50, 101, 152)
_RESNET_BLOCKS = {18: "basic", 34: "basic", 50: "bottleneck", 101: "bottleneck", 152: "bottleneck"}
_RESNET_LAYERS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3),
                  152: (3, 8, 36, 3)}


def resnet_layers(depth: int) -> tuple[str, tuple[int, int, int, int]]:
    """(block kind, blocks per stage) for a ResNet of `depth` layers."""
    if depth in RESNET_STANDARD_DEPTHS:
        return _RESNET_BLOCKS[depth], _RESNET_LAYERS[depth]
    kind, per_block = ("basic", 2) if depth < 50 else ("bottleneck", 3)
    blocks, rem = divmod(depth - 2, per_block)
    if rem or blocks < 4:
        raise UsageError(
            f"resnet depth {depth} is not buildable: use {', '.join(map(str, RESNET_STANDARD_DEPTHS))}"
            f" or 2*blocks+2 (>= 10, basic blocks) below 50, 3*blocks+2 from 50 up"
        )
    base, extra = divmod(blocks, 4)
    # extra blocks go to the third stage first, as the standard deep ResNets do
    layers = [base] * 4
    for i in (2, 1, 3, 0)[:extra]:
        layers[i] += 1
    return kind, tuple(layers)
