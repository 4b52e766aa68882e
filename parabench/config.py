"""What to build and how to run it: frozen dataclasses for sweeps, points and presets.

A sweep is the cartesian product families x depths x batches x dtypes x modes x
workloads on one device. Everything here is plain data and validation; building
models lives in `catalog`, executing in `runner`.
"""
from __future__ import annotations

import itertools
import tomllib
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from .errors import UsageError

__all__ = ["DEVICES", "DTYPES", "FAMILIES", "MODES", "PRESETS", "RESNET_STANDARD_DEPTHS",
           "WIDTHS", "WORKLOADS", "Point", "Sweep", "Width", "preset", "sweep_from_dict",
           "sweep_from_toml"]

FAMILIES = ("paraformer-loop", "paraformer-fused", "vit", "vit-parallel", "resnet")
MODES = ("eager", "graph", "compile")
WORKLOADS = ("infer", "train")
DTYPES = ("float32", "bfloat16", "float16")
DEVICES = ("cpu", "cuda")


@dataclass(frozen=True)
class Width:
    """Transformer width shared by every transformer family, so that they compare at
    equal width (and so equal FLOPs per layer)."""

    dim: int
    heads: int
    head_dim: int
    mlp_dim: int
    patch: int
    num_classes: int


#: The one table of model sizes: sweeps, the asv suite, the synthetic data and the
#: benchmark scripts all name a width from here.
WIDTHS = {
    # For CPU sweeps and tests: a few ms per forward on 2 cores at 32x32.
    "tiny": Width(dim=64, heads=2, head_dim=32, mlp_dim=256, patch=8, num_classes=10),
    # The authors' default Para-Former width (DUAT-Maker/Shallow-Paraformer).
    "authors": Width(dim=192, heads=3, head_dim=64, mlp_dim=768, patch=16, num_classes=1000),
    # ViT-S, the width of `vit_small_patch16_224`: the paper preset's width.
    "paper": Width(dim=384, heads=6, head_dim=64, mlp_dim=1536, patch=16, num_classes=1000),
}
#: ResNet depth means its conventional layer count (18, 34, 50, ...), not a block count.
RESNET_STANDARD_DEPTHS = (18, 34, 50, 101, 152)


@dataclass(frozen=True, order=True)
class Point:
    """One measurement: the identity of a record inside a run."""

    family: str
    depth: int
    batch: int
    dtype: str
    mode: str
    workload: str

    @property
    def key(self) -> str:
        return f"{self.family}/d{self.depth}/b{self.batch}/{self.dtype}/{self.mode}/{self.workload}"


@dataclass(frozen=True)
class Sweep:
    """A full sweep description. `depth_overrides` maps a family to its own depths
    (ResNet's depths are layer counts like 18 or 50, not the transformer depths)."""

    families: tuple[str, ...]
    depths: tuple[int, ...]
    batches: tuple[int, ...] = (1,)
    dtypes: tuple[str, ...] = ("float32",)
    modes: tuple[str, ...] = ("eager",)
    workloads: tuple[str, ...] = ("infer",)
    device: str = "cpu"
    width: str = "tiny"
    img_size: int = 32
    warmup: int = 3
    min_samples: int = 10
    max_samples: int = 200
    min_time_s: float = 0.25
    threads: int | None = None
    depth_overrides: tuple[tuple[str, tuple[int, ...]], ...] = ()
    name: str = "custom"

    def depths_for(self, family: str) -> tuple[int, ...]:
        return dict(self.depth_overrides).get(family, self.depths)

    def points(self) -> list[Point]:
        out = []
        for fam in self.families:
            for d, b, dt, m, w in itertools.product(
                self.depths_for(fam), self.batches, self.dtypes, self.modes, self.workloads
            ):
                out.append(Point(fam, d, b, dt, m, w))
        return out

    def validate(self) -> Sweep:
        """Raise UsageError on the first bad field, naming it. Returns self."""
        _check_members("family", self.families, FAMILIES)
        _check_members("mode", self.modes, MODES)
        _check_members("workload", self.workloads, WORKLOADS)
        _check_members("dtype", self.dtypes, DTYPES)
        _check_members("device", (self.device,), DEVICES)
        _check_members("width", (self.width,), WIDTHS)
        for fam, ds in ((f, self.depths_for(f)) for f in self.families):
            if not ds:
                raise UsageError(f"no depths given for family {fam!r}")
            for d in ds:
                if d < 1:
                    raise UsageError(f"depth must be >= 1, got {d} (family {fam!r})")
        for b in self.batches:
            if b < 1:
                raise UsageError(f"batch size must be >= 1, got {b}")
        if self.img_size < 8:
            raise UsageError(f"image size must be >= 8, got {self.img_size}")
        if self.warmup < 0 or self.min_samples < 1 or self.max_samples < self.min_samples:
            raise UsageError(
                "need warmup >= 0 and 1 <= min_samples <= max_samples, got "
                f"warmup={self.warmup} min_samples={self.min_samples} "
                f"max_samples={self.max_samples}"
            )
        if self.min_time_s < 0:
            raise UsageError(f"min time must be >= 0 s, got {self.min_time_s}")
        if self.threads is not None and self.threads < 1:
            raise UsageError(f"threads must be >= 1, got {self.threads}")
        return self

    def to_dict(self) -> dict:
        d = asdict(self)
        d["depth_overrides"] = {k: list(v) for k, v in self.depth_overrides}
        return d


def _check_members(what: str, values, allowed) -> None:
    for v in values:
        if v not in allowed:
            raise UsageError(f"unknown {what} {v!r}; choose from {', '.join(allowed)}")


_TRANSFORMERS = ("paraformer-loop", "paraformer-fused", "vit", "vit-parallel")

PRESETS: dict[str, Sweep] = {
    # CPU, tiny widths: the whole command, Python start-up included, fits in 60 s on 2 cores.
    "quick": Sweep(
        name="quick",
        families=("paraformer-loop", "paraformer-fused", "vit", "resnet"),
        depths=(1, 2, 4, 8),
        depth_overrides=(("resnet", (18, 34)),),
        batches=(1,),
        device="cpu",
        width="tiny",
        img_size=32,
        warmup=3,
        min_samples=10,
        min_time_s=0.2,
        # one thread: on a 2-core box a second thread competes with everything else
        # running and makes tiny forwards 10-100x noisier
        threads=1,
    ),
    # The GPU sweep that tests the paper's claim at ViT-S width.
    "paper": Sweep(
        name="paper",
        families=_TRANSFORMERS + ("resnet",),
        depths=(1, 2, 4, 8, 12, 24, 48),
        depth_overrides=(("resnet", RESNET_STANDARD_DEPTHS),),
        batches=(1, 32, 256),
        dtypes=("bfloat16",),
        modes=("eager", "graph"),
        device="cuda",
        width="paper",
        img_size=224,
        warmup=10,
        min_samples=20,
        min_time_s=0.3,
    ),
    # Everything: all modes and both workloads. Hours on a GPU.
    "full": Sweep(
        name="full",
        families=FAMILIES,
        depths=(1, 2, 4, 8, 12, 16, 24, 32, 48),
        depth_overrides=(("resnet", RESNET_STANDARD_DEPTHS),),
        batches=(1, 8, 32, 128, 256),
        dtypes=("float32", "bfloat16"),
        modes=MODES,
        workloads=WORKLOADS,
        device="cuda",
        width="paper",
        img_size=224,
        warmup=10,
        min_samples=20,
        min_time_s=0.5,
    ),
}


def preset(name: str) -> Sweep:
    try:
        return PRESETS[name]
    except KeyError:
        raise UsageError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}") from None


_TOML_TUPLE_FIELDS = ("families", "depths", "batches", "dtypes", "modes", "workloads")


def sweep_from_toml(path: str | Path) -> Sweep:
    """Read a sweep from TOML: top-level keys are Sweep fields, plus optional
    `preset = "name"` to start from, and a `[depths_by_family]` table."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise UsageError(f"sweep file not found: {p}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise UsageError(f"cannot parse sweep file {p}: {e}") from None
    base = preset(data.pop("preset")) if "preset" in data else None
    overrides = data.pop("depths_by_family", None)
    known = set(Sweep.__dataclass_fields__) - {"depth_overrides"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise UsageError(f"unknown key(s) in {p}: {', '.join(unknown)}")
    for k in _TOML_TUPLE_FIELDS:
        if k in data:
            v = data[k]
            data[k] = tuple(v) if isinstance(v, list) else (v,)
    if overrides is not None:
        data["depth_overrides"] = tuple((f, tuple(ds)) for f, ds in overrides.items())
    if base is not None:
        return replace(base, **data)
    missing = [k for k in ("families", "depths") if k not in data]
    if missing:
        raise UsageError(f"{p} needs {' and '.join(missing)} (or a preset to start from)")
    try:
        return Sweep(**data)
    except TypeError as e:
        raise UsageError(f"bad sweep file {p}: {e}") from None


def sweep_from_dict(d: dict) -> Sweep:
    """Inverse of Sweep.to_dict (used to resume a stored run)."""
    d = dict(d)
    overrides = d.pop("depth_overrides", {}) or {}
    for k in _TOML_TUPLE_FIELDS:
        if k in d:
            d[k] = tuple(d[k])
    d["depth_overrides"] = tuple((f, tuple(v)) for f, v in overrides.items())
    return Sweep(**d)
