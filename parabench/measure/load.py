"""How loaded the machine was while a figure was measured: every latency carries it.

Why: on the project's 2-core machine the ranking of two executions flipped with the
load. Fused Para-Former over the loop at ViT-S width, K 12, batch 8 was 0.53 at a load
average of 6-8 and 1.20 at 1.5-1.8 (issue 24): contention punishes many small
operations more than a few large ones, so a figure taken beside other work is not the
machine's figure. A window records, around a measurement:

* the 1-minute load average before and after (``os.getloadavg``);
* ``other_cpu_s``: CPU seconds that other processes used during the window, the
  machine's busy time (``/proc/stat``: user, nice, system, irq, softirq) minus this
  process's own (``os.times``, waited-for children included). Both are read in clock
  ticks (10 ms), so a quiet window reads a tick or so either side of zero, and the
  figure is kept signed: an interleaved record sums 21 or more turns, and clipping each
  at zero kept only the positive half of that error (200 quiet 20 ms windows summed to
  0.23 s of phantom CPU clipped, -0.01 s signed). Text shows it clipped at zero.
* ``busy``: other heavy work ran beside the measurement. The measured process keeps
  ``threads`` cores busy, so the machine's load is ``threads`` plus what the others
  used; busy is that load above ``threads + BUSY_MARGIN``: other processes kept more
  than half a core busy on average over the window (``other_cpu_s / load_window_s``).
  Where that is unknown, the larger 1-minute load average is judged instead.

Why the CPU time, not the load average, decides: the load average lags by a minute. In
an interleaved run every arm loads and warms its model at once before the turns, so
the load average read 3-5 during turns that had the machine to themselves (other
processes: under 0.1 core), and every short point was marked busy. It also misses a
burst beside a short window. The CPU time others used during the window is what
competed with the measurement; the load averages stay in the record as context.

Where the system does not say (no ``/proc``, no load average), the field is None.
"""
from __future__ import annotations

import os
import time

__all__ = ["BUSY_MARGIN", "LoadWindow", "busy", "judge", "load_columns", "load_text",
           "peak_load", "shown_cpu_s"]

#: Load above the measured threads by more than this marks a figure as busy.
BUSY_MARGIN = 0.5
#: Shortest window whose CPU seconds decide: CPU time is counted in clock ticks (10 ms);
#: quiet windows read within a tick of zero, so over 0.2 s the half-core threshold
#: (0.1 s) is ten ticks clear of that error. Shorter, the load average decides.
MIN_CPU_WINDOW_S = 0.2


def _load_1m() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def _machine_busy_s() -> float | None:
    """CPU seconds the whole machine has spent busy since boot (all cores)."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
        user, nice, system, _idle, _iowait, irq, softirq = map(int, fields[1:8])
        return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _own_s() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def busy(load: float | None, threads: int, other_cpu_s: float | None = None,
         window_s: float | None = None) -> bool | None:
    """The rule: other processes used more than ``BUSY_MARGIN`` of a core on average over
    the window; without that figure (or over a window under ``MIN_CPU_WINDOW_S``), a
    1-minute load above ``threads + BUSY_MARGIN``. None when neither is known."""
    if other_cpu_s is not None and window_s and window_s >= MIN_CPU_WINDOW_S:
        return other_cpu_s / window_s > BUSY_MARGIN
    return None if load is None else load > threads + BUSY_MARGIN


def peak_load(cond: dict) -> float | None:
    """The larger of a window's (or record's) 1-minute load averages, before and after."""
    loads = [v for v in (cond.get("load_1m_before"), cond.get("load_1m_after")) if v is not None]
    return max(loads) if loads else None


def judge(cond: dict) -> bool | None:
    """:func:`busy` for a window's (or a record's summed) conditions. Without the
    figures the rule needs, the flag the record was stored with (or None)."""
    threads = cond.get("load_threads")
    load = peak_load(cond) if threads is not None else None
    verdict = busy(load, int(threads or 0), cond.get("other_cpu_s"), cond.get("load_window_s"))
    return cond.get("busy") if verdict is None else verdict


class LoadWindow:
    """``with LoadWindow(threads) as w: measure()``, then ``w.result()``."""

    def __init__(self, threads: int):
        self.threads = int(threads)
        self._start: tuple | None = None
        self._end: tuple | None = None

    def _sample(self) -> tuple:
        return (_load_1m(), _machine_busy_s(), _own_s(), time.perf_counter())

    def __enter__(self) -> LoadWindow:
        self._start, self._end = self._sample(), None
        return self

    def __exit__(self, *exc) -> None:
        self._end = self._sample()

    def result(self) -> dict:
        """The window's conditions; an open window is read up to now."""
        if self._start is None:
            raise RuntimeError("LoadWindow.result() before the window was opened")
        (l0, m0, o0, t0), (l1, m1, o1, t1) = self._start, self._end or self._sample()
        other = None if m0 is None or m1 is None else round((m1 - m0) - (o1 - o0), 2)
        cond = {"load_1m_before": l0, "load_1m_after": l1, "other_cpu_s": other,
                "load_window_s": round(t1 - t0, 2), "load_threads": self.threads}
        return {**cond, "busy": judge(cond)}


def load_text(cond: dict) -> str:
    """'load 1.52->1.71, others 0.3 s' (with ' BUSY' when the rule says so)."""
    def num(v, spec):
        return "?" if v is None else format(v, spec)

    return (f"load {num(cond.get('load_1m_before'), '.2f')}->"
            f"{num(cond.get('load_1m_after'), '.2f')}, others "
            f"{num(shown_cpu_s(cond.get('other_cpu_s')), '.1f')} s"
            + (" BUSY" if cond.get("busy") else ""))


def shown_cpu_s(v: float | None) -> float | None:
    """Other processes' CPU seconds as text shows them: a signed tick error below zero
    reads as none."""
    return None if v is None else max(0.0, v)


def load_columns(df):
    """A records frame with ``load_1m`` (the larger of before and after), ``other_cpu_s``
    and ``busy`` columns taken from each record's ``extra`` (missing: NaN / None)."""
    if df.empty or "extra" not in df:
        return df.assign(load_1m=None, other_cpu_s=None, busy=None)
    extra = df["extra"].map(lambda e: e if isinstance(e, dict) else {})

    # judged again from the stored figures: one rule for every record, old ones included
    return df.assign(load_1m=extra.map(peak_load), other_cpu_s=extra.map(lambda e: e.get("other_cpu_s")),
                     busy=extra.map(lambda e: judge(e) if e else None))
