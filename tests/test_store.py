import sqlite3

import pandas as pd
import pytest

from parabench import Store, UsageError, load
from parabench.records import Record, SampleStats


def _rec(key="vit/d1", status="ok", samples=(1.0, 2.0, 3.0)):
    return Record(key=key, family="vit", depth=1, batch=2, dtype="float32", mode="eager",
                  workload="infer", device="cpu", img_size=32, width="tiny", status=status,
                  samples_ms=list(samples))


def test_stats_from_samples():
    s = SampleStats.from_samples([1, 2, 3, 4, 100])
    assert s.median == 3 and s.n == 5 and s.p10 < s.median < s.p90
    assert s.noisy  # IQR 2 over median 3
    assert not SampleStats.from_samples([10.0, 10.1, 10.0, 9.9]).noisy


def test_roundtrip_keeps_raw_samples_and_throughput(tmp_path):
    db = tmp_path / "r.db"
    with Store(db) as s:
        rid = s.start_run(sweep={}, preset="t", command="x", env={"machine": "m"})
        s.add_record(rid, _rec(samples=[4.0, 5.0, 6.0]))
        s.add_record(rid, _rec(key="vit/d2", status="skipped", samples=()))
    df = load(db, rid)
    ok = df[df.status == "ok"].iloc[0]
    assert ok.samples_ms == [4.0, 5.0, 6.0]
    assert ok.median_ms == 5.0
    assert ok.throughput == pytest.approx(2 / 5e-3)
    assert df[df.status == "skipped"].iloc[0].samples_ms == []
    assert isinstance(df, pd.DataFrame) and ok.machine == "m"


def test_latest_and_unknown_run(tmp_path):
    db = tmp_path / "r.db"
    with Store(db) as s:
        s.start_run(sweep={}, preset="a", command="", env={})
        b = s.start_run(sweep={}, preset="b", command="", env={})
        assert s.resolve_runs(["latest"]) == [b]
        with pytest.raises(UsageError, match="no run 'nope'"):
            s.resolve_runs(["nope"])


def test_latest_tilde_n_counts_back_like_git(tmp_path):
    with Store(tmp_path / "r.db") as s:
        ids = [s.start_run(sweep={}, preset=p, command="", env={}) for p in "abc"]
        assert [s.resolve_run(f"latest~{n}") for n in range(3)] == ids[::-1]
        assert s.resolve_run("latest") == ids[-1] and s.find_run("nope") is None
        with pytest.raises(UsageError, match="holds only 3 run"):
            s.resolve_run("latest~3")


def test_record_row_roundtrip_through_the_database(tmp_path):
    """Record -> row -> database -> frame row -> Record gives the record back."""
    from parabench.config import Point, preset

    rec = Record.for_point(Point("vit", 2, 4, "float32", "eager", "infer"), preset("quick"),
                           samples_ms=[1.5, 1.25, 2.0], params=1234, flops=5.5e6,
                           extra={"kernels_per_forward": 7.0, "note": "x"})
    assert rec.key == "vit/d2/b4/float32/eager/infer" and rec.width == "tiny"
    row = rec.to_row()
    assert row["median_ms"] == 1.5 and row["kernels_per_forward"] == 7.0
    assert Record.from_row(row) == rec
    with Store(tmp_path / "r.db") as s:
        rid = s.start_run(sweep={}, preset="t", command="", env={})
        s.add_record(rid, rec)
        back = Record.from_row(s.records_frame([rid]).iloc[0])
    assert back == rec


def test_update_metrics_fills_columns_and_extra(tmp_path):
    with Store(tmp_path / "r.db") as s:
        rid = s.start_run(sweep={}, preset="t", command="", env={})
        s.add_record(rid, _rec())
        s.update_metrics(rid, "vit/d1", kernels_per_forward=42.0, top_ops=["mm"])
        row = s.records_frame([rid]).iloc[0]
    assert row.kernels_per_forward == 42.0 and row.extra["top_ops"] == ["mm"]


def test_foreign_sqlite_database_is_refused_and_untouched(tmp_path):
    db = tmp_path / "other.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE customers (id INTEGER)")
    con.commit()
    con.close()
    before = db.read_bytes()
    with pytest.raises(UsageError, match="another program"):
        Store(db)
    assert db.read_bytes() == before


def test_non_database_file_is_refused_and_untouched(tmp_path):
    db = tmp_path / "notes.db"
    db.write_text("hello, this is not sqlite\n" * 20)
    before = db.read_bytes()
    with pytest.raises(UsageError, match="not a usable parabench database"):
        Store(db)
    assert db.read_bytes() == before


def test_read_only_open_does_not_create(tmp_path):
    with pytest.raises(UsageError, match="no results database"):
        Store(tmp_path / "missing.db", create=False)
    assert not (tmp_path / "missing.db").exists()


def test_records_frame_is_shaped_as_read_sql_query_made_it(tmp_path):
    """Verification reads raw rows; the frame keeps the columns and dtypes callers had."""
    db = tmp_path / "r.db"
    with Store(db) as s:
        rid = s.start_run(sweep={}, preset="t", command="", env={})
        s.add_record(rid, _rec(samples=[1.25, 2.5, 3.75]))
        s.add_record(rid, _rec(key="vit/d2", status="skipped", samples=()))
        df = s.records_frame()
        ref = pd.read_sql_query(
            "SELECT r.*, u.git_commit, u.git_dirty, u.machine AS run_machine, u.preset,"
            " u.created_at AS run_created_at FROM records r JOIN runs u USING (run_id)"
            " ORDER BY r.id", s._conn).drop(columns=["samples_json", "extra_json", "checksum",
                                                     "env_json"])
    # a record's machine is its own, else (written before v3) its run's
    ref["machine"] = ref["machine"].where(ref["machine"].notna(), ref.pop("run_machine"))
    assert list(df.columns) == list(ref.columns) + ["samples_ms", "extra", "env"]
    assert df[ref.columns].dtypes.equals(ref.dtypes)
    pd.testing.assert_frame_equal(df[ref.columns], ref)


def test_a_second_store_in_one_process_keeps_the_first_ones_lock(tmp_path):
    """A second Store on the same file (the heartbeat's) once read the header with
    open()/close(), and POSIX dropped the first connection's lock with that close. Another
    process that then closed its connection took itself for the last one, checkpointed and
    deleted the write-ahead log under the writer: the database came out malformed."""
    import subprocess
    import sys
    from pathlib import Path

    db = tmp_path / "s.db"
    with Store(db) as writer:
        writer.start_run(sweep={}, preset="t", command="test", env={})
        with Store(db, create=False):
            pass
        writer.add_record(writer.latest_run_id(), _rec())  # a commit in the log
        subprocess.run([sys.executable, "-c", "import sqlite3, sys; c = sqlite3.connect("
                        "sys.argv[1]); c.execute('SELECT count(*) FROM runs').fetchall(); "
                        "c.close()", str(db)], check=True)
        assert Path(f"{db}-wal").exists(), "another process deleted the writer's log"
        writer.add_record(writer.latest_run_id(), _rec("vit/d2"))
    with Store(db, create=False) as s:
        assert len(s.records_frame([s.latest_run_id()])) == 2
