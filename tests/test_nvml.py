"""The NVML funnel: missing values with reasons, never exceptions."""
from __future__ import annotations

import types

import pytest

from parabench.measure import nvml


def _real_nvml_available() -> bool:
    nvml.reset()
    ok, _ = nvml.status()
    return ok


@pytest.mark.skipif(_real_nvml_available(), reason="this machine has a working NVML")
def test_absent_nvml_for_real_gives_missing_with_reason():
    nvml.reset()
    ok, reason = nvml.status()
    assert not ok and reason
    v = nvml.query("nvmlDeviceGetPowerUsage", None)
    assert isinstance(v, nvml.Missing) and not v
    assert v.reason == reason
    assert isinstance(nvml.cuda_handle(0), nvml.Missing)
    assert isinstance(nvml.query_any(["nvmlDeviceGetCurrentClocksEventReasons"], None),
                      nvml.Missing)
    assert nvml.describe() == {"available": False, "reason": reason}


def test_fake_nvml_present(fake_nvml):  # noqa: F811
    fake = fake_nvml()
    assert nvml.status() == (True, None)
    h = nvml.cuda_handle(0)  # UUID lookup unsupported in the fake -> index fallback
    assert h == "handle0"
    assert nvml.query("nvmlDeviceGetPowerUsage", h) == 250_000
    d = nvml.describe()
    assert d["available"] and d["devices"][0]["name"] == "Fake GPU"
    assert d["devices"][0]["power_limit_w"] == 700
    assert fake.calls["nvmlInit"] == 1


def test_failures_become_missing(fake_nvml):  # noqa: F811
    fake_nvml(temperature=False)
    v = nvml.query("nvmlDeviceGetTemperature", "handle0", 0)
    assert isinstance(v, nvml.Missing) and "Not Supported" in v.reason
    v = nvml.query("nvmlDeviceGetNoSuchThing", "handle0")
    assert isinstance(v, nvml.Missing) and "not in this nvidia-ml-py" in v.reason


def test_query_any_takes_the_spelling_this_version_has(fake_nvml):  # noqa: F811
    fake_nvml(throttle_name="throttle", reasons=0x44)
    names = ("nvmlDeviceGetCurrentClocksEventReasons", "nvmlDeviceGetCurrentClocksThrottleReasons")
    assert nvml.query_any(names, "handle0") == 0x44
    assert isinstance(nvml.query_any(("nvmlNope",), "handle0"), nvml.Missing)


def test_failed_init_is_remembered_with_reason(monkeypatch, fake_nvml):  # noqa: F811
    fake = fake_nvml()

    def broken():
        raise RuntimeError("Driver Not Loaded")

    fake.nvmlInit = broken
    nvml.reset()
    ok, reason = nvml.status()
    assert not ok and "Driver Not Loaded" in reason
    assert isinstance(nvml.query("nvmlDeviceGetCount"), nvml.Missing)


@pytest.mark.parametrize("value_type, member, raw", [
    (0, "dVal", 1.5), (1, "uiVal", 7), (2, "ulVal", 8), (3, "ullVal", 9), (4, "sllVal", -3),
    (5, "siVal", -4), (6, "usVal", 12)])
def test_field_value_reads_every_nvml_value_type(fake_nvml, monkeypatch,  # noqa: F811
                                                 value_type, member, raw):
    """Each nvmlValueType_t is read from its own member of the value union; a type NVML
    adds later becomes Missing, never a wrong member's bytes."""
    fake = fake_nvml()
    value = types.SimpleNamespace(**{member: raw})
    monkeypatch.setattr(fake, "nvmlDeviceGetFieldValues", lambda h, ids: [
        types.SimpleNamespace(fieldId=ids[0], nvmlReturn=0, valueType=value_type, value=value)])
    assert nvml.field_value("handle0", 186, "power") == raw
    monkeypatch.setattr(fake, "nvmlDeviceGetFieldValues", lambda h, ids: [
        types.SimpleNamespace(fieldId=ids[0], nvmlReturn=0, valueType=7, value=value)])
    assert isinstance(nvml.field_value("handle0", 186, "power"), nvml.Missing)
