"""The one funnel into NVML (nvidia-ml-py). Every NVML call in parabench goes through
`query`, which turns "library missing", "no driver", "no permission" and "not supported
on this GPU" into a missing value with a reason, never an exception.
"""
from __future__ import annotations

import threading

__all__ = ["CLOCK_SM", "FI_DEV_POWER_INSTANT", "Missing", "cuda_handle", "describe", "field_value", "handle",
           "query", "query_any", "reset", "status"]

#: nvmlFieldValues id of the instantaneous board power (mW), NVML_FI_DEV_POWER_INSTANT
FI_DEV_POWER_INSTANT = 186
#: nvmlClockType_t of the SM clock, NVML_CLOCK_SM
CLOCK_SM = 1

_lock = threading.Lock()
_state: dict = {"tried": False, "lib": None, "reason": None}


class Missing:
    """A value NVML could not give, with the reason why. Falsy, so `if v:` works."""

    __slots__ = ("reason",)

    def __init__(self, reason: str):
        self.reason = reason

    def __bool__(self):
        return False

    def __repr__(self):
        return f"Missing({self.reason!r})"


def _init():
    """Import and initialise NVML once per process; remember why it failed."""
    with _lock:
        if _state["tried"]:
            return _state["lib"]
        _state["tried"] = True
        try:
            import pynvml
        except ImportError:
            _state["reason"] = "nvidia-ml-py is not installed"
            return None
        try:
            pynvml.nvmlInit()
        except Exception as e:  # LibraryNotFound, DriverNotLoaded, NoPermission...
            _state["reason"] = f"NVML unavailable: {_error_text(e)}"
            return None
        _state["lib"] = pynvml
        return pynvml


def _error_text(e: Exception) -> str:
    text = str(e) or type(e).__name__
    return text.splitlines()[0]


def status() -> tuple[bool, str | None]:
    """(available, reason it is not)."""
    lib = _init()
    return lib is not None, _state["reason"]


def query(fn_name: str, *args):
    """Call pynvml.<fn_name>(*args); on any failure return Missing(reason)."""
    lib = _init()
    if lib is None:
        return Missing(_state["reason"])
    fn = getattr(lib, fn_name, None)
    if fn is None:
        return Missing(f"{fn_name} is not in this nvidia-ml-py version")
    try:
        return fn(*args)
    except Exception as e:  # the funnel's contract: never raise
        return Missing(f"{fn_name}: {_error_text(e)}")


def query_any(fn_names, *args):
    """The first of several spellings of one NVML call that this nvidia-ml-py has
    (e.g. ...ClocksEventReasons, formerly ...ClocksThrottleReasons)."""
    lib = _init()
    if lib is None:
        return Missing(_state["reason"])
    for name in fn_names:
        if getattr(lib, name, None) is not None:
            return query(name, *args)
    return Missing(f"none of {', '.join(fn_names)} is in this nvidia-ml-py version")


#: nvmlValueType_t -> the member of the value union that holds it
_VALUE_MEMBERS = {0: "dVal", 1: "uiVal", 2: "ulVal", 3: "ullVal", 4: "sllVal", 5: "siVal",
                  6: "usVal"}


def field_value(h, field_id: int, name: str):
    """One NVML field value (nvmlDeviceGetFieldValues) as a number, or Missing: a field
    the GPU or driver does not have comes back per field, not as an exception."""
    got = query("nvmlDeviceGetFieldValues", h, [field_id])
    if isinstance(got, Missing):
        return got
    try:
        fv = got[0]
        if fv.nvmlReturn != 0:
            return Missing(f"field {name} not supported (NVML return {fv.nvmlReturn})")
        return getattr(fv.value, _VALUE_MEMBERS[fv.valueType])
    except (IndexError, AttributeError, KeyError) as e:
        return Missing(f"field {name}: unreadable value ({_error_text(e)})")


def reset() -> None:
    """Forget the outcome of initialisation, so the next query tries again (tests swap
    the pynvml module; a long-lived process may outlive a driver reload)."""
    with _lock:
        _state.update(tried=False, lib=None, reason=None)


def handle(index: int = 0):
    """The NVML device handle for NVML device `index` (or Missing)."""
    return query("nvmlDeviceGetHandleByIndex", index)


def cuda_handle(cuda_index: int = 0):
    """The NVML handle of *CUDA* device `cuda_index`. CUDA and NVML number devices
    differently once CUDA_VISIBLE_DEVICES reorders or hides some, so match by UUID
    (torch exposes it) and fall back to the same index."""
    ok, reason = status()
    if not ok:
        return Missing(reason)
    uuid = None
    try:
        import torch

        uuid = getattr(torch.cuda.get_device_properties(cuda_index), "uuid", None)
    except Exception:  # no usable CUDA: the index is all there is
        uuid = None
    if uuid is not None:
        text = str(uuid)
        h = query("nvmlDeviceGetHandleByUUID", text if text.startswith(("GPU-", "MIG-"))
                  else f"GPU-{text}")
        if not isinstance(h, Missing):
            return h
    return handle(cuda_index)


def _text(v):
    return v.decode() if isinstance(v, bytes) else v


def describe() -> dict:
    """What NVML sees: for `parabench env` and the stored environment."""
    ok, reason = status()
    if not ok:
        return {"available": False, "reason": reason}
    count = query("nvmlDeviceGetCount")
    devices = []
    for i in range(count if isinstance(count, int) else 0):
        h = handle(i)
        if isinstance(h, Missing):
            continue
        power = query("nvmlDeviceGetPowerManagementLimit", h)
        devices.append({
            "index": i,
            "name": _text(query("nvmlDeviceGetName", h)),
            "power_limit_w": power / 1000 if isinstance(power, int) else None,
        })
    return {
        "available": True,
        "driver": _text(query("nvmlSystemGetDriverVersion")),
        "devices": devices,
    }
