"""Turn (model, input, mode, workload) into the zero-argument callable that gets timed.

Modes: `eager` (plain PyTorch), `graph` (a CUDA graph captured once and replayed, which
removes per-kernel launch overhead) and `compile` (torch.compile). Workloads: `infer`
(forward under inference mode) and `train` (forward, cross-entropy, backward, AdamW
step). A combination this device or build cannot do is reported by `unsupported()`
as a reason string, which the runner stores as a `skipped` row.

torch.compile must never run eager while the row says "compile". Dynamo keeps its
caches per code object for the whole process, and every model of a family shares the
same `forward` code, so across points it recompiles until its recompile limit, after
which it silently runs the frame eagerly. So each compile point starts from a reset
Dynamo, compiles with static shapes (a benchmark's shapes do not change), turns a hit
of the recompile limit into an error, and `compile_evidence()` reports how many graphs
were compiled: none at all is an error, not a fast "compile" number.
"""
from __future__ import annotations

import shutil
from collections.abc import Callable

__all__ = ["COMPILE_BACKEND", "CompileFellBack", "capture_graph", "compile_evidence", "make_step",
           "side_stream", "unsupported"]

#: torch.compile's backend for `compile` points (tests switch to "eager" to stay fast)
COMPILE_BACKEND = "inductor"


class CompileFellBack(RuntimeError):
    """A `compile` point ran without any compiled graph: its timing would be eager's."""


def unsupported(mode: str, workload: str, device: str) -> str | None:
    if mode == "graph" and not device.startswith("cuda"):
        return "CUDA graphs need a CUDA device"
    if mode == "graph" and workload == "train":
        return "parabench does not capture train steps in CUDA graphs (optimizer state is not static)"
    if mode == "compile":
        import torch

        if not torch._dynamo.is_dynamo_supported():
            return "torch.compile is not supported on this Python/torch build"
        if device == "cpu" and shutil.which("cc") is None and shutil.which("gcc") is None:
            return "torch.compile on CPU needs a C compiler (none found on PATH)"
    return None


def _forward(model, x) -> Callable[[], object]:
    import torch

    def step():
        with torch.inference_mode():
            return model(x)

    return step


def _train_step(model, x, num_classes: int) -> Callable[[], object]:
    import torch
    import torch.nn.functional as F

    model.train()
    g = torch.Generator().manual_seed(1)
    y = torch.randint(0, num_classes, (x.shape[0],), generator=g).to(x.device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x).float(), y)
        loss.backward()
        opt.step()
        return loss

    return step


#: one side stream per CUDA device for every capture in the process: cuBLAS keeps a
#: workspace (32 MiB on Hopper) per handle *and stream* in the caching allocator, and
#: empty_cache() cannot free it, so a new stream per point left one more workspace
#: reserved after every graph point and each peak grew with the points before it
_side_streams: dict = {}


def side_stream():
    """This device's capture stream, made once."""
    import torch

    index = torch.cuda.current_device()
    if index not in _side_streams:
        _side_streams[index] = torch.cuda.Stream()
    return _side_streams[index]


def capture_graph(fn: Callable[[], object]):
    """Capture ``fn()`` in a CUDA graph after warming it up on a side stream (as the
    capture API requires). Returns the graph and what ``fn`` returned while captured:
    tensors in the graph's pool, which each replay rewrites."""
    import torch

    side = side_stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side), torch.no_grad():
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.no_grad(), torch.cuda.graph(graph, stream=side):
        out = fn()
    return graph, out


def _graph_forward(model, x) -> Callable[[], object]:
    """One forward as a CUDA graph; its replay returns the graph's output as an eager
    step returns its own."""
    graph, out = capture_graph(lambda: model(x))

    def replay():
        graph.replay()
        return out

    return replay


def _compiled(model):
    import torch
    from torch._dynamo.utils import counters

    torch._dynamo.reset()  # no cache entries or recompiles from earlier points
    counters.clear()  # reset() keeps the counters; compile_evidence() reads this point's
    torch._dynamo.config.fail_on_recompile_limit_hit = True
    return torch.compile(model, backend=COMPILE_BACKEND, dynamic=False)


def compile_evidence() -> dict:
    """What Dynamo compiled since the point's reset; raise CompileFellBack if nothing.
    Call it after the step has run (compilation happens on the first call)."""
    from torch._dynamo.utils import counters

    graphs = int(counters["stats"]["unique_graphs"])
    # distinct break reasons: Dynamo bumps a reason's count on each trace attempt, and a
    # break restarts the trace, so the sum reads 2 for one break (torch 2.14)
    breaks = len(counters["graph_break"])
    if graphs == 0:
        raise CompileFellBack("torch.compile compiled no graph for this point (it would have "
                              "run eagerly); see TORCH_LOGS=recompiles,graph_breaks")
    return {"compiled_graphs": graphs, "graph_breaks": int(breaks),
            "compile_backend": COMPILE_BACKEND}


def make_step(model, x, *, mode: str, workload: str, num_classes: int) -> Callable[[], object]:
    if mode == "compile":
        model = _compiled(model)
    if workload == "train":
        return _train_step(model, x, num_classes)
    if mode == "graph":
        return _graph_forward(model, x)
    return _forward(model, x)
