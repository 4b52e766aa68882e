"""The embedded results database (SQLite from the standard library).

Two tables carry the results: `runs` (one row per invocation, with its environment)
and `records` (one row per measured point, raw samples included). `peaks` caches each
machine's measured peak throughput. Every point is committed in its own short
transaction the moment it finishes, so a crash or Ctrl-C loses nothing that was
finished; WAL mode plus a busy timeout lets two runs write into one file at once.

The file is stamped with an application id, so a file that is not a parabench
database is refused instead of being modified.

Every row of every table carries a checksum (sha256 over its stored values, see
`integrity.row_checksum`), written with the row and verified whenever it is read; a
record's derived statistics are checked against its raw samples, and a run's row says
how many points it stored, which every read of the run compares: a damaged row is
skipped with a warning (and listed in `Store.damaged`), never read as a silently wrong
number. Only records migrated from schema version 1 may lack a checksum ("unverified").
SQLite errors while reading become one-line UsageErrors naming the file.

`Store(path, create=False, readonly=True)` reads without writing anything: no journal
mode switch, no -wal/-shm files where there were none.

Modules: `schema` (application id, version, tables, upgrade), `connection` (the file:
default path, truncation check, opening, SQLite errors as UsageErrors), `liveness`
(heartbeats; running vs dead runs), `database` (`Store`: opening, runs, records,
`load`), `reading` (frames and verification, Store's reading half), `extras` (peaks,
comparisons), `sealing` (writing checksums and point counts).
"""
from ..integrity import DamagedRecord
from .connection import DamagedDatabase, default_db_path
from .database import Store, load, utc_now
from .liveness import STALE_AFTER_S as STALE_AFTER_S
from .liveness import Heartbeat
from .schema import _SCHEMA as _SCHEMA
from .schema import SCHEMA_VERSION as SCHEMA_VERSION

__all__ = ["DamagedDatabase", "DamagedRecord", "Heartbeat", "Store", "default_db_path", "load",
           "utc_now"]
