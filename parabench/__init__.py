"""parabench: does Para-Former's inference time really stay flat in depth, and why?

The public API is small: `load()` reads results as a pandas DataFrame, `Store` is the
database, `Sweep`/`preset` describe what to measure, `run_sweep` measures it.
"""
from .config import Point, Sweep, preset
from .errors import UsageError
from .runner import run_sweep
from .store import Store, load

__all__ = ["Point", "Store", "Sweep", "UsageError", "load", "preset", "run_sweep"]
__version__ = "0.1.0"
