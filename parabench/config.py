"""What to build and how to run it: frozen dataclasses for sweeps, points and presets.

A sweep is the cartesian product families x depths x batches x dtypes x modes x
workloads on one device. Everything here is plain data and validation; building
models lives in `catalog`, executing in `runner`.
"""
from __future__ import annotations

import itertools
import os
from dataclasses import asdict, dataclass, replace

from .errors import UsageError
from .families import REGISTRY, standard_depth_overrides
from .resnet import RESNET_STANDARD_DEPTHS

__all__ = ["DEVICES", "DTYPES", "FAMILIES", "MODES", "PRESETS", "RESNET_STANDARD_DEPTHS",
           "SCHEDULES", "TUPLE_FIELDS", "WIDTHS", "WORKLOADS", "Point", "Sweep", "Width",
           "preset", "sweep_from_dict"]

#: The registered model families, in the registry's order. `families` declares them and
#: imports nothing from this module (a `Width` is only passed to it), so importing it here
#: makes no cycle.
FAMILIES = tuple(REGISTRY)
MODES = ("eager", "graph", "compile")
#: sweep: point after point; interleaved: the families are arms, timed in turns cell by
#: cell (regress/interleave.py), so that drifts of the machine's speed hit them alike
SCHEDULES = ("sweep", "interleaved")
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
    #: least warm-up in seconds; None: measure.timing's device default (0.2 s on CUDA)
    warmup_s: float | None = None
    min_samples: int = 10
    max_samples: int = 200
    min_time_s: float = 0.25
    threads: int | None = None
    depth_overrides: tuple[tuple[str, tuple[int, ...]], ...] = ()
    name: str = "custom"
    schedule: str = "sweep"
    #: interleaved: rounds of turns per set of processes, sets of processes one after
    #: the other (each has a bias of its own), and the length of one turn
    rounds: int = 30
    processes: int = 5
    turn_ms: float = 25.0

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
        """Raise UsageError on the first bad field, naming it. Returns self.

        Types are checked first (a TOML file can hold anything: a string where a list
        of integers belongs, a float batch, `true` for a count), then values."""
        _check_types(self)
        _check_members("family", self.families, FAMILIES)
        _check_members("mode", self.modes, MODES)
        _check_members("workload", self.workloads, WORKLOADS)
        _check_members("dtype", self.dtypes, DTYPES)
        _check_members("device", (self.device,), DEVICES)
        _check_members("width", (self.width,), WIDTHS)
        _check_members("schedule", (self.schedule,), SCHEDULES)
        if self.schedule == "interleaved" and len(self.families) < 2:
            raise UsageError("an interleaved schedule needs at least two families (its arms)")
        _check_range("rounds", self.rounds, 1, MAX_ROUNDS)
        _check_range("processes", self.processes, 1, MAX_PROCESSES)
        if not 0 < self.turn_ms <= MAX_TURN_MS:  # also refuses nan
            raise UsageError(f"turn length must be between 0 and {MAX_TURN_MS} ms, "
                             f"got {self.turn_ms}")
        for fam, ds in ((f, self.depths_for(f)) for f in self.families):
            if not ds:
                raise UsageError(f"no depths given for family {fam!r}")
            for d in ds:
                _check_range(f"depth (family {fam!r})", d, 1, MAX_DEPTH)
        for b in self.batches:
            _check_range("batch size", b, 1, MAX_BATCH)
        _check_range("image size", self.img_size, 8, MAX_IMG_SIZE)
        _check_members("family (in depths_by_family)", [f for f, _ in self.depth_overrides],
                       FAMILIES)
        _check_range("warmup", self.warmup, 0, MAX_WARMUP)
        _check_range("max samples", self.max_samples, 1, MAX_SAMPLES)
        if self.min_samples < 1 or self.max_samples < self.min_samples:
            raise UsageError(f"need 1 <= min_samples <= max_samples, got min_samples="
                             f"{self.min_samples} max_samples={self.max_samples}")
        for what, v, hi in (("min time", self.min_time_s, MAX_MIN_TIME_S),
                            ("warm-up time", self.warmup_s, MAX_WARMUP_S)):
            if v is not None and not 0 <= v <= hi:  # also refuses nan
                raise UsageError(f"{what} must be a finite number between 0 and {hi} s, got {v}")
        if self.threads is not None:
            _check_range("threads", self.threads, 1, os.cpu_count() or 1,
                         why="this machine's CPU count")
        return self

    def deduplicated(self) -> tuple[Sweep, list[str]]:
        """The sweep with repeated values dropped (first one kept), and a note per field
        that had some: `--depth 1,1,1` measures depth 1 once."""
        changes, notes = {}, []
        for f in TUPLE_FIELDS:
            values = getattr(self, f)
            unique = tuple(dict.fromkeys(values))
            if len(unique) != len(values):
                changes[f] = unique
                notes.append(f"{f}: repeated values dropped, measuring {list(unique)}")
        over = tuple((fam, tuple(dict.fromkeys(ds))) for fam, ds in self.depth_overrides)
        if over != self.depth_overrides:
            changes["depth_overrides"] = over
            notes.append("depths_by_family: repeated depths dropped")
        return (replace(self, **changes) if changes else self), notes

    def to_dict(self) -> dict:
        d = asdict(self)
        d["depth_overrides"] = {k: list(v) for k, v in self.depth_overrides}
        return d

    def point_dict(self) -> dict:
        """`to_dict` without the schedule's fields, which only the driver reads: what a
        worker needs to build and time a point, in a form that the code of commits from
        before those fields (an arm of an older commit, a count of it) still reads."""
        d = self.to_dict()
        for f in SCHEDULE_FIELDS:
            d.pop(f)
        return d


#: Upper bounds that no real sweep reaches; past them a typo would only fail later, inside
#: torch or the database (a 20-digit depth overflows SQLite's integers).
MAX_DEPTH = 4096
MAX_BATCH = 1 << 24
MAX_IMG_SIZE = 8192
MAX_WARMUP, MAX_SAMPLES, MAX_MIN_TIME_S = 100_000, 1_000_000, 3600  # per point
MAX_WARMUP_S = 600.0
MAX_ROUNDS, MAX_PROCESSES, MAX_TURN_MS = 100_000, 1000, 60_000.0
#: the fields of a schedule, not of a point (see Sweep.point_dict)
SCHEDULE_FIELDS = ("schedule", "rounds", "processes", "turn_ms")
TUPLE_FIELDS = ("families", "depths", "batches", "dtypes", "modes", "workloads")
_INT_FIELDS = ("img_size", "warmup", "min_samples", "max_samples", "rounds", "processes")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_types(s: Sweep) -> None:
    for f in TUPLE_FIELDS:
        values, want_int = getattr(s, f), f in ("depths", "batches")
        ok = _is_int if want_int else (lambda v: isinstance(v, str) and v.strip())
        if not isinstance(values, tuple) or not values or not all(map(ok, values)):
            kind = "integers" if want_int else "names"
            raise UsageError(f"{f}: expected a non-empty list of {kind}, got {values!r}")
    if not isinstance(s.depth_overrides, tuple) or not all(
            isinstance(fam, str) and isinstance(ds, tuple) and ds and all(map(_is_int, ds))
            for fam, ds in s.depth_overrides):
        raise UsageError(f"depths_by_family: expected family = [depths...], got "
                         f"{s.depth_overrides!r}")
    for f in _INT_FIELDS:
        if not _is_int(getattr(s, f)):
            raise UsageError(f"{f}: expected an integer, got {getattr(s, f)!r}")
    seconds = ("min_time_s", "turn_ms") + (() if s.warmup_s is None else ("warmup_s",))
    for f in seconds:
        v = getattr(s, f)
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            unit = "milliseconds" if f == "turn_ms" else "seconds"
            raise UsageError(f"{f}: expected a number of {unit}, got {v!r}")
    if s.threads is not None and not _is_int(s.threads):
        raise UsageError(f"threads: expected an integer, got {s.threads!r}")
    for f in ("device", "width", "name", "schedule"):
        if not isinstance(getattr(s, f), str):
            raise UsageError(f"{f}: expected a name, got {getattr(s, f)!r}")


def _check_range(what: str, v: int, lo: int, hi: int, why: str = "") -> None:
    if not lo <= v <= hi:
        bound = f"{hi} ({why})" if why else str(hi)
        raise UsageError(f"{what} must be between {lo} and {bound}, got {v}")


def _check_members(what: str, values, allowed) -> None:
    for v in values:
        if v not in allowed:
            raise UsageError(f"unknown {what} {v!r}; choose from {', '.join(allowed)}")


_TRANSFORMERS = tuple(f for f in FAMILIES if REGISTRY[f].transformer)

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
        depth_overrides=standard_depth_overrides(),
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
    # The fused execution's goals: never slower than the loop, nor than timm's ViT-S.
    # Para-Former's executions, its serial twin and ViT are arms timed in turns, cell by
    # cell, in several sets of processes (the report's "arms in turns" table gives the
    # ratios). A CPU at ViT-S width, about 10 minutes on 2 cores; on a GPU add
    # --device cuda --mode graph --dtype bfloat16 (first light does).
    "fused-goals": Sweep(
        name="fused-goals",
        families=("paraformer-loop", "paraformer-fused", "paraformer-least-work",
                  "paraformer-serial", "vit"),
        depths=(1, 4, 12, 24),
        batches=(1, 8, 32),
        device="cpu",
        width="paper",
        img_size=224,
        warmup=2,
        threads=2,
        schedule="interleaved",
        rounds=7,
        processes=3,
        turn_ms=100.0,
    ),
    # Everything: all modes and both workloads. Hours on a GPU.
    "full": Sweep(
        name="full",
        families=FAMILIES,
        depths=(1, 2, 4, 8, 12, 16, 24, 32, 48),
        depth_overrides=standard_depth_overrides(),
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


def sweep_from_dict(d: dict) -> Sweep:
    """Inverse of Sweep.to_dict (used to resume a stored run)."""
    d = dict(d)
    overrides = d.pop("depth_overrides", {}) or {}
    for k in TUPLE_FIELDS:
        if k in d:
            d[k] = tuple(d[k])
    d["depth_overrides"] = tuple((f, tuple(v)) for f, v in overrides.items())
    return Sweep(**d)
