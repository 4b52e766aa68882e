"""`parabench compare`: exit codes, formats, environment checks, asv results, saving."""
import json
import subprocess

import numpy as np
import pytest

from parabench.cli import main
from parabench.records import Record
from parabench.store import Store

ENV = {"machine": "host/cpu-x", "torch": "2.14.1", "cuda": None, "threads": 1,
       "gpu": {"available": False}, "git": {"commit": "abc123", "dirty": False}}


def _samples(seed, factor=1.0, n=50, median=2.0):
    rng = np.random.default_rng(seed)
    return list(factor * median * rng.lognormal(0.0, 0.03, n))


def _add_run(store, factors, *, env=ENV, seed=0, status=None):
    """One run with a point per family; `factors` maps family -> slowdown factor."""
    rid = store.start_run(sweep={}, preset="test", command="test", env=env)
    for i, (fam, f) in enumerate(sorted(factors.items())):
        rec = Record(key=f"{fam}/d4/b1/float32/eager/infer", family=fam, depth=4, batch=1,
                     dtype="float32", mode="eager", workload="infer", device="cpu",
                     img_size=32, width="tiny", samples_ms=_samples(seed * 100 + i, f))
        if status and fam in status:
            rec.status, rec.reason, rec.samples_ms = status[fam], "boom", []
        store.add_record(rid, rec)
    store.finish_run(rid, "finished")
    return rid


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "r.db"
    with Store(path) as s:
        base = _add_run(s, {"vit": 1.0, "paraformer-fused": 1.0}, seed=1)
        same = _add_run(s, {"vit": 1.0, "paraformer-fused": 1.0}, seed=2)
        slow = _add_run(s, {"vit": 1.0, "paraformer-fused": 1.4}, seed=3)
    return path, base, same, slow


def _run(capsys, *argv):
    code = main(["compare", *map(str, argv)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_no_change_exits_0(db, capsys):
    path, base, same, _ = db
    code, out, _ = _run(capsys, base, same, "--db", path)
    assert code == 0
    assert "no regression" in out and "slower" not in out.split("summary:")[1]
    assert "measured : separate runs" in out


def test_slowdown_exits_1_and_names_the_benchmark(db, capsys):
    path, base, _, slow = db
    code, out, _ = _run(capsys, base, slow, "--db", path)
    assert code == 1
    line = next(ln for ln in out.splitlines() if ln.startswith("paraformer-fused/d4"))
    assert "slower" in line and "1.4" in line
    vit = next(ln for ln in out.splitlines() if ln.startswith("vit/d4"))
    assert "unchanged" in vit


def test_latest_aliases(db, capsys):
    path, *_ = db
    assert _run(capsys, "latest~2", "latest", "--db", path)[0] == 1
    assert _run(capsys, "latest~2", "latest~1", "--db", path)[0] == 0
    code, _, err = _run(capsys, "latest~7", "latest", "--db", path)
    assert code == 2 and "holds only 3 run" in err


def test_bad_input_exits_2(db, capsys, tmp_path):
    path, base, *_ = db
    code, _, err = _run(capsys, base, "no-such-run-or-ref-xyz", "--db", path)
    assert code == 2 and "neither" in err and len(err.strip().splitlines()) == 1
    code, _, err = _run(capsys, base, "latest", "--db", tmp_path / "missing.db")
    assert code == 2 and "no results database" in err
    with pytest.raises(SystemExit) as e:
        main(["compare", base, "latest", "--db", str(path), "--threshold", "abc"])
    assert e.value.code == 2


def test_formats(db, capsys):
    path, base, _, slow = db
    code, md, _ = _run(capsys, base, slow, "--db", path, "--format", "markdown")
    assert code == 1
    assert "performance regression" in md and "| benchmark |" in md and ":red_circle:" in md
    code, gh, _ = _run(capsys, base, slow, "--db", path, "--format", "github")
    assert code == 1
    warn = [ln for ln in gh.splitlines() if ln.startswith("::warning ")]
    assert len(warn) == 1 and "title=Performance regression%3A paraformer-fused" in warn[0]
    code, js, _ = _run(capsys, base, slow, "--db", path, "--format", "json")
    res = json.loads(js)
    assert code == 1 and res["regressed"] and res["mixed"] is False
    row = next(r for r in res["rows"] if r["family"] == "paraformer-fused")
    assert set(row) >= {"key", "family", "depth", "batch", "mode", "ratio", "ci_low",
                        "ci_high", "p_value", "verdict"}
    assert row["verdict"] == "slower" and row["ci_low"] > 1 and row["p_value"] < 0.01


def test_output_file_and_saved_comparison(db, capsys, tmp_path):
    path, base, _, slow = db
    out = tmp_path / "rep" / "cmp.md"
    code, text, _ = _run(capsys, base, slow, "--db", path, "--format", "markdown", "-o", out)
    assert code == 1 and out.read_text() == text
    for flag in ("--out", "--output"):  # the shared option, and the name it replaced
        other = tmp_path / f"cmp{flag}.json"
        code, text, _ = _run(capsys, base, slow, "--db", path, "--format", "json", flag, other)
        assert code == 1 and json.loads(other.read_text()) == json.loads(text)
    with Store(path, create=False) as s:
        last = s.latest_comparison()
    assert last["baseline"] == base and last["contender"] == slow
    assert last["result"]["threshold"] == pytest.approx(0.10)
    assert any(r["verdict"] == "slower" for r in last["result"]["rows"])


def test_mixed_machines_refused_unless_allowed(tmp_path, capsys):
    path = tmp_path / "m.db"
    with Store(path) as s:
        a = _add_run(s, {"vit": 1.0}, seed=1)
        b = _add_run(s, {"vit": 1.0}, seed=2,
                     env={**ENV, "machine": "other/H100", "torch": "2.11.0"})
    code, _, err = _run(capsys, a, b, "--db", path)
    assert code == 2 and "different machines" in err and "--allow-mixed" in err
    for fmt, needle in [("text", "MIXED ENVIRONMENTS"), ("markdown", "MIXED ENVIRONMENTS"),
                        ("github", "::warning title=parabench%3A mixed environments"),
                        ("json", '"mixed": true')]:
        code, out, _ = _run(capsys, a, b, "--db", path, "--allow-mixed", "--format", fmt)
        assert code == 0 and needle in out, fmt
    assert "torch: 2.14.1 vs 2.11.0" in out


def test_contender_failure_is_a_regression(tmp_path, capsys):
    path = tmp_path / "f.db"
    with Store(path) as s:
        a = _add_run(s, {"vit": 1.0, "resnet": 1.0}, seed=1)
        b = _add_run(s, {"vit": 1.0, "resnet": 1.0}, seed=2, status={"resnet": "oom"})
    code, out, _ = _run(capsys, a, b, "--db", path)
    assert code == 1 and "failed (contender oom: boom)" in out
    assert _run(capsys, b, a, "--db", path)[0] == 0  # fixed is not a regression


# -- asv results ---------------------------------------------------------------------------
def _git(repo, *args):
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True,
                          text=True).stdout.strip()


def _asv_result(commit, factor, seed, *, machine="vm", samples=True):
    rng = np.random.default_rng(seed)
    combos = [("'vit'", "'paraformer-fused'"), ("4",)]
    res, smp, lo, hi = [], [], [], []
    for fam_i in range(2):
        f = factor if fam_i == 1 else 1.0
        s = list(f * 2e-3 * rng.lognormal(0.0, 0.03, 40))
        med = float(np.median(s))
        res.append(med)
        smp.append(s)
        lo.append(med * 0.98)
        hi.append(med * 1.02)
    cols = ["result", "params", "version", "started_at", "duration", "stats_ci_99_a",
            "stats_ci_99_b", "stats_q_25", "stats_q_75", "stats_number", "stats_repeat",
            "samples", "profile"]
    row = [res, [list(c) for c in combos], "v1", 0, 1.0, lo, hi, lo, hi, [1, 1], [40, 40],
           smp if samples else None]
    return {
        "commit_hash": commit, "env_name": "virtualenv-py3.11", "date": 1700000000000,
        "params": {"machine": machine, "cpu": "cpu-x", "arch": "x86_64", "os": "Linux",
                   "python": "3.11"},
        "python": "3.11", "requirements": {}, "env_vars": {}, "result_columns": cols,
        "results": {
            "latency.TransformerLatency.track_latency": row,
            "cost.ModelCost.track_params": [[100 * factor], [["'vit:4'"]]],
        },
        "durations": {}, "version": 2,
    }


@pytest.fixture
def asv_repo(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "config", "user.email", "t@t")
    _git(repo, "config", "user.name", "t")
    commits = []
    for i in range(3):
        (repo / "f.txt").write_text(str(i))
        _git(repo, "add", "f.txt")
        _git(repo, "commit", "-q", "-m", f"c{i}")
        commits.append(_git(repo, "rev-parse", "HEAD"))
    results = tmp_path / "results"
    (results / "vm").mkdir(parents=True)
    (results / "vm" / "machine.json").write_text("{}")
    (results / "benchmarks.json").write_text(json.dumps({
        "latency.TransformerLatency.track_latency": {
            "unit": "seconds", "param_names": ["family", "depth"], "type": "track"},
        "cost.ModelCost.track_params": {"unit": "parameters", "param_names": ["model"],
                                        "type": "track"},
        "version": 2,
    }))
    for c, factor, seed in zip(commits, (1.0, 1.0, 1.5), (1, 2, 3), strict=True):
        (results / "vm" / f"{c[:8]}-virtualenv-py3.11.json").write_text(
            json.dumps(_asv_result(c, factor, seed)))
    return repo, results, commits


def test_asv_refs(asv_repo, capsys):
    repo, results, commits = asv_repo
    common = ["--asv-results", results, "--repo", repo]
    code, out, _ = _run(capsys, "HEAD~2", "HEAD~1", *common)
    assert code == 0
    code, out, _ = _run(capsys, "HEAD~1", "HEAD", *common, "--format", "json")
    res = json.loads(out)
    assert code == 1 and res["baseline"]["id"] == commits[1]
    rows = {r["key"]: r for r in res["rows"]}
    lat = rows["latency.TransformerLatency.track_latency(family=paraformer-fused, depth=4)"]
    assert lat["verdict"] == "slower" and lat["family"] == "paraformer-fused" and lat["depth"] == 4
    assert rows["cost.ModelCost.track_params(model=vit:4)"]["verdict"] == "changed"
    code, _, err = _run(capsys, "HEAD~1", "HEAD", "--asv-results", results, "--repo", repo,
                        "--machine", "nope")
    assert code == 2 and "no asv results" in err


def test_asv_without_samples_falls_back_to_intervals(asv_repo, capsys):
    repo, results, commits = asv_repo
    for c, factor in zip(commits[1:], (1.0, 1.5), strict=True):
        f = results / "vm" / f"{c[:8]}-virtualenv-py3.11.json"
        f.write_text(json.dumps(_asv_result(c, factor, 7, samples=False)))
    code, out, _ = _run(capsys, "HEAD~1", "HEAD", "--asv-results", results, "--repo", repo)
    assert code == 1 and "slower" in out


def test_asv_mixed_machines(asv_repo, capsys):
    repo, results, commits = asv_repo
    (results / "gpu").mkdir()
    f = results / "vm" / f"{commits[2][:8]}-virtualenv-py3.11.json"
    data = _asv_result(commits[2], 1.0, 5, machine="gpu")
    f.unlink()
    (results / "gpu" / f.name).write_text(json.dumps(data))
    code, _, err = _run(capsys, "HEAD~1", "HEAD", "--asv-results", results, "--repo", repo)
    assert code == 2 and "machine: vm vs gpu" in err
    code, out, _ = _run(capsys, "HEAD~1", "HEAD", "--asv-results", results, "--repo", repo,
                        "--allow-mixed")
    assert code == 0 and "MIXED" in out


@pytest.mark.parametrize("fmt, needle", [("text", "NOTHING IN COMMON"),
                                         ("markdown", "nothing in common"),
                                         ("github", "::warning title=parabench%3A nothing")])
def test_nothing_in_common_has_its_own_exit_code(tmp_path, capsys, fmt, needle):
    """A CI gate must not pass with "no regression" when nothing was compared."""
    path = tmp_path / "r.db"
    with Store(path) as s:
        a = _add_run(s, {"vit": 1.0}, seed=1)
        b = _add_run(s, {"paraformer-fused": 1.0}, seed=2)
    code, out, _ = _run(capsys, a, b, "--db", path, "--format", fmt)
    assert code == 3 and needle in out
