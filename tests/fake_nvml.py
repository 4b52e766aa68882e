"""A fake `pynvml` module, shared by the NVML, telemetry and runner tests.

(A helper module, not a test file: the `fake_nvml` fixture is exposed through conftest.py.)
"""
from __future__ import annotations

import sys
import time
import types

import pytest

from parabench.measure import nvml


class NVMLError(Exception):
    pass


def make_fake_pynvml(*, watts: float = 250.0, reasons: int = 0x4, energy: bool = True,
                     temperature: bool = True, throttle_name: str = "event",
                     instant_watts: float | None = None) -> types.ModuleType:
    """A module with the pynvml calls parabench uses. Energy grows at `watts` from the
    moment of nvmlInit, so J/image is predictable; `calls` counts every call. With
    `instant_watts` the instantaneous power field exists (and reads differently from
    the averaged power usage, so a test can tell which was read)."""
    m = types.ModuleType("pynvml")
    m.NVMLError = NVMLError
    m.calls = {}
    state = {"t0": None}

    def counted(name, fn):
        def wrapper(*args):
            m.calls[name] = m.calls.get(name, 0) + 1
            return fn(*args)
        wrapper.__name__ = name
        setattr(m, name, wrapper)

    def init():
        state["t0"] = time.perf_counter()

    def unsupported(*_):
        raise NVMLError("Not Supported")

    counted("nvmlInit", init)
    counted("nvmlShutdown", lambda: None)
    counted("nvmlDeviceGetCount", lambda: 1)
    counted("nvmlDeviceGetHandleByIndex", lambda i: f"handle{i}")
    counted("nvmlDeviceGetHandleByUUID", unsupported)
    counted("nvmlDeviceGetName", lambda h: b"Fake GPU")
    counted("nvmlSystemGetDriverVersion", lambda: "999.1")
    counted("nvmlDeviceGetPowerManagementLimit", lambda h: 700_000)
    counted("nvmlDeviceGetPowerUsage", lambda h: int(watts * 1000))
    counted("nvmlDeviceGetUtilizationRates",
            lambda h: types.SimpleNamespace(gpu=87, memory=41))
    counted("nvmlDeviceGetClockInfo", lambda h, kind: 1755 if kind == 1 else 0)
    counted("nvmlDeviceGetTemperature", (lambda h, s: 61) if temperature else unsupported)
    counted("nvmlDeviceGetMemoryInfo",
            lambda h: types.SimpleNamespace(used=3 * 2**30, total=80 * 2**30, free=77 * 2**30))
    reasons_name = ("nvmlDeviceGetCurrentClocksEventReasons" if throttle_name == "event"
                    else "nvmlDeviceGetCurrentClocksThrottleReasons")
    counted(reasons_name, lambda h: reasons)
    def field_values(h, ids):
        out = []
        for fid in ids:
            ok = fid == 186 and instant_watts is not None  # NVML_FI_DEV_POWER_INSTANT
            value = types.SimpleNamespace(uiVal=int((instant_watts or 0) * 1000))
            out.append(types.SimpleNamespace(fieldId=fid, nvmlReturn=0 if ok else 3,
                                             valueType=1, value=value))
        return out

    counted("nvmlDeviceGetFieldValues", field_values)
    if energy:
        counted("nvmlDeviceGetTotalEnergyConsumption",
                lambda h: int((time.perf_counter() - state["t0"]) * watts * 1000))
    return m


@pytest.fixture
def fake_nvml(monkeypatch):
    """Install a fake pynvml and make the funnel pick it up; restore afterwards."""

    def install(**kwargs):
        fake = make_fake_pynvml(**kwargs)
        monkeypatch.setitem(sys.modules, "pynvml", fake)
        nvml.reset()
        return fake

    yield install
    nvml.reset()
