"""Sweeps from TOML files: a preset to start from, Sweep fields, a depths table.

What a sweep file may be is bounded (a regular file, not a FIFO that never ends or
/dev/zero; at most MAX_SWEEP_FILE bytes; nested no deeper than the parser follows), so
a wrong path fails in one line instead of hanging or exhausting memory.
"""
from __future__ import annotations

import stat
import tomllib
from dataclasses import replace
from pathlib import Path

from .config import TUPLE_FIELDS, Sweep, preset
from .errors import UsageError

__all__ = ["MAX_SWEEP_FILE", "sweep_from_toml"]

MAX_SWEEP_FILE = 1 << 20


def sweep_from_toml(path: str | Path) -> Sweep:
    """Read a sweep from TOML: top-level keys are Sweep fields, plus optional
    `preset = "name"` to start from, and a `[depths_by_family]` table. A scalar where a
    list belongs is a one-element list. Types and values are checked by `validate`."""
    p = Path(path)
    try:
        if not stat.S_ISREG(p.stat().st_mode):  # stat, not open: a FIFO would block
            raise UsageError(f"cannot read sweep file {p}: not a regular file")
        with open(p, "rb") as f:
            raw = f.read(MAX_SWEEP_FILE + 1)
        if len(raw) > MAX_SWEEP_FILE:
            raise UsageError(f"sweep file {p} is larger than {MAX_SWEEP_FILE >> 10} KiB")
        data = tomllib.loads(raw.decode("utf-8"))
    except FileNotFoundError:
        raise UsageError(f"sweep file not found: {p}") from None
    except OSError as e:  # a directory, no permission, ...
        raise UsageError(f"cannot read sweep file {p}: {e.strerror or e}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise UsageError(f"cannot parse sweep file {p}: {e}") from None
    except RecursionError:
        raise UsageError(f"cannot parse sweep file {p}: nested too deeply") from None
    base_name = data.pop("preset", None)
    if base_name is not None and not isinstance(base_name, str):
        raise UsageError(f"{p}: preset: expected a preset name, got {base_name!r}")
    base = preset(base_name) if base_name is not None else None
    overrides = data.pop("depths_by_family", None)
    known = set(Sweep.__dataclass_fields__) - {"depth_overrides"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise UsageError(f"unknown key(s) in {p}: {', '.join(unknown)}")
    for k in TUPLE_FIELDS:
        if k in data:
            data[k] = _as_tuple(data[k])
    if overrides is not None:
        if not isinstance(overrides, dict):
            raise UsageError(f"{p}: depths_by_family must be a table (family = [depths]), "
                             f"got {overrides!r}")
        data["depth_overrides"] = tuple((f, _as_tuple(ds)) for f, ds in overrides.items())
    if base is not None:
        return replace(base, **data)
    missing = [k for k in ("families", "depths") if k not in data]
    if missing:
        raise UsageError(f"{p} needs {' and '.join(missing)} (or a preset to start from)")
    return Sweep(**data)


def _as_tuple(v) -> tuple:
    return tuple(v) if isinstance(v, list) else (v,)
