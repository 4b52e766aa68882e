"""parabench.regress.stats and the verdict rule: verdicts on synthetic latency samples."""
import math

import numpy as np
import pytest

from parabench.regress import stats, verdicts


def _lat(rng, n=60, median=2.0, spread=0.04):
    """Skewed, latency-like samples: lognormal around `median` plus rare stalls."""
    x = median * rng.lognormal(0.0, spread, n)
    stalls = rng.random(n) < 0.03
    x[stalls] *= 1.5
    return x


def test_thirty_percent_slowdown_is_flagged():
    rng = np.random.default_rng(1)
    a, b = _lat(rng), 1.3 * _lat(rng)
    c = stats.compare_samples(a, b)
    assert c.verdict == "slower"
    assert c.p_value < 1e-3  # 10 units a side (blocks of 6): few units, modest p
    assert c.ci_low < 1.3 < c.ci_high
    assert 1.2 < c.ratio < 1.4


def test_speedup_is_faster_and_symmetric():
    rng = np.random.default_rng(2)
    a, b = _lat(rng), _lat(rng) / 1.3
    c = stats.compare_samples(a, b)
    assert c.verdict == "faster"
    assert c.ci_high < 1


def test_identical_distributions_are_not_flagged_across_seeds():
    verdicts = []
    for seed in range(300):
        rng = np.random.default_rng(seed)
        verdicts.append(stats.compare_samples(_lat(rng), _lat(rng), n_boot=400).verdict)
    assert "slower" not in verdicts and "faster" not in verdicts
    # the test itself rejects rarely (alpha = 1%), the threshold catches the rest
    assert verdicts.count("unchanged") == 300


def test_significant_but_below_threshold_is_unchanged():
    rng = np.random.default_rng(3)
    a, b = _lat(rng, n=2000, spread=0.01), 1.03 * _lat(rng, n=2000, spread=0.01)
    c = stats.compare_samples(a, b, threshold=0.10)
    assert c.p_value < 1e-6  # the test sees the 3%...
    assert c.verdict == "unchanged"  # ...but it is below the minimum effect
    assert stats.compare_samples(a, b, threshold=0.01).verdict == "slower"


def test_deterministic():
    rng = np.random.default_rng(4)
    a, b = _lat(rng), _lat(rng)
    assert stats.compare_samples(a, b) == stats.compare_samples(list(a), list(b))


def test_too_few_samples_is_inconclusive():
    c = stats.compare_samples([1.0, 1.1], [2.0, 2.1])
    assert c.verdict == "inconclusive"
    assert c.p_value is None
    assert c.ratio == pytest.approx(2.05 / 1.05)


def test_empty_and_constant_samples():
    c = stats.compare_samples([], [1.0] * 10)
    assert c.verdict == "inconclusive" and math.isnan(c.ratio)
    c = stats.compare_samples([1.0] * 10, [1.0] * 10)
    assert c.verdict == "unchanged" and c.ratio == 1.0 and c.p_value == 1.0


def test_summaries_fallback():
    slower = stats.compare_summaries(1.0, (0.98, 1.02), 1.5, (1.45, 1.55))
    assert slower.verdict == "slower" and slower.p_value is None
    assert slower.ci_low == pytest.approx(1.45 / 1.02)
    overlap = stats.compare_summaries(1.0, (0.8, 1.2), 1.15, (0.9, 1.4))
    assert overlap.verdict == "unchanged"
    assert stats.compare_summaries(1.0, None, 2.0, None).verdict == "inconclusive"


def test_verdict_rule_needs_all_three():
    assert verdicts.verdict(1.5, 1.2, 1.8, 0.001) == "slower"
    assert verdicts.verdict(1.5, 1.2, 1.8, 0.2) == "unchanged"  # not significant
    assert verdicts.verdict(1.5, 0.9, 1.8, 0.001) == "unchanged"  # CI reaches 1
    assert verdicts.verdict(1.05, 1.01, 1.08, 0.001) == "unchanged"  # below threshold
    assert verdicts.verdict(0.5, 0.4, 0.6, 0.001) == "faster"


def _interleaved_noop(rng, rounds=30, turn=20):
    """A no-op interleaved comparison on a drifting machine: the speed moves from round
    to round (shared by A's and B's turns of that round) and from turn to turn (shared by
    the calls of one turn), plus per-call noise. Calls of a turn are therefore not
    independent witnesses."""
    speed = np.exp(np.cumsum(rng.normal(0, 0.03, rounds)))
    a, b = [], []
    for r in range(rounds):
        for side in (a, b):
            level = speed[r] * np.exp(rng.normal(0, 0.03))
            side.extend(level * rng.lognormal(0, 0.01, turn))
    return np.array(a), np.array(b)


def _coverage(make_noop, trials: int, **compare) -> float:
    """Share of no-op comparisons (seeds 0..trials-1) whose interval contains 1."""
    hits = 0
    for seed in range(trials):
        a, b = make_noop(np.random.default_rng(seed))
        c = stats.compare_samples(a, b, n_boot=300, **compare)
        hits += c.ci_low <= 1.0 <= c.ci_high
    return hits / trials


def test_turn_units_give_honest_coverage_where_raw_samples_do_not():
    turns = _coverage(_interleaved_noop, 120, block_a=20, block_b=20, paired=True)
    calls = _coverage(_interleaved_noop, 120, block_a=1, block_b=1)  # calls as units
    assert turns >= 0.90  # about 95% of intervals of a no-op contain 1
    assert calls <= 0.80  # the old per-call interval: overconfident (~66% here)


def test_paired_rounds_cancel_shared_drift():
    rng = np.random.default_rng(7)
    a, b = _interleaved_noop(rng)
    b = b * 1.3
    paired = stats.compare_samples(a, b, block_a=20, block_b=20, paired=True)
    unpaired = stats.compare_samples(a, b, block_a=20, block_b=20, paired=False)
    assert paired.verdict == "slower" and paired.ci_low < 1.3 < paired.ci_high
    assert (paired.ci_high - paired.ci_low) < (unpaired.ci_high - unpaired.ci_low)


def test_block_medians():
    assert list(stats.block_medians([1, 2, 3, 10, 20, 30], 3)) == [2, 20]
    assert list(stats.block_medians([1, 2, 3, 4], 3)) == [2]  # a 1-sample tail is dropped
    assert stats.block_medians(np.arange(100.0)).size == 10  # default: sqrt(n) per block


def _pairs_noop(rng, pairs=5, rounds=30, turn=6, process_sd=0.02):
    """A no-op measured by `pairs` pairs of processes one after the other: on top of
    the drift of `_interleaved_noop`, each process runs at a speed of its own for its
    whole life (its memory layout, its core), the bias one pair cannot show."""
    a, b = [], []
    for _ in range(pairs):
        pa, pb = _interleaved_noop(rng, rounds, turn)
        a.extend(pa * np.exp(rng.normal(0, process_sd)))
        b.extend(pb * np.exp(rng.normal(0, process_sd)))
    return np.array(a), np.array(b)


def test_intervals_over_process_pairs_cover_a_no_op_where_rounds_do_not():
    pairs = _coverage(_pairs_noop, 150, block_a=6, block_b=6, paired=True, group=30)
    rounds = _coverage(_pairs_noop, 150, block_a=6, block_b=6, paired=True)
    assert pairs >= 0.90  # about 95% of the no-op intervals contain 1
    assert rounds <= 0.60  # rounds as units: blind to the process bias


def test_process_pairs_still_flag_a_real_slowdown():
    covered = 0
    for seed in range(20):
        a, b = _pairs_noop(np.random.default_rng(seed))
        c = stats.compare_samples(a, b * 1.3, block_a=6, block_b=6, paired=True, group=30)
        assert c.verdict == "slower", (seed, c)
        covered += c.ci_low < 1.3 < c.ci_high
    assert covered >= 17  # the interval holds the true ratio about 95% of the time


def test_process_pairs_need_two_whole_groups():
    rng = np.random.default_rng(3)
    a, b = _pairs_noop(rng, pairs=1)
    one = stats.compare_samples(a, b, block_a=6, block_b=6, paired=True, group=30)
    plain = stats.compare_samples(a, b, block_a=6, block_b=6, paired=True)
    assert one == plain  # one pair: the interval over rounds, as before
    same = stats.compare_samples(np.ones(360), np.ones(360), block_a=6, block_b=6,
                                 paired=True, group=30)
    assert (same.ratio, same.ci_low, same.ci_high, same.p_value) == (1.0, 1.0, 1.0, 1.0)
