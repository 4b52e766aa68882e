"""scripts/bench_paraformer.py: interleaved rows, written as measured, failures kept as rows."""
from __future__ import annotations

import csv
import importlib.util

import pytest
from conftest import ROOT

TINY = ["--widths", "tiny", "--img-size", "32", "--ks", "1,2", "--batches", "2", "--rounds", "2",
        "--round-time", "0.01", "--threads", "1"]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_paraformer",
                                                  ROOT / "scripts" / "bench_paraformer.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


#: What runs by default on this CPU: fused-2pass is CUDA's A/B of the one-pass kernel.
CPU_EXECS = ("loop", "fused", "fused-all", "least-work", "twin", "vit")


def _rows(path):
    with path.open() as f:
        return list(csv.DictReader(f))


def test_every_execution_is_measured_interleaved_with_ratios(bench, tmp_path):
    out = tmp_path / "rows.csv"
    assert bench.main(TINY + ["--out", str(out)]) == 0
    rows = _rows(out)
    assert [(r["K"], r["exec"]) for r in rows] == [
        (k, e) for k in ("1", "2") for e in CPU_EXECS]
    for r in rows:
        assert r["status"] == "ok" and float(r["ms"]) > 0 and r["rounds"] == "2", r
    fused = next(r for r in rows if r["exec"] == "fused" and r["K"] == "2")
    assert float(fused["ratio_vit_min"]) <= float(fused["ratio_vit_median"]) <= float(
        fused["ratio_vit_max"])
    assert float(fused["max_rel_err_vs_loop"]) < 1e-5
    assert (fused["layers"], fused["critical_path"]) == ("2", "1")
    twin = next(r for r in rows if r["exec"] == "twin" and r["K"] == "2")
    assert (twin["layers"], twin["critical_path"]) == ("2", "2")
    least = next(r for r in rows if r["exec"] == "least-work" and r["K"] == "2")
    assert float(least["mflop_per_image"]) < float(fused["mflop_per_image"])
    # every row says how loaded the machine was; fused rows how their branches were grouped
    for r in rows:
        assert r["busy"] in ("True", "False") and float(r["load_1m_after"]) >= 0, r
        assert float(r["other_cpu_s"]) >= 0
    assert fused["fused_group"] == "2" and int(fused["fused_budget_bytes"]) > 0
    assert next(r for r in rows if r["exec"] == "loop")["fused_group"] == ""


def test_groups_follow_the_cache_and_busy_figures_are_marked(bench, tmp_path, monkeypatch,
                                                             capsys):
    """A cache that holds no branch makes fused run one branch at a time (same output as
    the loop), fused-all keeps all K; a load above threads + 0.5 marks every row BUSY."""
    import paraformer.groups as groups

    from parabench.measure import load

    monkeypatch.setattr(groups, "CACHE_BYTES", 1)
    monkeypatch.setattr(load, "_load_1m", lambda: 7.5)
    out = tmp_path / "rows.csv"
    args = TINY + ["--ks", "3", "--execs", "loop,fused,fused-all", "--out", str(out)]
    assert bench.main(args) == 0
    rows = {r["exec"]: r for r in _rows(out)}
    assert rows["fused"]["fused_group"] == "1" and rows["fused-all"]["fused_group"] == "3"
    assert float(rows["fused"]["max_rel_err_vs_loop"]) < 1e-5
    assert float(rows["fused"]["ratio_fused-all_median"]) > 0
    assert all(r["busy"] == "True" for r in rows.values())
    printed = capsys.readouterr().out
    table = [ln for ln in printed.splitlines() if ln.startswith("|")]
    assert "conditions" in table[0] and " G " in table[0]
    assert all("load 7.50->7.50" in ln and "BUSY" in ln for ln in table[2:])
    assert "over the whole run: load 7.50->7.50" in printed and "last-level cache" in printed
    assert bench.main(args) == 0  # appends to the same file: same columns
    with out.open("w") as f:
        f.write("device,ms\n")
    with pytest.raises(SystemExit, match="not this version's"):
        bench.main(args)


def test_a_failing_execution_becomes_an_error_row_and_the_sweep_goes_on(bench, tmp_path,
                                                                      monkeypatch, capsys):
    out = tmp_path / "rows.csv"
    real = bench.build
    written = []

    def build(exec_, width, K, *a, **kw):
        if exec_ == "vit" and K == 1:
            raise RuntimeError("planted failure\nsecond line")
        written.append(len(_rows(out)) if out.exists() else 0)
        return real(exec_, width, K, *a, **kw)

    monkeypatch.setattr(bench, "build", build)
    assert bench.main(TINY + ["--out", str(out)]) == 1
    rows = _rows(out)
    assert len(rows) == 2 * len(CPU_EXECS)
    bad = [r for r in rows if r["status"] != "ok"]
    assert [(b["exec"], b["K"]) for b in bad] == [("vit", "1")]
    assert bad[0]["error"] == "RuntimeError: planted failure" and bad[0]["ms"] == ""
    # the K=1 rows were on disk before K=2 was built
    assert max(written) == len(CPU_EXECS)
    assert "1 rows failed: vit K1 b2: RuntimeError: planted failure" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--out", "rows.txt"], "use a .csv or .jsonl file"),
    (["--execs", "fused,parallel"], "unknown ['parallel']"),
    (["--ks", "0,4"], "expected integers >= 1"),
    (["--rounds", "1"], "--rounds must be at least 2"),
])
def test_bad_arguments_exit_with_one_line(bench, capsys, args, message):
    with pytest.raises(SystemExit) as exc:
        bench.parse_args(args)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err.strip().splitlines()[-1] and "Traceback" not in err


def test_traffic_table_shows_fewer_bytes_after(bench, capsys):
    assert bench.main(["--traffic", "--ks", "12", "--batches", "8"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if "first (shared)" in ln)
    after, cuda = (float(c) for c in line.strip("| ").split("|")[-2:])
    assert cuda < after < 1.0  # CUDA's one-pass bias + GELU moves fewer bytes still
    kernels = line.split("|")[5].split("/")
    assert int(kernels[2]) == int(kernels[1]) - 1  # bias copy + GEMM + GELU -> GEMM + one pass


def test_fused_2pass_switches_the_kernel_off_for_its_calls_only(bench, tmp_path, monkeypatch):
    """On request (CUDA's A/B of fc1's one-pass kernel) fused-2pass runs fused with the
    kernel switched off; fused runs with it on, and the switch is on again afterwards."""
    import paraformer.epilogue as ep
    import paraformer.fused as fused

    seen = []
    real = ep.one_pass_available
    monkeypatch.setattr(fused, "one_pass_available",
                        lambda *t: seen.append(ep.USE_KERNEL) or real(*t))
    out = tmp_path / "rows.csv"
    assert bench.main(TINY + ["--execs", "fused,fused-2pass", "--ks", "2", "--out", str(out)]) == 0
    rows = {r["exec"]: r for r in _rows(out)}
    assert rows.keys() == {"fused", "fused-2pass"}
    assert float(rows["fused"]["ratio_fused-2pass_median"]) > 0
    assert True in seen and False in seen and ep.USE_KERNEL is True
