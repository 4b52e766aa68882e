"""What machine and software a run measured on: stored with every run, shown by `env`.

Comparisons across machines are meaningless, so the `machine` string (host plus the
device's name) is what `compare` checks before putting two runs side by side.
"""
from __future__ import annotations

import os
import platform
import socket
import subprocess
from pathlib import Path

__all__ = ["collect", "cpu_model", "git_state", "machine_id", "why_no_cuda"]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_state(path: Path | None = None) -> dict:
    """Commit and dirty flag of the checkout parabench runs from. Under asv the installed
    copy is no checkout, so asv's ASV_COMMIT variable is the fallback."""
    where = path or Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10
        )
        if commit.returncode == 0:
            status = subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=where, capture_output=True, text=True, timeout=10,
            )
            return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        pass
    if os.environ.get("ASV_COMMIT"):
        return {"commit": os.environ["ASV_COMMIT"], "dirty": False}
    return {"commit": None, "dirty": None}


def _gpu_info() -> dict:
    import torch

    if not torch.cuda.is_available():
        return {"available": False, "reason": why_no_cuda()}
    idx = torch.cuda.current_device()
    props = torch.cuda.get_device_properties(idx)
    return {
        "available": True,
        "count": torch.cuda.device_count(),
        "name": props.name,
        "capability": f"{props.major}.{props.minor}",
        "memory_bytes": props.total_memory,
        "sm_count": props.multi_processor_count,
        "bf16": torch.cuda.is_bf16_supported(),
    }


def why_no_cuda() -> str:
    import torch

    if torch.version.cuda is None:
        return "this torch build has no CUDA support"
    return "torch has CUDA support but finds no usable GPU/driver"


def _nvml_info() -> dict:
    from .measure import nvml

    return nvml.describe()


def machine_id(gpu: dict | None = None) -> str:
    gpu = gpu if gpu is not None else _gpu_info()
    device = gpu["name"] if gpu.get("available") else cpu_model()
    return f"{socket.gethostname()}/{device}"


def collect() -> dict:
    """Everything that can change a measurement, as plain JSON-able data."""
    import timm
    import torch

    gpu = _gpu_info()
    return {
        "machine": machine_id(gpu),
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "timm": timm.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "gpu": gpu,
        "nvml": _nvml_info(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "git": git_state(),
    }
