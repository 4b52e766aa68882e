"""The Ray executor against a real cluster on this machine: `ray start --head --block`
with 2 CPUs, driven through `parabench run --ray-address`, as a lab would use it.

The cluster is stopped by its PID (SIGTERM to `ray start --block` stops what it
started); any process of it still alive afterwards is killed by PID, never by name
(`ray stop` would also stop clusters that are not this test's)."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from parabench import Store, load
from parabench.environment import machine_id

pytest.importorskip("ray", reason="the Ray tests need the [ray] extra: pip install -e '.[ray]'")

pytestmark = pytest.mark.slow

#: vit at depth 1..3 with a fixed sample count; --threads 2 makes each point ask for both
#: CPUs of the cluster, so points run one at a time, in order
SWEEP = ("--family", "vit", "--depth", "1,2,3", "--batch", "1", "--threads", "2",
         "--warmup", "1", "--min-samples", "4", "--max-samples", "4", "--min-time", "0",
         "--no-progress")
#: the same points with --threads 1: two points (or a point and a hung one) run at once
SWEEP_1 = (*SWEEP[:SWEEP.index("--threads") + 1], "1", *SWEEP[SWEEP.index("--threads") + 2:])
#: token authentication is for clusters others can reach; this one is local and brief
RAY_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _descendants(pid: int) -> list[int]:
    """Every process below `pid` (from /proc: no psutil needed)."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@pytest.fixture(scope="module")
def cluster():
    """(address, head PID) of a 2-CPU Ray cluster on this machine, for the module."""
    ray_bin = Path(sys.executable).with_name("ray")
    temp = tempfile.mkdtemp(prefix="pbray", dir="/tmp")  # short: Ray's socket paths are capped
    port = _free_port()
    ports = {f"--{name}": _free_port() for name in (
        "ray-client-server-port", "dashboard-port", "dashboard-agent-listen-port",
        "dashboard-agent-grpc-port", "runtime-env-agent-port", "metrics-export-port")}
    # Ray's workers import parabench from this checkout
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, **RAY_ENV,
           "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    log = open(Path(temp) / "head.log", "w")
    head = subprocess.Popen(
        [str(ray_bin), "start", "--head", "--block", f"--port={port}", "--num-cpus=2",
         "--num-gpus=0", "--node-ip-address=127.0.0.1", "--include-dashboard=false",
         f"--temp-dir={temp}", "--disable-usage-stats",
         *(f"{k}={v}" for k, v in ports.items())],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    started = []
    try:
        deadline = time.monotonic() + 180
        while "Ray runtime started" not in (Path(temp) / "head.log").read_text():
            assert head.poll() is None, (Path(temp) / "head.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "the Ray head did not start"
            time.sleep(0.5)
        yield f"127.0.0.1:{port}", head.pid
    finally:
        started = _descendants(head.pid)
        head.send_signal(signal.SIGTERM)  # `ray start --block` stops what it started
        try:
            head.wait(60)
        except subprocess.TimeoutExpired:
            head.kill()
            head.wait(10)
        deadline = time.monotonic() + 2  # what it started has a moment to exit by itself
        while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in started):
            time.sleep(0.1)
        for pid in started:  # anything left over, by PID
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


def _point_workers(head_pid: int) -> list[int]:
    """The PIDs of the cluster's workers that are inside a point right now."""
    return [p for p in _descendants(head_pid) if _cmdline(p).startswith("ray::parabench-point")]


def _run(db, *args, fault=None, wait=True):
    env = {**os.environ, **RAY_ENV, "PYTHONUNBUFFERED": "1"}
    if fault:
        env["PARABENCH_FAULT"] = fault
    cmd = [sys.executable, "-m", "parabench", "run", "--db", str(db), *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    if not wait:
        return proc
    out, err = proc.communicate(timeout=400)
    return proc.returncode, out, err


def _rows(db) -> dict:
    df = load(db, "latest")
    return {r.key: (r.status, int(r.n) if r.status == "ok" else None) for r in df.itertuples()}


def _wait_until(what, timeout=180):
    deadline = time.monotonic() + timeout
    while not (got := what()):
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.2)
    return got


def _count(db) -> int:
    if not Path(db).exists():
        return 0
    try:
        with Store(db, create=False, readonly=True) as s:
            return sum(sum(c.values()) for c in s.status_counts().values())
    except Exception:  # noqa: BLE001  being created right now
        return 0


def test_a_sweep_through_the_cluster_gives_the_rows_inline_gives(cluster, tmp_path):
    address, _ = cluster
    # both sweeps at once: their start-ups (torch imports) overlap; only the rows count here
    ray_proc = _run(tmp_path / "ray.db", *SWEEP, "--ray-address", address, wait=False)
    inline_proc = _run(tmp_path / "inline.db", *SWEEP, "--executor", "inline", wait=False)
    _, err = ray_proc.communicate(timeout=400)
    assert ray_proc.returncode == 0, err
    assert "(ray executor)" in err and "Ray cluster: 1 node(s), 2 CPUs" in err
    _, err = inline_proc.communicate(timeout=400)
    assert inline_proc.returncode == 0, err
    assert "(inline executor)" in err
    ray_rows, inline_rows = _rows(tmp_path / "ray.db"), _rows(tmp_path / "inline.db")
    assert ray_rows == inline_rows and set(ray_rows.values()) == {("ok", 4)}
    df = load(tmp_path / "ray.db")
    assert set(df.machine) == {machine_id()}  # stamped by the Ray worker that measured it
    assert all(e.get("hostname") == socket.gethostname() for e in df.env)


def test_a_worker_killed_mid_point_gives_a_row_and_the_sweep_completes(cluster, tmp_path):
    address, head_pid = cluster
    db = tmp_path / "r.db"
    # the point vit/d2 hangs inside its Ray worker until the test kills that worker
    proc = _run(db, *SWEEP, "--ray-address", address, fault="sleep:vit/d2/", wait=False)
    _wait_until(lambda: _count(db) >= 1)
    busy = _wait_until(lambda: _point_workers(head_pid))
    os.kill(busy[0], signal.SIGKILL)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    df = load(db, "latest").set_index("key")
    assert len(df) == 3, df[["status", "reason"]].to_string()
    bad = df[df.status != "ok"]
    assert list(bad.status) == ["error"] and list(bad.index) == ["vit/d2/b1/float32/eager/infer"]
    assert "Ray task failed" in bad.reason.iloc[0] and "died" in bad.reason.iloc[0]
    with Store(db, create=False, readonly=True) as s:
        assert s.run(s.latest_run_id())["status"] == "finished"


def test_the_driver_killed_and_resumed_loses_no_finished_point(cluster, tmp_path):
    address, head_pid = cluster
    db = tmp_path / "r.db"
    # one CPU a point: vit/d1 and vit/d2 finish beside vit/d3, which hangs for a minute,
    # whatever order Ray starts them in (with both CPUs a point, a d3 started first held
    # the others back for its minute, and a d2 could finish after d3)
    proc = _run(db, *SWEEP_1, "--ray-address", address, fault="sleep:vit/d3/", wait=False)
    _wait_until(lambda: _count(db) >= 2)
    proc.kill()
    proc.communicate(timeout=60)
    # its hung point would hold a CPU for the rest of its minute: end it by PID
    for pid in _point_workers(head_pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    with Store(db, create=False, readonly=True) as s:
        rid = s.latest_run_id()
        run = s.run(rid)
        before = s.records_frame([rid])
    assert run["status"] == "interrupted" and "is gone" in run["stale"]  # not "running"
    assert len(before) == 2 and set(before.status) == {"ok"}
    rc, _, err = _run(db, "--resume", rid, "--ray-address", address, "--no-progress")
    assert rc == 0, err
    assert "1 of 3 points to measure" in err
    after = load(db, rid).set_index("key")
    assert len(after) == 3 and set(after.status) == {"ok"}
    kept = after.loc[before.key]
    assert list(kept.id) == list(before.id)  # finished points kept, not measured again
    with Store(db, create=False, readonly=True) as s:
        assert s.run(rid)["status"] == "finished"


def test_an_address_where_no_cluster_listens_is_refused_at_once(tmp_path):
    rc, _, err = _run(tmp_path / "r.db", *SWEEP, "--ray-address", f"127.0.0.1:{_free_port()}")
    assert rc == 2 and "no Ray cluster answers at" in err
    assert len(err.strip().splitlines()) == 1, err
