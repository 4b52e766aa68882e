"""parabench: does Para-Former's inference time really stay flat in depth, and why?

The public API is small: `load()` reads results as a pandas DataFrame, `Store` is the
database, `Sweep`/`preset` describe what to measure, `run_sweep` measures it.
"""
import sys
from pathlib import Path


def _own_models_first() -> None:
    """In a source tree, this parabench measures this tree's Para-Former: its models/
    goes first on sys.path (and so on the workers' PYTHONPATH, which copies it). An
    editable install maps `paraformer` to the clone it was made in; a second clone run
    with the same environment would otherwise record its own commit beside another
    clone's model code."""
    models = Path(__file__).resolve().parent.parent / "models"
    if (models / "paraformer" / "__init__.py").is_file() and "paraformer" not in sys.modules:
        if str(models) in sys.path:
            sys.path.remove(str(models))
        sys.path.insert(0, str(models))


_own_models_first()

from .config import Point, Sweep, preset  # noqa: E402  (after the path is settled)
from .errors import UsageError  # noqa: E402
from .runner import run_sweep  # noqa: E402
from .store import Store, load  # noqa: E402

__all__ = ["Point", "Store", "Sweep", "UsageError", "load", "preset", "run_sweep"]
__version__ = "0.1.0"
