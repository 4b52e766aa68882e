"""The report's table of families timed in turns: ratios over the references with an
interval over sets of processes, and only for families that took turns with each other."""
import numpy as np

from parabench.config import Sweep
from parabench.records import Record
from parabench.report.sections.turns import turns_tables
from parabench.store import Store

SWEEP = Sweep(families=("paraformer-loop", "paraformer-fused", "vit"), depths=(4,))
TURN, ROUNDS, SETS = 5, 6, 2


def _record(family: str, ms: float, rng, *, family_arms=True, busy=False) -> Record:
    from parabench.config import Point

    rec = Record.for_point(Point(family, 4, 1, "float32", "eager", "infer"), SWEEP)
    rec.samples_ms = list(ms * rng.uniform(0.98, 1.02, TURN * ROUNDS * SETS))
    rec.extra = {"turn_size": TURN, "rounds_per_process": ROUNDS, "busy": busy,
                 "load_1m_before": 0.1, "load_1m_after": 2.0 if busy else 0.2,
                 "other_cpu_s": 1.5 if busy else 0.05, "load_window_s": 2.0, "load_threads": 1}
    if family_arms:
        rec.extra["family_arms"] = True
    if family == "paraformer-fused":
        rec.extra["fused_group"] = 4
    return rec


def _frame(tmp_path, **kw):
    rng = np.random.default_rng(0)
    with Store(tmp_path / "t.db") as store:
        rid = store.start_run(sweep=SWEEP.to_dict(), preset="t", command="t", env={})
        for fam, ms in (("paraformer-loop", 10.0), ("paraformer-fused", 8.0), ("vit", 12.0)):
            store.add_record(rid, _record(fam, ms, rng, **kw))
        store.finish_run(rid, "finished")
        from parabench.measure.load import load_columns

        return load_columns(store.records_frame([rid]))


def test_ratios_over_the_references_with_their_interval(tmp_path):
    (table,) = turns_tables(_frame(tmp_path))
    head = table.columns
    assert head[:2] == ["cell", "fused group"]
    row = dict(zip(head, table.rows[0], strict=True))
    assert row["fused group"] == "fused 4"
    # fused 8 ms over loop 10 ms and over ViT 12 ms; ViT over the loop; no reverse pair
    assert row["fused / loop"].startswith("0.80 [")
    assert row["fused / vit"].startswith("0.67 [")
    assert row["vit / loop"].startswith("1.20 [")
    assert "loop / vit" not in head
    lo, hi = (float(v) for v in row["fused / loop"].split("[")[1].rstrip("]").split("–"))
    assert lo <= 0.8 <= hi


def test_a_busy_cell_is_marked(tmp_path):
    (table,) = turns_tables(_frame(tmp_path, busy=True))
    assert table.rows[0][0].endswith("†")


def test_families_that_did_not_take_turns_with_each_other_get_no_table(tmp_path):
    """A side of `compare --interleave` has turn sizes too, but its families were
    measured at different times: their ratios would mean nothing."""
    assert turns_tables(_frame(tmp_path, family_arms=False)) == []
