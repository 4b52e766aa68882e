"""parabench.analysis on data whose answer is known: slopes, intervals, verdicts, ratios."""
import math

import numpy as np
import pandas as pd
import pytest

from parabench import analysis
from parabench.analysis import depth_fits, fit_depth, flatness_end, parallel_over_serial

DEPTHS = [1, 2, 4, 8, 12, 24, 48]


def _samples(a, b, rng, n=40, rel_noise=0.03, depths=DEPTHS):
    return [list((a + b * d) * rng.lognormal(0.0, rel_noise, n)) for d in depths]


def test_fit_recovers_known_slope_and_ci_contains_it():
    rng = np.random.default_rng(1)
    fit = fit_depth(DEPTHS, _samples(2.0, 0.5, rng))
    assert fit["b_ms_per_layer"] == pytest.approx(0.5, rel=0.03)
    assert fit["a_ms"] == pytest.approx(2.0, rel=0.1)
    assert fit["b_lo"] < 0.5 < fit["b_hi"]
    assert fit["b_hi"] - fit["b_lo"] < 0.05  # informative, not vacuous
    assert fit["verdict"] == "linear"
    assert fit["n_depths"] == 7 and (fit["depth_min"], fit["depth_max"]) == (1, 48)


def test_ci_coverage_is_at_least_nominal():
    """Over 40 independent noisy data sets the 95% interval misses the true slope rarely
    (the envelope of two intervals is conservative by design)."""
    rng = np.random.default_rng(7)
    hits = 0
    for i in range(40):
        fit = fit_depth(DEPTHS, _samples(1.0, 0.05, rng, n=20, rel_noise=0.05),
                        seed=i, n_boot=200)
        hits += fit["b_lo"] <= 0.05 <= fit["b_hi"]
    assert hits >= 36


@pytest.mark.parametrize(
    "a, b, expected",
    [
        (1.0, 0.001, "flat"),  # x1.05 over 1..48
        (1.0, 0.0, "flat"),  # pure noise around a constant
        (0.1, 0.2, "linear"),  # close to proportional to depth
        (1.0, 0.05, "sub-linear"),  # x3.2 over 1..48: grows, far less than depth
    ],
)
def test_verdicts_on_planted_curves(a, b, expected):
    fit = fit_depth(DEPTHS, _samples(a, b, np.random.default_rng(3)))
    assert fit["verdict"] == expected, fit["why"]


def test_slope_whose_ci_includes_zero_is_inconclusive_not_flat():
    # Huge noise, small trend: elasticity alone would say "grows"; the CI says "can't tell",
    # and "can't tell" must not count as evidence for the claim (flat).
    samples = [[0.2, 0.6, 1.0, 1.4, 1.8], [0.4, 0.9, 1.3, 1.7, 2.2]]  # medians 1.0, 1.3
    fit = fit_depth([1, 2], samples)
    assert fit["elasticity"] > analysis.FLAT_ELASTICITY
    assert fit["b_lo"] <= 0 <= fit["b_hi"]
    assert fit["verdict"] == "inconclusive" and "includes 0" in fit["why"]


def test_fit_edge_cases():
    one = fit_depth([4, 4], [[1.0, 1.1], [1.05]])
    assert one["verdict"] == "not fitted" and one["n_depths"] == 1
    assert fit_depth([], [])["verdict"] == "not fitted"
    # medians only (no raw samples), two depths: a slope, no interval, a verdict
    two = fit_depth([1, 8], [[1.0], [8.0]])
    assert two["b_ms_per_layer"] == pytest.approx(1.0)
    assert math.isnan(two["b_lo"]) and two["verdict"] == "linear"
    # NaN samples are ignored rather than poisoning the fit
    nan = fit_depth([1, 2, 4], [[1.0, float("nan")], [1.0], [1.0]])
    assert nan["verdict"] == "flat"


def _frame(curves, batches=(1,), depths=(1, 2, 4, 8, 16), n=15, seed=0):
    """Records-like frame; `curves[(family, batch)] = (a, b)` in ms."""
    rng = np.random.default_rng(seed)
    rows = []
    for (fam, batch), (a, b) in curves.items():
        for d in depths:
            s = list((a + b * d) * rng.lognormal(0, 0.02, n))
            rows.append(dict(family=fam, depth=d, batch=batch, dtype="float32", mode="eager",
                             workload="infer", device="cpu", width="tiny", status="ok",
                             samples_ms=s, median_ms=float(np.median(s)), flops=1e9 * d,
                             throughput=None, peak_rss=2**30, peak_mem_allocated=None))
    return pd.DataFrame(rows)


def test_depth_fits_and_where_flatness_ends():
    df = _frame({
        ("paraformer-fused", 1): (1.0, 0.001), ("paraformer-fused", 8): (1.0, 0.002),
        ("paraformer-fused", 64): (0.2, 0.3),
        ("vit", 1): (0.1, 0.1), ("vit", 8): (0.1, 0.2), ("vit", 64): (0.1, 0.5),
        ("resnet", 1): (1.0, 0.0), ("resnet", 8): (1.0, 0.001), ("resnet", 64): (2.0, 0.0),
    })
    df.loc[len(df)] = df.iloc[0].to_dict() | {"status": "oom", "median_ms": None, "depth": 99}
    fits = depth_fits(df)
    assert len(fits) == 9 and not (fits["depth_max"] == 99).any()  # oom row ignored
    ends = flatness_end(fits).set_index("family")
    assert ends.loc["paraformer-fused", "flat_up_to"] == 8
    assert ends.loc["paraformer-fused", "ends_at"] == 64
    assert ends.loc["vit", "flat_up_to"] is None and ends.loc["vit", "ends_at"] == 1
    assert ends.loc["resnet", "ends_at"] is None
    assert ends.loc["resnet", "batches"] == [1, 8, 64]


def test_parallel_over_serial_at_equal_depth():
    df = _frame({("paraformer-fused", 1): (1.0, 0.0), ("vit", 1): (0.0, 1.0),
                 ("resnet", 1): (1.0, 1.0)}, depths=(1, 4))
    r = parallel_over_serial(df).set_index("depth")
    assert list(r["family"].unique()) == ["paraformer-fused"]
    assert r.loc[4, "ratio"] == pytest.approx(0.25, rel=0.05)
    assert r.loc[1, "ratio"] == pytest.approx(1.0, rel=0.05)
    assert (r["flops_ratio"] == 1.0).all()


def test_with_derived_fills_gaps():
    df = _frame({("vit", 4): (0.0, 1.0)}, depths=(2,))
    df["workload"] = "infer"
    out = analysis.with_derived(df)
    med = df["median_ms"].iloc[0]
    assert out["throughput"].iloc[0] == pytest.approx(4 / (med / 1e3))
    assert out["achieved_tflops"].iloc[0] == pytest.approx(2e9 * 4 / (med / 1e3) / 1e12)
    assert out["peak_mem_mib"].iloc[0] == 1024 and out["peak_mem_kind"].iloc[0] == "RSS"
    train = analysis.with_derived(df.assign(workload="train"))
    assert train["achieved_tflops"].isna().all()  # forward FLOPs don't describe a step


def test_empty_inputs_give_empty_frames():
    empty = _frame({}).reindex(columns=["family", "depth", "batch", "dtype", "mode",
                                        "workload", "device", "width", "status",
                                        "median_ms", "samples_ms", "flops"])
    assert depth_fits(empty).empty and "verdict" in depth_fits(empty)
    assert flatness_end(depth_fits(empty)).empty
    assert parallel_over_serial(empty).empty
    assert analysis.with_derived(empty).empty
