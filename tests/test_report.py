"""`python -m parabench report` on synthetic databases with a known answer."""
import json
import sys
import time
import types

import pandas as pd
import pytest

from parabench import analysis
from parabench.cli import main
from parabench.config import PRESETS
from parabench.records import Record
from parabench.report import build_report
from parabench.store import Store

from synthetic import SYNTHETIC_TRUTH, make_db

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# paper_db and paper_report (shared with test_report_browser.py): conftest.py


@pytest.fixture(scope="module")
def quick_db(tmp_path_factory):
    path = tmp_path_factory.mktemp("quick") / "quick.db"
    store, run_id = make_db(path, "quick")
    store.close()
    return path, run_id


@pytest.fixture(scope="module")
def quick_report(quick_db, tmp_path_factory):
    db = quick_db[0]
    t0 = time.perf_counter()
    res = build_report(db, None, tmp_path_factory.mktemp("quick-report") / "r")
    print(f"\nquick-sized report: {time.perf_counter() - t0:.1f} s")
    return res


def _section(res, sid):
    return next(s for s in res.sections if s.id == sid)


def test_paper_report_writes_every_file(paper_report):
    out = paper_report.out
    for name in ("index.html", "report.md", "data.csv", "fits.csv", "ratios.csv"):
        assert (out / name).stat().st_size > 0, name
    assert len(paper_report.figures) >= 8
    for f in paper_report.figures:
        assert f.read_bytes()[:8] == PNG_MAGIC and f.stat().st_size > 5000
    html = (out / "index.html").read_text()
    # self-contained: every figure inline, nothing fetched from anywhere
    assert html.count('src="data:image/png;base64,') == len(paper_report.figures)
    assert "http://" not in html and "https://" not in html and "<script" not in html
    md = (out / "report.md").read_text()
    for f in paper_report.figures:
        assert f"]({f.relative_to(out).as_posix()})" in md
    data = pd.read_csv(out / "data.csv")
    assert len(data) == len(PRESETS["paper"].points()) + 1  # and conftest's error row
    assert set(data["status"]) == {"ok", "oom", "skipped", "error"}
    assert len(json.loads(data.loc[0, "samples_ms"])) == 40  # raw samples survive


def test_paper_report_has_every_section_with_data(paper_report):
    with_data = {s.id for s in paper_report.sections if not s.missing}
    for sid in ("verdict", "environment", "latency", "ratio", "throughput", "efficiency",
                "energy", "memory", "profile", "comparison", "not-measured"):
        assert sid in with_data, sid
    # history: no asv results here, so a section that says how to get them
    hist = _section(paper_report, "history")
    assert hist.missing and "asv" in hist.missing[0].how
    reg = _section(paper_report, "comparison")
    assert "1 regression(s) among 2" in reg.lead[0]
    bad = _section(paper_report, "not-measured").tables[0]
    assert {r[7] for r in bad.rows} == {"oom", "skipped", "error"}  # error: conftest's
    assert any("out of memory" in r[8] for r in bad.rows)


def test_verdicts_match_the_planted_truth(paper_db, paper_report):
    fits = pd.read_csv(paper_report.out / "fits.csv")
    for (fam, batch), want in SYNTHETIC_TRUTH.items():
        got = set(fits[(fits["family"] == fam) & (fits["batch"] == batch)]["verdict"])
        assert got == {want}, (fam, batch, got)
    ends = analysis.flatness_end(fits).set_index(["family", "mode"])
    for mode in ("eager", "graph"):
        assert ends.loc[("paraformer-fused", mode), "flat_up_to"] == 1
        assert ends.loc[("paraformer-fused", mode), "ends_at"] == 32
        assert ends.loc[("vit", mode), "flat_up_to"] is None
    lead = " ".join(_section(paper_report, "verdict").lead)
    assert "Flat in depth: paraformer-fused" in lead and "not at 32" in lead
    ratios = pd.read_csv(paper_report.out / "ratios.csv")
    deep = ratios[(ratios["family"] == "paraformer-fused") & (ratios["depth"] == 48)]
    assert (deep[deep["batch"] == 1]["ratio"] < 0.5).all()  # fused wins when launch-bound
    assert (deep[deep["batch"] == 256]["ratio"] > 1.2).all()  # and loses when saturated


def test_quick_cpu_report_says_what_is_missing_and_how(quick_report):
    missing = {s.id: s.missing for s in quick_report.sections if s.missing}
    assert {"energy", "profile", "history", "comparison"} <= set(missing)
    assert "efficiency" in missing  # FLOPs give TFLOP/s, but no measured peak on CPU
    assert "run --profile" in missing["profile"][0].how
    assert "NVML" in missing["energy"][0].what
    html = (quick_report.out / "index.html").read_text()
    md = (quick_report.out / "report.md").read_text()
    for text in (html, md):
        assert "python -m parabench run --profile" in text
        assert "python -m parabench compare" in text
    assert html.count('class="missing"') >= 5
    # no empty plots: energy and profile drew nothing
    names = {f.name for f in quick_report.figures}
    assert not any(n.startswith(("energy", "profile")) for n in names)
    assert {"latency_s0_linear.png", "latency_s0_log.png", "memory_s0.png"} <= names


def test_user_strings_are_escaped(tmp_path):
    evil = "<script>alert('$x$')</script>"
    store, run_id = make_db(tmp_path / "x.db", "quick", family_alias={"vit": evil})
    store.add_record(run_id, Record(
        key="k", family="paraformer-loop", depth=99, batch=1, dtype="float32", mode="eager",
        workload="infer", device="cpu", img_size=32, width="tiny", status="error",
        reason='<img src=x onerror="alert(1)"> & more'))
    store.close()
    res = build_report(tmp_path / "x.db", [run_id], tmp_path / "out")
    html = (res.out / "index.html").read_text()
    assert "<script" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(" in html and "&lt;img src=x onerror=" in html
    assert "&amp; more" in html
    md = (res.out / "report.md").read_text()
    assert "<script" not in md and "&lt;script&gt;" in md
    assert res.figures  # a '$' in a legend label did not break matplotlib


def test_empty_and_failed_runs_render(tmp_path):
    store = Store(tmp_path / "e.db")
    empty = store.start_run(sweep={}, preset=None, command="x", env={})
    failed = store.start_run(sweep={}, preset="quick", command="x", env={"machine": "m"})
    for d in (1, 2):
        store.add_record(failed, Record(
            key=f"k{d}", family="vit", depth=d, batch=1, dtype="float32", mode="eager",
            workload="infer", device="cpu", img_size=32, width="tiny", status="error",
            reason="RuntimeError: boom"))
    store.close()
    for run, out in ((empty, "e"), (failed, "f")):
        res = build_report(tmp_path / "e.db", [run], tmp_path / out)
        assert res.figures == []
        verdict = _section(res, "verdict")
        assert verdict.missing and "no successful measurement" in verdict.missing[0].what
        assert (res.out / "index.html").exists() and (res.out / "data.csv").exists()
    assert "2 error" in _section(res, "not-measured").bullets[0]


def test_history_section_with_asv_results(tmp_path, monkeypatch, quick_db):
    """The history contract: load_asv_history(dir), load_store_history(db) and
    detect_change_points(df) in parabench.regress.history."""
    dates = pd.date_range("2026-01-01", periods=6, freq="D")
    hist = pd.DataFrame({
        "benchmark": "bench.TrackLatency.track_median_ms", "params": "('vit', 8)",
        "commit": [f"c{i}abcdef" for i in range(6)], "date": dates,
        "value": [1.0, 1.01, 0.99, 1.5, 1.52, 1.49], "unit": "ms"})
    fake = types.ModuleType("parabench.regress.history")
    fake.load_asv_history = lambda d: hist
    fake.load_store_history = lambda db: hist.iloc[0:0]  # one run: no history to show
    fake.detect_change_points = lambda df: df.iloc[[3]].assign(
        before=1.0, after=1.5, ratio=1.5, previous_commit="c2abcdef")[
        ["benchmark", "params", "commit", "date", "before", "after", "ratio",
         "previous_commit"]]
    monkeypatch.setitem(sys.modules, "parabench.regress.history", fake)
    (tmp_path / "asv").mkdir()
    res = build_report(quick_db[0], [quick_db[1]], tmp_path / "h", tmp_path / "asv")
    sec = _section(res, "history")
    assert not sec.missing and sec.figures[0].path.name == "history.png"
    assert sec.tables[0].rows[0][2:4] == ["c2abcdef", "c3abcdef"]  # the step's commit range

    def broken(d):
        raise ValueError("corrupt results")

    fake.load_asv_history = broken
    res = build_report(quick_db[0], [quick_db[1]], tmp_path / "h2", tmp_path / "asv")
    assert "corrupt results" in _section(res, "history").missing[0].what
    monkeypatch.setitem(sys.modules, "parabench.regress.history", None)  # module absent
    res = build_report(quick_db[0], [quick_db[1]], tmp_path / "h3", tmp_path / "asv")
    assert "not available" in _section(res, "history").missing[0].what


def test_cli(tmp_path, monkeypatch, capsys, quick_db):
    monkeypatch.chdir(tmp_path)
    assert main(["report", "--db", str(quick_db[0])]) == 0
    out = capsys.readouterr().out
    assert "reports/latest/index.html" in out and " s\n" in out.splitlines()[0] + "\n"
    assert (tmp_path / "reports" / "latest" / "report.md").exists()
    assert main(["report", "--db", str(quick_db[0]), "--run", quick_db[1],
                 "--out", "mine"]) == 0
    assert (tmp_path / "mine" / "index.html").exists()


@pytest.mark.parametrize("args, message", [
    (["--db", "nope.db"], "no results database"),
    (["--db", "PAPER", "--run", "no-such-run"], "no run 'no-such-run'"),
    (["--db", "EMPTY"], "holds no runs yet"),
    (["--db", "PAPER", "--out", "/dev/null/r"], "--out /dev/null/r: cannot write there"),
    (["--db", "PAPER", "--out", "FILE"], "exists and is not a directory"),
])
def test_cli_bad_input_is_one_line_exit_2(tmp_path, monkeypatch, capsys, paper_db, args,
                                          message):
    monkeypatch.chdir(tmp_path)
    Store(tmp_path / "empty.db").close()
    (tmp_path / "a-file").write_text("x")
    args = [{"PAPER": str(paper_db[0]), "EMPTY": "empty.db", "FILE": "a-file"}.get(a, a)
            for a in args]
    assert main(["report", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_history_falls_back_to_the_runs_in_the_store(tmp_path):
    pytest.importorskip("parabench.regress.history")
    for seed in (0, 1, 2):
        make_db(tmp_path / "multi.db", "quick", seed=seed)[0].close()
    res = build_report(tmp_path / "multi.db", None, tmp_path / "out", tmp_path / "no-asv")
    sec = _section(res, "history")
    assert not sec.missing, sec.missing
    assert "runs stored in" in sec.paragraphs[0]
    assert sec.figures and sec.figures[0].path.exists()


def test_report_says_how_loaded_the_machine_was_and_marks_busy_figures(tmp_path):
    """Every report gives the load range of its figures; a figure measured beside other
    heavy work (here: the vit points at depth 8, load 4.1 on 1 thread) is marked † in
    the ratio table, and the per-run table counts it."""
    def load(p):
        busy = p.family == "vit" and p.depth == 8
        return {"load_1m_before": 0.4, "load_1m_after": 4.1 if busy else 0.9,
                "other_cpu_s": 6.0 if busy else 0.1, "load_window_s": 2.0, "load_threads": 1,
                "busy": busy}

    store, run_id = make_db(tmp_path / "l.db", "quick", load=load)
    store.close()
    res = build_report(tmp_path / "l.db", [run_id], tmp_path / "out")
    lat = _section(res, "latency")
    assert any("1-minute load average 0.9 to 4.1" in b for b in lat.bullets), lat.bullets
    assert any(b.startswith("1 of ") and "busy machine" in b for b in lat.bullets)
    (ratio_table,) = _section(res, "ratio").tables
    depth8 = ratio_table.columns.index("depth 8")
    marked = [row for row in ratio_table.rows if row[depth8].endswith("†")]
    assert marked and all(row[1] == "vit" for row in marked)
    assert not any(c.endswith("†") for row in ratio_table.rows for c in row[:depth8])
    assert "†" in ratio_table.note
    env = _section(res, "environment")
    (load_table,) = [t for t in env.tables if t.caption.startswith("Load")]
    assert load_table.rows[0][2] == "0.9–4.1" and load_table.rows[0][4] == "1"
    md = (res.out / "report.md").read_text()
    assert "†" in md and "not this machine's figure" in md


def test_report_on_records_without_load_says_it_is_unknown(quick_report):
    lat = _section(quick_report, "latency")
    assert any("recorded the machine's load" in b and "unknown" in b for b in lat.bullets)
