"""Bad input: one clear line, exit code 2, database untouched. Good input: --help works."""
import contextlib
import io
import re
import sqlite3

import pytest

from parabench.cli import main


def _err_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    return err[0]


@pytest.mark.parametrize("argv, needle", [
    (["run", "--family", "vitt"], "unknown family 'vitt'"),
    (["run", "--family", "vit", "--depth", "0"], "must be between 1 and"),
    (["run", "--family", "vit", "--depth", "1", "--batch", "-4"], "batch size must be between 1"),
    (["run", "--family", "vit", "--depth", "1", "--dtype", "float16"], "float16"),
    (["run", "--family", "vit", "--depth", "1", "--dtype", "int8"], "unknown dtype"),
    (["run", "--family", "vit", "--depth", "1", "--device", "cuda"], "cuda"),
    (["run", "--family", "vit", "--depth", "1", "--img-size", "36"], "not divisible"),
    (["run", "--family", "resnet", "--depth", "19"], "resnet depth 19"),
    (["run", "--mode", "turbo"], "unknown mode"),
    (["run", "--depth", "two"], "integers"),
    (["run", "--config", "/nonexistent.toml"], "sweep file not found"),
    (["run", "--preset", "nope"], "unknown preset"),
    (["export", "--format", "parquet"], "--out"),
    (["run", "--resume", "no-such-run"], "no results database"),
])
def test_bad_input_is_one_line_and_exit_2(argv, needle, capsys, tmp_path):
    db = tmp_path / "r.db"
    assert _exit_code(argv + ["--db", str(db)]) == 2
    line = _err_line(capsys)
    assert needle in line
    assert not db.exists()  # refused before any file was made


def _exit_code(argv):
    """main()'s return value, or argparse's exit status for flag errors."""
    try:
        return main(argv)
    except SystemExit as e:
        return e.code


@pytest.mark.parametrize("content", [b"not a database at all" * 10, None])
def test_unreadable_or_foreign_database_exits_2_untouched(content, tmp_path, capsys):
    db = tmp_path / "x.db"
    if content is None:
        con = sqlite3.connect(db)
        con.execute("CREATE TABLE invoices (n INTEGER)")
        con.commit()
        con.close()
    else:
        db.write_bytes(content)
    before = db.read_bytes()
    for argv in (["run", "--family", "vit", "--depth", "1"], ["list"], ["export"]):
        assert main(argv + ["--db", str(db)]) == 2
        assert "database" in _err_line(capsys)
    assert db.read_bytes() == before


def test_run_list_export_end_to_end(tmp_path, capsys, cli):
    db = tmp_path / "r.db"
    r = cli("run", "--family", "vit,paraformer-fused", "--depth", "1", "--min-time", "0",
            "--min-samples", "3", "--no-progress", db=db)
    assert r.returncode == 0, r.stderr
    run_id = r.stdout.strip()
    assert main(["list", "--db", str(db)]) == 0
    assert run_id in capsys.readouterr().out
    out = tmp_path / "x.csv"
    assert main(["export", "--db", str(db), "--format", "csv", "--out", str(out)]) == 0
    import pandas as pd

    df = pd.read_csv(out)
    assert len(df) == 2 and set(df.family) == {"vit", "paraformer-fused"}
    assert main(["export", "--db", str(db), "--format", "json", "--run", run_id]) == 0
    assert '"median_ms"' in capsys.readouterr().out
    pq = tmp_path / "x.parquet"
    assert main(["export", "--db", str(db), "--format", "parquet", "--out", str(pq)]) == 0
    assert len(pd.read_parquet(pq)) == 2


COMMANDS = ("run", "list", "env", "export", "profile", "report", "compare", "history",
            "count", "check")


def test_help_for_every_command(cli):
    r = cli("--help")
    assert r.returncode == 0 and all(c in r.stdout for c in COMMANDS)
    for cmd in COMMANDS:
        r = cli(cmd, "--help")
        assert r.returncode == 0 and "usage: parabench" in r.stdout
        text = " ".join(r.stdout.split())  # argparse wraps lines
        # a default is shown only when there is one, once, and never for on/off flags
        assert "(default: None)" not in text and "(default: False)" not in text, cmd
        assert "(default: True)" not in text, cmd
        assert not re.search(r"\(default[^()]*\) \(default:", text), cmd  # said twice


def test_a_reader_that_goes_away_gets_no_traceback():
    """`parabench list families | true`: the pipe closes before parabench writes; exit
    141 (128 + SIGPIPE) like other Unix tools, and nothing on stderr."""
    import os
    import subprocess
    import sys

    read, write = os.pipe()
    os.close(read)  # nobody will ever read
    with os.fdopen(write, "w") as out:
        r = subprocess.run([sys.executable, "-m", "parabench", "list", "families"],
                           stdout=out, stderr=subprocess.PIPE, text=True, timeout=120)
    assert r.returncode == 141 and r.stderr == "", r.stderr


def test_help_imports_no_heavy_library(cli):
    """`parabench --help` must stay instant: argparse only, no pandas/numpy/torch."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "parabench", "--help"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    loaded = {line.split("|")[-1].strip().split(".")[0] for line in out.stderr.splitlines()
              if line.startswith("import time:")}
    assert not loaded & {"pandas", "numpy", "torch", "scipy", "matplotlib", "rich"}, loaded


def test_every_command_shares_db_and_run_options():
    """One --db everywhere, a repeatable --run wherever runs are chosen, one handler name."""
    from parabench.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for name, parser in sub.choices.items():
        if name != "env":
            db = next(a for a in parser._actions if a.dest == "db")
            assert db.option_strings == ["--db"], name
        runs = [a for a in parser._actions if "--run" in a.option_strings]
        assert all(a.dest == "runs" and a.nargs is None and type(a).__name__ == "_AppendAction"
                   for a in runs), name
        assert parser.get_default("func").__name__ == "main", name


def test_report_takes_several_runs(tmp_path, capsys):
    """`report --run A --run B` reports both runs (the README shows it)."""
    db = tmp_path / "r.db"
    ids = []
    for depth in ("1", "2"):  # inline: no worker process to start (~5 s each)
        assert main(["run", "--family", "vit", "--depth", depth, "--min-time", "0",
                     "--min-samples", "3", "--no-progress", "--executor", "inline",
                     "--db", str(db)]) == 0
        ids.append(capsys.readouterr().out.strip())
    out = tmp_path / "rep"
    assert main(["report", "--db", str(db), "--run", ids[0], "--run", ids[1],
                 "--out", str(out)]) == 0
    data = (out / "data.csv").read_text()
    assert ids[0] in data and ids[1] in data


def test_env_reports_what_it_detected(capsys):
    # in this process (torch is imported already): a subprocess spent ~4 s importing it;
    # `python -m parabench` itself is run by the tests above
    assert main(["env"]) == 0
    out = capsys.readouterr().out
    assert "torch" in out and "nvml" in out and "cuda" in out


def test_toml_sweep_file(tmp_path):
    from parabench.sweep_file import sweep_from_toml

    f = tmp_path / "s.toml"
    f.write_text('preset = "quick"\nbatches = [1, 4]\n[depths_by_family]\nresnet = [50]\n')
    s = sweep_from_toml(f)
    assert s.batches == (1, 4) and s.depths_for("resnet") == (50,)
    assert s.depths_for("vit") == (1, 2, 4, 8)
    f.write_text('families = ["vit"]\ndepths = [1]\nbogus = 3\n')
    from parabench import UsageError

    with pytest.raises(UsageError, match="bogus"):
        sweep_from_toml(f)


@pytest.mark.parametrize("flags, needle", [
    (["--min-time", "nan"], "finite"),
    (["--min-time", "inf"], "finite"),
    (["--family", ""], "families: expected a non-empty list"),
    (["--depth", "99999999999999999999"], "between 1 and 4096"),
    (["--threads", "100000"], "CPU count"),
    (["--config", "/"], "cannot read sweep file"),
])
def test_bad_sweep_flags_refused_before_anything_is_written(flags, needle, capsys, tmp_path):
    db = tmp_path / "r.db"
    assert _exit_code(["run", "--family", "vit", *flags, "--db", str(db)]) == 2
    assert needle in _err_line(capsys)
    assert not db.exists()


@pytest.mark.parametrize("toml, needle", [
    ('min_time_s = "fast"', "min_time_s: expected a number"),
    ('depths = "one"', "depths: expected a non-empty list of integers"),
    ('threads = "two"', "threads: expected an integer"),
    ("depths_by_family = 5", "depths_by_family must be a table"),
    ('[depths_by_family]\nresnet = ["x"]', "depths_by_family: expected"),
    ("batches = 1.5", "batches: expected a non-empty list of integers"),
    ("depths = [2.0]", "depths: expected"),
    ("warmup = true", "warmup: expected an integer"),
    ("families = []", "families: expected a non-empty list"),
])
def test_sweep_file_values_are_type_checked(toml, needle, capsys, tmp_path):
    f = tmp_path / "s.toml"
    f.write_text(f'preset = "quick"\n{toml}\n')
    db = tmp_path / "r.db"
    assert _exit_code(["run", "--config", str(f), "--db", str(db)]) == 2
    assert needle in _err_line(capsys)
    assert not db.exists()


def test_repeated_values_are_measured_once_with_a_note(capsys):
    from parabench.cli import build_parser
    from parabench.commands._options import sweep_from_args

    args = build_parser().parse_args(["run", "--family", "vit,vit", "--depth", "1,1,2"])
    sweep = sweep_from_args(args)
    assert sweep.families == ("vit",) and sweep.depths == (1, 2)
    err = capsys.readouterr().err
    assert "families: repeated values dropped" in err and "depths:" in err


@pytest.mark.parametrize("sweep_json, needle", [
    ('{"families": ["vit"], "depths": [1], "interleaved": {"rounds": 3}}', "interleave"),
    ('{"families": ["vit"], "depths": [1], "turbo": true}', "damaged or from another"),
    ('{"families": "vit", "depths": [1]', "no readable stored sweep"),
    ('{"families": ["vit"], "depths": ["one"]}', "damaged or from another"),
])
def test_resume_refuses_what_it_cannot_continue(sweep_json, needle, tmp_path, capsys):
    from parabench import Store

    db = tmp_path / "r.db"
    with Store(db) as s:
        s.start_run(sweep={}, preset="x", command="", env={})
    con = sqlite3.connect(db)
    con.execute("UPDATE runs SET sweep_json=?", (sweep_json,))
    _reseal(con)  # as another version of parabench would have written it
    con.commit()
    con.close()
    assert _exit_code(["run", "--resume", "latest", "--db", str(db)]) == 2
    assert needle in _err_line(capsys)


def _reseal(con) -> None:
    """Seal every run and record as they now are: a database that another program (or
    another parabench) wrote so, not one damaged behind parabench's back."""
    from parabench.store.sealing import seal

    for (rid,) in con.execute("SELECT run_id FROM runs").fetchall():
        seal(con, "runs", (rid,))
    for rid, key in con.execute("SELECT run_id, key FROM records").fetchall():
        seal(con, "records", (rid, key))


def test_resume_latest_and_refusing_flags_beside_it(tmp_path, capsys):
    db = tmp_path / "r.db"
    args = ["--family", "vit", "--depth", "1", "--min-time", "0", "--min-samples", "3",
            "--no-progress", "--db", str(db)]
    assert _exit_code(["run", *args, "--executor", "inline"]) == 0  # no worker start-up
    rid = capsys.readouterr().out.strip()
    assert _exit_code(["run", "--resume", "latest", "--no-progress", "--db", str(db)]) == 0
    assert capsys.readouterr().out.strip() == rid
    assert _exit_code(["run", "--resume", rid, "--depth", "2", "--db", str(db)]) == 2
    assert "--depth cannot change it" in _err_line(capsys)


@pytest.fixture(scope="module")
def small_db(tmp_path_factory):
    """One measured database for the tests that only read it, measured inline (a
    worker process would cost about 5 s importing torch), once instead of once per test."""
    db = tmp_path_factory.mktemp("small") / "r.db"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = _exit_code(["run", "--family", "vit", "--depth", "1", "--min-time", "0",
                           "--min-samples", "3", "--no-progress", "--executor", "inline",
                           "--db", str(db)])
    assert code == 0
    return db


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet"])
@pytest.mark.parametrize("where, needle", [
    ("DIR", "is a directory"),
    ("/proc/parabench.out", "cannot"),
    ("/dev/null/x.out", "cannot"),
])
def test_export_to_an_unwritable_place_is_one_line(fmt, where, needle, small_db, tmp_path,
                                                   capsys):
    out = str(tmp_path) if where == "DIR" else where
    assert _exit_code(["export", "--db", str(small_db), "--format", fmt, "-o", out]) == 2
    assert needle in _err_line(capsys)


def test_export_creates_missing_folders(small_db, tmp_path, capsys):
    out = tmp_path / "new" / "deeper" / "x.csv"
    assert _exit_code(["export", "--db", str(small_db), "-o", str(out)]) == 0
    assert out.read_text().startswith("id,")


@pytest.mark.parametrize("cmd", [["profile"], ["run", "--profile"]])
def test_unwritable_trace_dir_refused_before_measuring(cmd, tmp_path, capsys):
    db = tmp_path / "r.db"
    assert _exit_code([*cmd, "--family", "vit", "--depth", "1", "--db", str(db),
                       "--trace-dir", "/dev/null/traces"]) == 2
    assert "--trace-dir" in _err_line(capsys)
    assert not db.exists()


def test_run_ids_that_are_not_file_names_never_reach_a_path():
    from parabench import UsageError
    from parabench.measure.profile import point_trace_dir

    assert point_trace_dir("tr", "20261123-133654-f04f93", "vit/d1").name == "vit_d1"
    for evil in ("../../X", "/etc", ".hidden", "a/b"):
        with pytest.raises(UsageError, match="cannot be used as a file name"):
            point_trace_dir("tr", evil, "vit/d1")


def test_resume_with_a_path_like_run_id_never_writes_outside_the_trace_dir(tmp_path, capsys):
    import sqlite3 as sq

    db = tmp_path / "r.db"
    assert _exit_code(["run", "--family", "vit", "--depth", "1,2", "--min-time", "0",
                       "--min-samples", "3", "--no-progress", "--executor", "inline",
                       "--db", str(db)]) == 0
    con = sq.connect(db)
    con.execute("UPDATE runs SET run_id='../../X'")
    con.execute("UPDATE records SET run_id='../../X'")
    _reseal(con)
    con.commit()
    con.close()
    capsys.readouterr()
    assert _exit_code(["run", "--resume", "../../X", "--profile", "--trace-dir",
                       str(tmp_path / "tr"), "--db", str(db)]) == 2
    assert "cannot be used as a file name" in _err_line(capsys)
    assert not (tmp_path.parent / "X").exists()
