"""Damaged and read-only databases: a damaged record is never a silently wrong number and
never a traceback; read-only access writes nothing."""
import json
import os
import random
import shutil
import sqlite3
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from parabench import Store, UsageError, load
from parabench.cli import main as cli
from parabench.records import Record
from parabench.store import _SCHEMA, SCHEMA_VERSION

NUMERIC = ("n", "median_ms", "mean_ms", "p10_ms", "p90_ms", "iqr_ms", "noisy", "throughput",
           "params", "flops", "depth", "batch", "kernels_per_forward")


def _make_db(path: Path, n: int = 12) -> str:
    rng = random.Random(7)
    with Store(path) as s:
        rid = s.start_run(sweep={}, preset="t", command="x", env={"machine": "m"})
        for i in range(n):
            samples = [round(rng.uniform(1, 50), 6) + 0.000123 for _ in range(5)]
            s.add_record(rid, Record(
                key=f"vit/d{i}", family="vit", depth=i + 1, batch=2, dtype="float32",
                mode="eager", workload="infer", device="cpu", img_size=32, width="tiny",
                samples_ms=samples, params=1000 + i, flops=1.5e6 * i + 0.25))
        s.update_metrics(rid, "vit/d0", kernels_per_forward=7.5, note="x")
    assert not Path(f"{path}-wal").exists()
    return rid


def _snapshot(df) -> dict:
    out = {}
    for r in df.to_dict("records"):
        vals = [r["samples_ms"]] + [r.get(c) for c in NUMERIC]
        out[r["key"]] = [None if isinstance(v, float) and v != v else v for v in vals]
    return out


def _targets(data: bytes, df) -> list[tuple[int, int]]:
    """(offset, length) of stored payload values: samples JSON text and doubles."""
    spots = []
    for r in df.to_dict("records"):
        for blob in [json.dumps(r["samples_ms"]).encode()] + [
                struct.pack(">d", r[c]) for c in ("median_ms", "mean_ms", "p90_ms", "throughput",
                                                  "flops")]:
            off = data.find(blob)
            if off >= 0:
                spots.append((off, len(blob)))
    return spots


def _outcome(path: Path, original: dict) -> str:
    try:
        with Store(path, create=False, readonly=True) as s:
            df = s.records_frame()
            damaged = {d.key for d in s.damaged}
    except UsageError as e:
        assert "\n" not in str(e)
        return "detected"
    got = _snapshot(df)
    wrong = [k for k, v in got.items() if original.get(k) != v]
    lost = set(original) - set(got) - damaged
    # a flip inside a key is reported under the flipped key: each such report covers one
    renamed = damaged - set(original)
    if wrong or len(lost) > len(renamed):
        return "silent"
    return "detected" if damaged else "harmless"


def test_bit_flips_are_detected_or_harmless(tmp_path, capsys):
    db = tmp_path / "orig.db"
    _make_db(db)
    df = load(db)
    original = _snapshot(df)
    data = db.read_bytes()
    spots = _targets(data, df)
    assert len(spots) >= 12 * 5
    rng = random.Random(2024)
    counts = {"detected": 0, "harmless": 0, "silent": 0}
    for i in range(50):
        off, length = rng.choice(spots)
        pos = off + rng.randrange(length)
        flipped = bytearray(data)
        flipped[pos] ^= 1 << rng.randrange(8)
        copy = tmp_path / f"flip{i}.db"
        copy.write_bytes(bytes(flipped))
        counts[_outcome(copy, original)] += 1
    print(f"bit flips: tried 50, detected {counts['detected']}, harmless {counts['harmless']},"
          f" silently wrong {counts['silent']}", file=sys.__stdout__)
    assert counts["silent"] == 0
    assert counts["detected"] > 0


def test_bit_flips_anywhere_in_the_file_never_crash_or_mislead(tmp_path):
    """Flips in page headers, cell pointers, the schema or record headers too: each load
    is a one-line UsageError, a reported damaged record, or the original numbers."""
    db = tmp_path / "orig.db"
    _make_db(db)
    original = _snapshot(load(db))
    data = db.read_bytes()
    rng = random.Random(5)
    counts = {"detected": 0, "harmless": 0, "silent": 0}
    for i in range(300):
        flipped = bytearray(data)
        flipped[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        copy = tmp_path / f"any{i}.db"
        copy.write_bytes(bytes(flipped))
        counts[_outcome(copy, original)] += 1  # any other exception fails the test
    print(f"bit flips anywhere: tried 300, detected {counts['detected']}, harmless "
          f"{counts['harmless']}, silently wrong {counts['silent']}", file=sys.__stdout__)
    assert counts["silent"] == 0


def test_damaged_record_is_skipped_with_a_warning(tmp_path, capsys):
    db = tmp_path / "r.db"
    rid = _make_db(db, n=3)
    data = bytearray(db.read_bytes())
    df = load(db)
    blob = json.dumps(df.iloc[1].samples_ms).encode()
    off = data.find(blob)
    data[off + 2] ^= 0x01  # one digit of the first sample changes
    db.write_bytes(bytes(data))
    capsys.readouterr()
    with Store(db, create=False, readonly=True) as s:
        frame = s.records_frame()
        assert [d.key for d in s.damaged] == ["vit/d1"]
    assert list(frame.key) == ["vit/d0", "vit/d2"]
    err = capsys.readouterr().err
    assert "vit/d1" in err and rid in err and "checksum" in err
    assert cli(["check", "--db", str(db)]) == 1
    assert "vit/d1" in capsys.readouterr().out
    assert len(load(db)) == 2  # load skips it too


@pytest.mark.parametrize("cut", ["byte", "page"])
def test_truncated_database_is_one_line_never_a_traceback(tmp_path, capsys, cut):
    db = tmp_path / "r.db"
    _make_db(db, n=40)
    data = db.read_bytes()
    db.write_bytes(data[:-1] if cut == "byte" else data[:-4096])
    for argv in (["list"], ["export"], ["check"]):
        capsys.readouterr()
        rc = cli([*argv, "--db", str(db)])
        out = capsys.readouterr()
        assert rc == (1 if argv == ["check"] else 2)
        text = out.err if rc == 2 else out.out
        assert len(text.strip().splitlines()) == 1 and "Traceback" not in text
        assert str(db) in text
    with pytest.raises(UsageError) as e:
        load(db)
    assert "\n" not in str(e.value)


def test_malformed_page_is_one_line(tmp_path, capsys):
    db = tmp_path / "r.db"
    _make_db(db, n=40)
    samples = json.dumps(load(db).iloc[0].samples_ms).encode()
    data = bytearray(db.read_bytes())
    page = 4096
    start = data.find(samples) // page * page  # the page holding the first record
    data[start:start + page] = b"\xa5" * page  # clobbered, size unchanged
    db.write_bytes(bytes(data))
    for argv in (["list"], ["export"]):
        capsys.readouterr()
        rc = cli([*argv, "--db", str(db)])
        err = capsys.readouterr().err
        assert rc == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert cli(["check", "--db", str(db)]) == 1


def _legacy_schema(con, version: int) -> None:
    """The tables as schema `version` (1 or 3) made them: today's, less what came later
    (version 1 keeps v3's added columns: a file migrated to v3 by an older parabench)."""
    con.executescript(_SCHEMA)
    later = [("runs", "points"), ("runs", "checksum"), ("peaks", "checksum"),
             ("comparisons", "checksum")]
    if version < 2:
        later.append(("records", "checksum"))
    for table, col in later:
        con.execute(f"ALTER TABLE {table} DROP COLUMN {col}")
    con.execute("DROP TABLE meta")


def test_version_1_database_is_migrated_in_place(tmp_path):
    db = tmp_path / "v1.db"
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    _legacy_schema(con, 1)
    con.execute("PRAGMA application_id=1347568195")
    con.execute("PRAGMA user_version=1")
    con.execute("INSERT INTO runs (run_id, created_at, status) VALUES ('old', 'then', 'finished')")
    row = {"run_id": "old", **Record(
        key="vit/d1", family="vit", depth=1, batch=2, dtype="float32", mode="eager",
        workload="infer", device="cpu", img_size=32, width="tiny",
        samples_ms=[1.5, 2.5, 3.5]).to_row(), "created_at": "then"}
    con.execute(f"INSERT INTO records ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                tuple(row.values()))
    con.close()
    # a read-only open reads it as it is, unverified, without migrating
    with Store(db, create=False, readonly=True) as s:
        assert list(s.records_frame().median_ms) == [2.5] and not s.damaged
    assert sqlite3.connect(db).execute("PRAGMA user_version").fetchone()[0] == 1
    with Store(db) as s:
        cols = {r[1] for r in s._conn.execute("PRAGMA table_info(records)")}
        assert "checksum" in cols
        assert s._conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        s.update_metrics("old", "vit/d1", kernels_per_forward=3.0)
        s.add_record("old", Record(key="vit/d2", family="vit", depth=2, batch=2,
                                   dtype="float32", mode="eager", workload="infer",
                                   device="cpu", img_size=32, width="tiny", samples_ms=[4.25]))
        df = s.records_frame()
        assert not s.damaged and list(df.key) == ["vit/d1", "vit/d2"]
        found = s.verify_all()
    assert (found["damaged"], found["checked"], found["unverified"]) == ([], 1, 1)


def test_check_exit_codes(tmp_path, capsys):
    db = tmp_path / "r.db"
    _make_db(db, n=3)
    assert cli(["check", "--db", str(db)]) == 0
    assert "ok, 3 record(s) verified" in capsys.readouterr().out
    assert cli(["check", "--db", str(tmp_path / "missing.db")]) == 2
    with sqlite3.connect(db) as con:  # a change behind parabench's back
        con.execute("UPDATE records SET median_ms = median_ms * 2 WHERE key='vit/d2'")
    con.close()
    capsys.readouterr()
    assert cli(["check", "--db", str(db)]) == 1
    out = capsys.readouterr().out
    assert "vit/d2" in out and "vit/d0" not in out


def test_read_only_open_writes_nothing(tmp_path):
    db = tmp_path / "r.db"
    _make_db(db, n=3)
    before = db.read_bytes()
    with Store(db, create=False, readonly=True) as s:
        assert len(s.records_frame()) == 3 and len(s.runs_frame()) == 1
        s.status_counts()
        with pytest.raises(UsageError, match="read-only"):
            s.start_run(sweep={}, preset="t", command="", env={})
        with pytest.raises(UsageError, match="read-only"):
            s.update_metrics("x", "vit/d0", kernels_per_forward=1.0)
    assert len(load(db)) == 3
    assert db.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.db"]


def test_nobody_reads_a_read_only_database_and_a_writer_is_refused():
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv")
    root = Path(tempfile.mkdtemp(prefix="parabench-ro-", dir="/tmp"))
    try:
        root.chmod(0o755)
        folder = root / "ro"
        folder.mkdir()
        db = folder / "r.db"
        _make_db(db, n=3)
        db.chmod(0o444)
        folder.chmod(0o555)
        before = db.read_bytes()
        code = (
            "import sys; sys.path.insert(0, sys.argv[2]);"
            "from parabench import load, Store, UsageError;"
            "from parabench.cli import main;"
            "print(len(load(sys.argv[1])));"
            "rc = main(['check', '--db', sys.argv[1]]);"
            "assert rc == 0, rc\n"
            "try:\n Store(sys.argv[1])\nexcept UsageError as e:\n print('refused:', e)\n"
        )
        res = subprocess.run(
            ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable,
             "-c", code, str(db), str(Path(__file__).resolve().parents[1])],
            capture_output=True, text=True, timeout=120)
        if res.returncode and "Permission denied" in res.stderr and "parabench" not in res.stderr:
            pytest.skip(f"nobody cannot run python here: {res.stderr[-200:]}")
        assert res.returncode == 0, res.stderr
        lines = res.stdout.splitlines()
        assert lines[0] == "3"
        assert "refused: database" in res.stdout and "is read-only" in res.stdout
        assert db.read_bytes() == before
        assert sorted(p.name for p in folder.iterdir()) == ["r.db"]
    finally:
        for p in (root / "ro", root):
            if p.exists():
                p.chmod(0o755)
        shutil.rmtree(root)
