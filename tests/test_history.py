"""History: asv/store loading and change-point detection (persistent steps, not noise)."""
import json

import numpy as np
import pandas as pd
import pytest

from parabench.cli import main
from parabench.records import Record
from parabench.regress.history import (
    CHANGE_COLUMNS,
    HISTORY_COLUMNS,
    detect_change_points,
    load_asv_history,
    load_store_history,
)
from parabench.store import Store


def _frame(values, bench="b", params="family=vit"):
    n = len(values)
    return pd.DataFrame({
        "benchmark": bench, "params": params, "commit": [f"c{i:03d}" for i in range(n)],
        "date": pd.date_range("2024-01-01", periods=n, freq="D", tz="UTC"),
        "value": values, "unit": "seconds",
    })


def test_step_is_found_at_the_right_commit():
    rng = np.random.default_rng(0)
    v = np.r_[np.full(8, 1.0), np.full(7, 1.3)] * rng.lognormal(0, 0.02, 15)
    cps = detect_change_points(_frame(v))
    assert list(cps.columns[:7]) == CHANGE_COLUMNS
    assert len(cps) == 1
    row = cps.iloc[0]
    assert row.commit == "c008" and row.previous_commit == "c007"
    assert row.ratio == pytest.approx(1.3, rel=0.05)
    assert isinstance(row.date, pd.Timestamp)


def test_two_steps_and_a_recovery():
    v = [1.0] * 5 + [1.5] * 5 + [1.0] * 5
    cps = detect_change_points(_frame(v))
    assert list(cps.commit) == ["c005", "c010"]
    assert cps.ratio.round(3).tolist() == [1.5, pytest.approx(0.667, abs=1e-3)]


def test_noise_is_not_a_change_point():
    # 30 commits of 5% lognormal noise: measured ~1 series in 500 gets a false change
    # (three chance highs at the very end), none with a 3% noise level
    found = 0
    for seed in range(200):
        rng = np.random.default_rng(seed)
        found += len(detect_change_points(_frame(rng.lognormal(0, 0.05, 30))))
        found += 10 * len(detect_change_points(_frame(rng.lognormal(0, 0.03, 30))))
    assert found <= 1


def test_single_outlier_and_short_blip_are_not_change_points():
    assert detect_change_points(_frame([1.0] * 6 + [3.0] + [1.0] * 6)).empty
    # a new level must last min_segment commits (default 2) before it counts
    assert detect_change_points(_frame([1.0] * 9 + [2.0])).empty
    assert detect_change_points(_frame([1.0] * 8 + [2.0, 2.0]), min_segment=3).empty
    assert len(detect_change_points(_frame([1.0] * 8 + [2.0, 2.0]))) == 1


def test_small_step_below_min_effect_is_ignored():
    assert detect_change_points(_frame([1.0] * 6 + [1.05] * 6)).empty
    assert len(detect_change_points(_frame([1.0] * 6 + [1.05] * 6), min_effect=0.02)) == 1


def test_series_are_kept_apart():
    df = pd.concat([_frame([1.0] * 10, bench="a"), _frame([1.0] * 5 + [2.0] * 5, bench="b"),
                    _frame([1.0] * 5 + [2.0] * 5, bench="b", params="family=resnet")])
    cps = detect_change_points(df)
    assert sorted(zip(cps.benchmark, cps.params, strict=True)) == [
        ("b", "family=resnet"), ("b", "family=vit")]
    assert detect_change_points(df.iloc[0:0]).empty


def _write_asv(root, values):
    (root / "vm").mkdir(parents=True)
    (root / "vm" / "machine.json").write_text("{}")
    (root / "benchmarks.json").write_text(json.dumps({
        "latency.T.track_latency": {"unit": "seconds", "param_names": ["family", "depth"]},
        "version": 2}))
    for i, v in enumerate(values):
        commit = f"{i:02d}" + "a" * 38
        data = {"commit_hash": commit, "env_name": "virtualenv-py3.11",
                "date": 1700000000000 + i * 86400000, "params": {"machine": "vm"},
                "result_columns": ["result", "params"],
                "results": {"latency.T.track_latency": [[v, None],
                                                         [["'vit'"], ["1", "2"]]]},
                "version": 2}
        (root / "vm" / f"{commit[:8]}-virtualenv-py3.11.json").write_text(json.dumps(data))


def test_load_asv_history(tmp_path):
    _write_asv(tmp_path, [1e-3] * 4 + [2e-3] * 4)
    df = load_asv_history(tmp_path, repo=None)  # no git: commit dates order them
    assert list(df.columns[:7]) == HISTORY_COLUMNS
    assert len(df) == 8  # the None result (depth=2) is dropped
    assert set(df.params) == {"family=vit, depth=1"} and set(df.unit) == {"seconds"}
    assert df.date.is_monotonic_increasing and str(df.date.dt.tz) == "UTC"
    cps = detect_change_points(df)
    assert len(cps) == 1 and cps.commit.iloc[0].startswith("04")
    assert load_asv_history(tmp_path / "nothing").empty


def _store_runs(path, medians):
    with Store(path) as s:
        for i, m in enumerate(medians):
            rid = s.start_run(sweep={}, preset="t", command="t",
                              env={"machine": "m", "git": {"commit": f"sha{i}", "dirty": False}})
            s.add_record(rid, Record(key="vit/d1/b1/float32/eager/infer", family="vit", depth=1,
                                     batch=1, dtype="float32", mode="eager", workload="infer",
                                     device="cpu", img_size=32, width="tiny",
                                     samples_ms=[m, m * 1.01, m * 0.99]))
            s.finish_run(rid, "finished")


def test_load_store_history_and_cli(tmp_path, capsys):
    db = tmp_path / "s.db"
    _store_runs(db, [1.0] * 4 + [1.6] * 4)
    df = load_store_history(db)
    assert list(df.columns[:7]) == HISTORY_COLUMNS and len(df) == 8
    assert list(df.commit) == [f"sha{i}" for i in range(8)]
    assert main(["history", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "1 change point(s)" in out and "sha4" in out and "slower" in out
    assert main(["history", "--db", str(db), "--format", "json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["series"] == 1 and res["change_points"][0]["commit"] == "sha4"


def test_history_cli_asv_and_bad_input(tmp_path, capsys, monkeypatch):
    _write_asv(tmp_path / "res", [1e-3] * 4 + [2e-3] * 4)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PARABENCH_DB", raising=False)
    assert main(["history", "--asv-results", str(tmp_path / "res")]) == 0
    assert "x2.000 slower" in capsys.readouterr().out
    assert main(["history"]) == 2
    assert "no history to read" in capsys.readouterr().err
    assert main(["history", "--asv-results", str(tmp_path / "nope")]) == 2


def test_noisy_steps_are_found_at_the_right_commit_across_seeds():
    hits = 0
    for seed in range(50):
        rng = np.random.default_rng(seed)
        v = np.r_[np.full(10, 1.0), np.full(10, 1.25)] * rng.lognormal(0, 0.03, 20)
        cps = detect_change_points(_frame(v))
        hits += len(cps) == 1 and cps.commit.iloc[0] == "c010"
    assert hits >= 40  # asv's fit: 44 of 50 here


def test_short_regression_that_was_fixed():
    cps = detect_change_points(_frame([1.0] * 5 + [1.5] * 3 + [1.0] * 5))
    assert list(cps.commit) == ["c005", "c008"]


def test_commits_sharing_a_date_follow_git_order(tmp_path):
    import subprocess

    repo = tmp_path / "repo"
    repo.mkdir()
    run = lambda *a: subprocess.run(["git", *a], cwd=repo, check=True, capture_output=True,  # noqa: E731
                                    text=True).stdout.strip()
    run("init", "-q")
    shas = []
    for i in range(8):
        (repo / "f").write_text(str(i))
        run("add", "f")
        run("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "-m", str(i))
        shas.append(run("rev-parse", "HEAD"))
    res = tmp_path / "res"
    (res / "vm").mkdir(parents=True)
    (res / "benchmarks.json").write_text(json.dumps({"b.track": {"unit": "seconds"}}))
    for i, c in enumerate(shas):  # one date for all; hashes sort randomly
        (res / "vm" / f"{c[:8]}-env.json").write_text(json.dumps({
            "commit_hash": c, "date": 1700000000000, "params": {"machine": "vm"},
            "result_columns": ["result", "params"],
            "results": {"b.track": [[1.0 if i < 4 else 2.0], []]}}))
    df = load_asv_history(res, repo=repo)
    assert list(df.commit) == shas
    assert detect_change_points(df).commit.tolist() == [shas[4]]


def test_history_of_empty_sources_is_one_line(tmp_path, capsys):
    from parabench.cli import main
    from parabench.store import Store

    db = tmp_path / "empty.db"
    Store(db).close()
    (tmp_path / "asv").mkdir()
    for extra in ([], ["--asv-results", str(tmp_path / "asv")]):
        assert main(["history", "--db", str(db), *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "no values to follow" in err[0]


def test_only_the_first_parent_line_in_git_order(tmp_path):
    """A side branch's results (asv continuous on a pull request) never enter the
    history, even when its commits are dated between the branch's own."""
    import subprocess

    repo = tmp_path / "repo"
    repo.mkdir()
    run = lambda *a: subprocess.run(["git", *a], cwd=repo, check=True, capture_output=True,  # noqa: E731
                                    text=True).stdout.strip()
    git_id = ["-c", "user.email=t@t", "-c", "user.name=t"]
    run("init", "-q", "-b", "main")
    line = []
    for i in range(4):
        (repo / "f").write_text(str(i))
        run("add", "f")
        run(*git_id, "commit", "-q", "-m", str(i))
        line.append(run("rev-parse", "HEAD"))
    run("checkout", "-q", "-b", "side")
    (repo / "g").write_text("side")
    run("add", "g")
    run(*git_id, "commit", "-q", "-m", "side")
    side = run("rev-parse", "HEAD")
    run("checkout", "-q", "main")
    run(*git_id, "merge", "-q", "--no-ff", "-m", "merge", "side")
    line.append(run("rev-parse", "HEAD"))
    res = tmp_path / "res"
    (res / "vm").mkdir(parents=True)
    (res / "benchmarks.json").write_text(json.dumps({"b.track": {"unit": "seconds"}}))
    values = dict(zip(line, [1.0, 1.0, 1.0, 1.0, 1.0], strict=True)) | {side: 9.0}
    for i, (c, v) in enumerate(reversed(list(values.items()))):  # dates: newest first
        (res / "vm" / f"{c[:8]}-env.json").write_text(json.dumps({
            "commit_hash": c, "date": 1700000000000 + i, "params": {"machine": "vm"},
            "result_columns": ["result", "params"], "results": {"b.track": [[v], []]}}))
    df = load_asv_history(res, repo=repo, branch="main")
    assert list(df.commit) == line and list(df.order) == [0, 1, 2, 3, 4]
    assert df.attrs["off_line"] == 1
    assert detect_change_points(df).empty  # the side branch's 9.0 is not a step
