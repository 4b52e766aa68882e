"""The database as a whole checks itself: run rows, peaks and comparisons are sealed like
records, a run knows how many points it stored, rows written since schema 4 are never
"unverified", a writer leaves a complete file, and a read-only copy shows everything or
says what it cannot see."""
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from test_store_damage import _legacy_schema, _make_db

from parabench import Store, UsageError, load
from parabench.cli import main as cli
from parabench.records import Record


def _edit(db: Path, sql: str, args=()) -> None:
    """A change behind parabench's back."""
    con = sqlite3.connect(db)
    con.execute(sql, args)
    con.commit()
    con.close()


def _check(db, capsys) -> tuple[int, str]:
    capsys.readouterr()
    rc = cli(["check", "--db", str(db)])
    return rc, capsys.readouterr().out


def test_damaged_records_index_never_hides_records(tmp_path, capsys):
    db = tmp_path / "r.db"
    rid = _make_db(db, n=14)
    con = sqlite3.connect(db)
    root = con.execute("SELECT rootpage FROM sqlite_master WHERE name='records_run'").fetchone()[0]
    page = con.execute("PRAGMA page_size").fetchone()[0]
    con.close()
    data = bytearray(db.read_bytes())
    start, end = (root - 1) * page, root * page
    hits = 0
    off = data.find(rid.encode(), start, end)
    while off >= 0:  # every run id stored in the index, one bit flipped in each
        data[off + len(rid) - 1] ^= 0x02
        hits += 1
        off = data.find(rid.encode(), off + 1, end)
    assert hits >= 7  # the index really held them
    db.write_bytes(bytes(data))
    capsys.readouterr()
    assert len(load(db, rid)) == 14  # read by a full scan: the index is never asked
    assert cli(["export", "--db", str(db), "--run", rid, "--format", "json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 14
    rc, out = _check(db, capsys)
    assert rc == 1 and "integrity check" in out


def test_a_run_says_when_points_it_stored_are_missing(tmp_path, capsys):
    db = tmp_path / "r.db"
    rid = _make_db(db, n=5)
    _edit(db, "DELETE FROM records WHERE key='vit/d3'")
    capsys.readouterr()
    with Store(db, create=False, readonly=True) as s:
        assert len(s.records_frame([rid])) == 4
        assert any("stored 5 point(s), 4 found" in str(d) for d in s.damaged)
    assert "stored 5 point(s), 4 found" in capsys.readouterr().err
    assert cli(["list", "--db", str(db)]) == 0
    assert "4 found" in capsys.readouterr().err  # list warns beside its count
    rc, out = _check(db, capsys)
    assert rc == 1 and rid in out and "4 found" in out


@pytest.mark.parametrize("column, value", [("git_commit", "feedface"), ("machine", "other"),
                                           ("points", 99), ("run_id", "20990101-x")])
def test_an_edited_run_row_is_damage(column, value, tmp_path, capsys):
    db = tmp_path / "r.db"
    _make_db(db, n=3)
    _edit(db, f"UPDATE runs SET {column}=?", (value,))
    capsys.readouterr()
    assert cli(["list", "--db", str(db)]) == 0
    out, err = capsys.readouterr()
    assert str(value) not in out and "damaged" in err  # never shown as if sound
    df = load(db)
    assert df.empty  # its records are not read with a wrong environment
    rc, out = _check(db, capsys)
    assert rc == 1 and "run" in out


def test_invalid_utf8_in_a_run_row_is_one_warning_not_a_traceback(tmp_path, capsys):
    db = tmp_path / "r.db"
    _make_db(db, n=3)
    _edit(db, "UPDATE runs SET machine=CAST(x'6dff80' AS TEXT), preset=CAST(x'c3' AS TEXT)")
    capsys.readouterr()
    for argv in (["list"], ["export"]):
        assert cli([*argv, "--db", str(db)]) == 0
        assert "damaged" in capsys.readouterr().err
    rc, out = _check(db, capsys)
    assert rc == 1 and "\udcff" not in out


def test_no_record_written_since_schema_4_can_be_unverified(tmp_path, capsys):
    db = tmp_path / "r.db"
    _make_db(db, n=3)
    _edit(db, "UPDATE records SET checksum=NULL, flops=flops*2, params=params+1 "
              "WHERE key='vit/d1'")
    with Store(db, create=False, readonly=True) as s:
        assert list(s.records_frame().key) == ["vit/d0", "vit/d2"]
        assert "only rows migrated" in s.damaged[0].reason
    rc, out = _check(db, capsys)
    assert rc == 1 and "vit/d1" in out


def test_version_1_rows_stay_unverified_and_later_ones_do_not(tmp_path, capsys):
    db = tmp_path / "v1.db"
    con = sqlite3.connect(db, isolation_level=None)
    _legacy_schema(con, 1)
    con.execute("PRAGMA application_id=1347568195")
    con.execute("PRAGMA user_version=1")
    con.execute("INSERT INTO runs (run_id, created_at, status, machine) "
                "VALUES ('old', 'then', 'finished', 'box')")
    row = {"run_id": "old", **Record(
        key="vit/d1", family="vit", depth=1, batch=2, dtype="float32", mode="eager",
        workload="infer", device="cpu", img_size=32, width="tiny",
        samples_ms=[1.5, 2.5, 3.5]).to_row(), "created_at": "then"}
    con.execute(f"INSERT INTO records ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                tuple(row.values()))
    con.close()
    rc, out = _check(db, capsys)  # read as it is: one unverified record, one unverified run
    assert rc == 0 and "1 unverified" in out and "1 run(s) unverified" in out
    with Store(db) as s:  # a writer migrates: the old run is sealed, with its count
        s.add_record("old", Record(key="vit/d2", family="vit", depth=2, batch=2,
                                   dtype="float32", mode="eager", workload="infer",
                                   device="cpu", img_size=32, width="tiny", samples_ms=[4.0]))
        assert s.run("old")["points"] == 2
    rc, out = _check(db, capsys)
    assert rc == 0 and "1 record(s) verified, 1 unverified" in out and "run(s)" not in out
    _edit(db, "UPDATE records SET checksum=NULL WHERE key='vit/d2'")
    rc, out = _check(db, capsys)
    assert rc == 1 and "vit/d2" in out and "vit/d1" not in out


def test_damaged_header_version_does_not_make_rows_unverified(tmp_path, capsys):
    db = tmp_path / "r.db"
    _make_db(db, n=2)
    _edit(db, "UPDATE records SET checksum=NULL WHERE key='vit/d1'")
    _edit(db, "PRAGMA user_version=2")  # as a flipped header byte would
    rc, out = _check(db, capsys)
    assert rc == 1 and "vit/d1" in out
    with Store(db) as s:  # a writer does not seal what was damaged either
        s.records_frame()
        assert [d.key for d in s.damaged] == ["vit/d1"]


def test_damaged_peak_and_comparison_are_warned_and_ignored(tmp_path, capsys):
    db = tmp_path / "r.db"
    _make_db(db, n=1)
    with Store(db) as s:
        s.set_peak("m", "cpu", "float32", 1.5)
        s.add_comparison("a", "b", {"rows": []})
        assert s.get_peak("m", "cpu", "float32") == 1.5
        assert s.latest_comparison()["result"] == {"rows": []}
    _edit(db, "UPDATE peaks SET tflops=15.0")
    _edit(db, "UPDATE comparisons SET result_json='{not json'")
    capsys.readouterr()
    with Store(db, create=False, readonly=True) as s:
        assert s.get_peak("m", "cpu", "float32") is None
        assert s.latest_comparison() is None
    assert capsys.readouterr().err.count("ignoring damaged") == 2
    rc, out = _check(db, capsys)
    assert rc == 1 and "peaks m cpu float32" in out and "comparisons 1" in out


def test_a_writer_left_open_at_exit_still_leaves_a_complete_file(tmp_path):
    """As `run --executor inline` did: the store never closed; the .db alone, copied
    elsewhere, must hold every record."""
    db = tmp_path / "r.db"
    code = ("import sys; sys.path.insert(0, sys.argv[2]); from test_store_damage import "
            "_make_db; from parabench import Store; s = Store(sys.argv[1]);"
            "rid = s.start_run(sweep={}, preset='t', command='', env={});"
            "from parabench.records import Record;"
            "s.add_record(rid, Record(key='k', family='vit', depth=1, batch=1, dtype='float32',"
            " mode='eager', workload='infer', device='cpu', img_size=32, width='tiny',"
            " samples_ms=[1.0]))")
    res = subprocess.run([sys.executable, "-c", code, str(db), str(Path(__file__).parent)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    alone = tmp_path / "copy" / "r.db"
    alone.parent.mkdir()
    shutil.copyfile(db, alone)  # the .db only, no -wal
    assert len(load(alone)) == 1


def test_full_disk_is_called_a_full_disk(tmp_path):
    db = tmp_path / "r.db"
    rid = _make_db(db, n=1)
    with Store(db) as s:
        pages = s._conn.execute("PRAGMA page_count").fetchone()[0]
        s._conn.execute(f"PRAGMA max_page_count={pages}")  # SQLite's own "disk is full"
        big = Record(key="big", family="vit", depth=1, batch=1, dtype="float32", mode="eager",
                     workload="infer", device="cpu", img_size=32, width="tiny",
                     samples_ms=[1.0] * 20000)
        with pytest.raises(UsageError, match="the disk is full") as e:
            s.add_record(rid, big)
        assert "damaged" not in str(e.value)
    assert len(load(db)) == 1  # what was committed stays


def test_latest_tilde_huge_and_long_names_are_one_line(tmp_path, capsys):
    db = tmp_path / "r.db"
    _make_db(db, n=1)
    for argv in (["export", "--run", "latest~99999999999999999999", "--db", str(db)],
                 ["list", "--db", str(tmp_path / ("x" * 300 + ".db"))]):
        capsys.readouterr()
        assert cli(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and ("holds only 1 run" in err[0] or "too long" in err[0]), err


def test_read_only_copy_with_a_wal_and_no_shm_shows_everything():
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv")
    root = Path(tempfile.mkdtemp(prefix="parabench-wal-", dir="/tmp"))
    try:
        root.chmod(0o755)
        src, ro = root / "src", root / "ro"
        src.mkdir()
        ro.mkdir()
        rid = _make_db(src / "r.db", n=3)
        with Store(src / "r.db") as s:  # open while copied: its commits are in the -wal
            s._conn.execute("PRAGMA wal_autocheckpoint=0")
            for i in range(3, 6):
                s.add_record(rid, Record(key=f"vit/d{i}", family="vit", depth=i + 1, batch=2,
                                         dtype="float32", mode="eager", workload="infer",
                                         device="cpu", img_size=32, width="tiny",
                                         samples_ms=[1.0, 2.0]))
            shutil.copyfile(src / "r.db", ro / "r.db")
            shutil.copyfile(src / "r.db-wal", ro / "r.db-wal")
        assert (ro / "r.db-wal").stat().st_size > 0
        for p in (ro / "r.db", ro / "r.db-wal"):
            p.chmod(0o444)
        ro.chmod(0o555)
        code = ("import sys; sys.path.insert(0, sys.argv[2]); from parabench import load;"
                "print(len(load(sys.argv[1])))")
        res = subprocess.run(
            ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable,
             "-c", code, str(ro / "r.db"), str(Path(__file__).resolve().parents[1])],
            capture_output=True, text=True, timeout=120)
        if res.returncode and "Permission denied" in res.stderr and "parabench" not in res.stderr:
            pytest.skip(f"nobody cannot run python here: {res.stderr[-200:]}")
        assert res.returncode == 0, res.stderr
        assert res.stdout.split() == ["6"] and "warning" not in res.stderr
        assert sorted(p.name for p in ro.iterdir()) == ["r.db", "r.db-wal"]
    finally:
        for p in (root / "ro", root / "src", root):
            if p.exists():
                p.chmod(0o755)
        shutil.rmtree(root)


def test_a_renamed_column_in_the_schema_is_refused_not_half_read(tmp_path, capsys):
    db = tmp_path / "r.db"
    _make_db(db, n=2)
    con = sqlite3.connect(db)
    con.execute("PRAGMA writable_schema=ON")  # as a flipped letter in sqlite_master would
    con.execute("UPDATE sqlite_master SET sql=replace(sql, 'extra_json', 'extra_jsoz') "
                "WHERE name='records'")
    con.commit()
    con.close()
    for argv in (["list"], ["export"]):
        capsys.readouterr()
        assert cli([*argv, "--db", str(db)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "records.extra_json" in err[0]
    rc, out = _check(db, capsys)
    assert rc == 1 and "schema lacks records.extra_json" in out


def test_list_never_shows_a_damaged_status(tmp_path, capsys):
    db = tmp_path / "r.db"
    rid = _make_db(db, n=3)
    _edit(db, "UPDATE records SET status='ol' WHERE key='vit/d1'")
    capsys.readouterr()
    assert cli(["list", "--db", str(db)]) == 0
    out, err = capsys.readouterr()
    assert "ol" not in out.split(rid, 1)[1] and "damaged status 'ol'" in err
    assert "stored 3 point(s), 2 found" in err
