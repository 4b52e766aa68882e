"""How a point is prepared for the GPU, checked on the CPU where the CPU can show it:
the peak-memory window covers capture and compilation, compile points never run eager
while their row says compile, the paper preset builds each model once, no family
trains with dropout it was not asked for."""
import pytest
import torch

from parabench import Store, Sweep, load
from parabench import workloads as wl
from parabench.config import Point, preset
from parabench.measure import prepare
from parabench.measure.point import measure_point
from parabench.runner import run_sweep

TINY = dict(device="cpu", width="tiny", img_size=32, warmup=1, min_samples=3, min_time_s=0.0)


def _quiet_run(sweep, db):
    with Store(db) as store:
        rid = run_sweep(sweep, store, progress=False, log=lambda m: None)
    return load(db, rid)


def test_peak_memory_window_includes_what_making_the_step_allocates(monkeypatch):
    """A CUDA graph allocates every activation while it is captured, inside make_step;
    here a step maker that touches 256 MiB stands in for the capture."""
    real = wl.make_step
    touched = 256 << 20

    def capturing_make_step(model, x, **kw):
        scratch = torch.ones(touched, dtype=torch.uint8)  # written: resident, not just mapped
        del scratch
        return real(model, x, **kw)

    sweep = Sweep(families=("vit",), depths=(1,), **TINY)
    point = Point("vit", 1, 1, "float32", "eager", "infer")
    plain = measure_point(point, sweep)
    monkeypatch.setattr(wl, "make_step", capturing_make_step)
    capturing = measure_point(point, sweep)
    assert plain.status == capturing.status == "ok"
    if plain.extra["rss_peak_is_lifetime"]:
        pytest.skip("this kernel does not let a process reset its peak RSS")
    assert capturing.peak_rss - plain.peak_rss > 0.8 * touched


@pytest.fixture
def fast_compile(monkeypatch):
    """Dynamo's tracing, guards and recompile limit are what is under test; inductor's
    code generation is not, and takes tens of seconds per point on 2 cores."""
    monkeypatch.setattr(wl, "COMPILE_BACKEND", "eager")
    limit = torch._dynamo.config.recompile_limit
    torch._dynamo.config.recompile_limit = 1  # the default 8 would need 9 points to show
    yield
    torch._dynamo.config.recompile_limit = limit
    torch._dynamo.reset()


def test_compile_points_past_the_recompile_limit_still_compile(tmp_path, fast_compile):
    # every Para-Former and ViT of a family shares its forward code objects: without a
    # reset per point, the second depth is a recompile and (limit 1) would run eagerly
    sweep = Sweep(families=("vit", "paraformer-fused"), depths=(1, 2, 3), modes=("compile",),
                  **TINY)
    df = _quiet_run(sweep, tmp_path / "c.db")
    assert len(df) == 6 and set(df.status) == {"ok"}, df[["key", "status", "reason"]]
    assert (df.extra.map(lambda e: e["compiled_graphs"]) >= 1).all()
    assert set(df.extra.map(lambda e: e["compile_backend"])) == {"eager"}
    # Para-Former's one break is the eager refresh of its folded weights before the graph
    breaks = df.groupby("family").extra.agg(lambda e: sorted({x["graph_breaks"] for x in e}))
    assert breaks.to_dict() == {"vit": [0], "paraformer-fused": [1]}


def test_compile_point_that_compiled_nothing_is_an_error_row(tmp_path, fast_compile, monkeypatch):
    monkeypatch.setattr(torch, "compile", lambda model, **kw: model)  # runs eagerly
    sweep = Sweep(families=("vit",), depths=(1,), modes=("eager", "compile"), **TINY)
    df = _quiet_run(sweep, tmp_path / "c.db").set_index("mode")
    assert df.loc["eager", "status"] == "ok"
    assert df.loc["compile", "status"] == "error"
    assert "compiled no graph" in df.loc["compile", "reason"]
    assert list(df.loc["compile", "samples_ms"]) == []  # eager timings never stored as compile


def test_paper_preset_builds_each_family_and_depth_once(monkeypatch):
    """On CUDA a point copies a kept CPU model; the plan's order lets one kept model
    serve every point of a (family, depth)."""
    import parabench.catalog as catalog

    built = []
    monkeypatch.setattr(catalog, "build", lambda family, depth, **kw: built.append((family, depth)))
    prepare._cpu_template.cache_clear()
    sweep = preset("paper")
    for p in sweep.points():
        prepare._cpu_template(p.family, p.depth, sweep.width, sweep.img_size)
    prepare._cpu_template.cache_clear()
    pairs = {(p.family, p.depth) for p in sweep.points()}
    assert len(sweep.points()) > 3 * len(pairs)
    assert sorted(built) == sorted(pairs)  # each once, none twice


def test_cpu_points_keep_no_model_between_points():
    prepare._cpu_template("vit", 1, "tiny", 32)
    sweep = Sweep(families=("vit",), depths=(2,), **TINY)
    with prepare.prepared(Point("vit", 2, 1, "float32", "eager", "infer"), sweep):
        assert prepare._cpu_template.cache_info().currsize == 0


def test_a_sweep_leaves_the_collector_only_what_points_make(tmp_path):
    """Before the first point the heap is frozen: per-point collections then scan the
    points' objects, not the hundreds of thousands torch and friends keep alive."""
    import gc

    gc.unfreeze()
    try:
        _quiet_run(Sweep(families=("vit",), depths=(1,), **TINY), tmp_path / "f.db")
        assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()
