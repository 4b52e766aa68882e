"""Load conditions of a measurement (parabench.measure.load): the rule, the arithmetic,
and a real spinning process showing up as other processes' CPU time."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import time

import pandas as pd
import pytest

from parabench.measure import load


def test_busy_rule_is_others_cpu_over_half_a_core_else_the_load_average():
    # what other processes used during the window decides, whatever the load average
    assert load.busy(4.0, 2, other_cpu_s=0.2, window_s=2.0) is False
    assert load.busy(1.0, 2, other_cpu_s=1.2, window_s=2.0) is True
    assert load.busy(None, 2, other_cpu_s=0.0, window_s=1.0) is False
    # without it, the 1-minute load average above threads + 0.5
    assert load.busy(2.6, 2, other_cpu_s=None, window_s=2.0) is True
    assert load.busy(2.4, 2) is False
    # from 0.2 s on the CPU time decides: a quiet 0.3 s window beside a load of 4.5
    assert load.busy(4.5, 2, other_cpu_s=0.03, window_s=0.3) is False
    assert load.busy(1.0, 2, other_cpu_s=0.2, window_s=0.3) is True
    # a window of a few clock ticks cannot tell: the load average decides
    assert load.busy(1.0, 2, other_cpu_s=0.01, window_s=0.015) is False
    assert load.busy(3.0, 2, other_cpu_s=0.0, window_s=0.015) is True
    assert load.busy(2.6, 2) is True
    assert load.busy(6.0, 2) is True
    assert load.busy(1.6, 1) is True
    assert load.busy(None, 2) is None


def test_other_cpu_is_the_machine_minus_this_process(monkeypatch):
    samples = iter([(1.0, 100.0, 10.0, 0.0), (3.1, 104.5, 11.5, 2.0)])
    monkeypatch.setattr(load.LoadWindow, "_sample", lambda self: next(samples))
    with load.LoadWindow(2) as w:
        pass
    r = w.result()
    assert r["other_cpu_s"] == 3.0  # 4.5 s busy on the machine, 1.5 of them ours
    assert r["load_1m_before"] == 1.0 and r["load_1m_after"] == 3.1
    assert r["busy"] is True and r["load_threads"] == 2 and r["load_window_s"] == 2.0
    assert "BUSY" in load.load_text(r) and "load 1.00->3.10" in load.load_text(r)


@pytest.mark.skipif(not os.path.exists("/proc/stat") or not hasattr(os, "waitid"),
                    reason="needs Linux /proc/stat")
def test_a_spinning_child_counts_as_other_cpu_time():
    """A child that burns CPU inside the window (not yet reaped, so not our own time)
    appears in other_cpu_s: at least the CPU time the child reports for itself."""
    spin = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.4: pass"
    with load.LoadWindow(1) as w:
        child = subprocess.Popen([sys.executable, "-c", spin])
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped
    _, _, usage = os.wait4(child.pid, 0)
    child.returncode = 0
    child_cpu = usage.ru_utime + usage.ru_stime
    r = w.result()
    assert child_cpu >= 0.4
    assert r["other_cpu_s"] >= 0.9 * child_cpu - 0.05, (r, child_cpu)


def test_own_cpu_time_is_not_other():
    """Two threads of this process keep every core it can get busy (hashing releases the
    GIL): none of that is other processes'. Whatever others did fits in the cores' time
    this process left, however loaded the machine; counting our own time as theirs would
    overflow it by all of it."""
    data = bytes(8 << 20)

    def spin():
        end = time.monotonic() + 0.4
        while time.monotonic() < end:
            hashlib.sha256(data).digest()

    threads = [threading.Thread(target=spin) for _ in range(2)]
    own = time.process_time()
    with load.LoadWindow(1) as w:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    own = time.process_time() - own
    r = w.result()
    cores = os.cpu_count() or 1
    if r["other_cpu_s"] is not None:
        assert own >= 0.3, own
        assert r["other_cpu_s"] <= r["load_window_s"] * cores - own + 0.1, (r, own)


def _tick_windows(others_s: list[float], window_s: float) -> list[dict]:
    """Windows as the clock-tick counters report them: the machine's busy time and our
    own read in whole 10 ms ticks, so a quiet window reads a tick either side of zero."""
    out, machine, own, now = [], 0.0, 0.0, 0.0
    for other in others_s:
        samples = iter([(4.5, machine, own, now),
                        (4.5, machine + 2 * window_s + other, own + 2 * window_s,
                         now + window_s)])
        machine, own, now = machine + 2 * window_s + other, own + 2 * window_s, now + window_s
        w = load.LoadWindow(2)
        w._sample = samples.__next__
        with w:
            pass
        out.append(w.result())
    return out


def test_quiet_turns_summed_gather_no_phantom_cpu():
    """An interleaved record sums 21 turns of 20 ms. On a quiet machine each reads +1,
    0 or -1 tick of others' CPU; clipping each at zero summed to a phantom 0.07 s, and
    the 0.42 s window fell back to the run's own load average of 4.5: busy. Signed, the
    sum is the ticks' net error, and a record of real work beside the turns still is."""
    from parabench.regress.interleave import _add_load

    quiet, loaded = {}, {}
    for turn in _tick_windows([0.01, -0.01, 0.0] * 7, 0.02):
        _add_load(quiet, turn)
    assert abs(quiet["other_cpu_s"]) < 0.02 and quiet["load_window_s"] == pytest.approx(0.42)
    assert quiet["busy"] is False and load.judge(quiet) is False
    for turn in _tick_windows([0.02, 0.01] * 10 + [0.02], 0.02):  # 0.75 of a core
        _add_load(loaded, turn)
    assert loaded["busy"] is True and loaded["other_cpu_s"] == pytest.approx(0.32)


def test_text_shows_a_tick_below_zero_as_no_cpu():
    assert load.shown_cpu_s(-0.01) == 0.0 and load.shown_cpu_s(None) is None
    assert "others 0.0 s" in load.load_text({"load_1m_before": 1.0, "load_1m_after": 1.0,
                                             "other_cpu_s": -0.02})


def test_judge_reads_a_record_as_the_rule_would_its_window():
    """An interleaved record sums its turns: arms that built their models at once left a
    load average of 4 that the turns (0.1 core of others) did not feel; a record from
    before other_cpu_s was kept is judged on its load average, or keeps its flag."""
    quiet_turns = {"load_1m_before": 4.2, "load_1m_after": 2.1, "other_cpu_s": 0.3,
                   "load_window_s": 3.0, "load_threads": 2, "busy": True}
    assert load.judge(quiet_turns) is False
    assert load.judge({**quiet_turns, "other_cpu_s": 2.4}) is True
    assert load.judge({"load_1m_before": 3.0, "load_1m_after": 1.0, "load_threads": 2}) is True
    assert load.judge({"busy": True}) is True and load.judge({}) is None


def test_load_columns_come_from_extra():
    df = pd.DataFrame({"extra": [{"load_1m_before": 1.2, "load_1m_after": 3.4,
                                  "other_cpu_s": 5.0, "load_window_s": 4.0, "busy": True},
                                 {}, None]})
    out = load.load_columns(df)
    assert out["load_1m"].tolist()[0] == 3.4 and out["busy"].tolist()[0] is True
    assert pd.isna(out["load_1m"].tolist()[1]) and out["busy"].tolist()[2] is None
