"""TensorBoard for real: the PyTorch Profiler plugin lists a trace parabench wrote."""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch

from parabench.catalog import build
from parabench.measure.profile import point_trace_dir, profile_step

PLUGIN = "/data/plugin/pytorch_profiler"


def _tensorboard() -> str | None:
    exe = Path(sys.executable).with_name("tensorboard")
    return str(exe) if exe.exists() else shutil.which("tensorboard")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str):
    with urllib.request.urlopen(url, timeout=5) as r:  # noqa: S310  (localhost only)
        return json.loads(r.read())


@pytest.mark.slow
@pytest.mark.skipif(_tensorboard() is None, reason="tensorboard is not installed")
def test_tensorboard_profiler_plugin_lists_the_run(tmp_path):
    pytest.importorskip("torch_tb_profiler")
    torch.manual_seed(0)
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = build("paraformer-fused", 2, width="tiny", img_size=32)
        x = torch.randn(1, 3, 32, 32)

        def step():
            with torch.inference_mode():
                return model(x)

        key = "paraformer-fused/d2/b1/float32/eager/infer"
        out = point_trace_dir(tmp_path / "logs", "run0", key)
        res = profile_step(step, out, wait=0, warmup=1, active=2, worker="worker0")
    finally:
        torch.set_num_threads(old)
    run_name = "run0/paraformer-fused_d2_b1_float32_eager_infer"

    port = _free_port()
    log = (tmp_path / "tb.log").open("w")
    proc = subprocess.Popen(
        [_tensorboard(), "--logdir", str(tmp_path / "logs"), "--host", "127.0.0.1",
         "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}{PLUGIN}"
    try:
        deadline = time.monotonic() + 60
        runs = None
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "tb.log").read_text()[-2000:]
            try:
                runs = _get(f"{base}/runs")
                if run_name in runs["runs"]:
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.5)
        assert runs and run_name in runs["runs"], (runs, (tmp_path / "tb.log").read_text()[-2000:])
        views = _get(f"{base}/views?run={urllib.request.quote(run_name)}")
        assert "Overview" in views and "Trace" in views
        workers = _get(f"{base}/workers?run={urllib.request.quote(run_name)}&view=Overview")
        assert workers == ["worker0"]
        assert res["trace"].name.startswith("worker0.")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()
    assert proc.returncode is not None
