"""The fused levels' CPU workspace (paraformer.workspace): intermediates of forwards
without autograd go into buffers kept across calls, and nothing a forward returns is
one of them.

CPU only, tiny configurations (those of test_paraformer).
"""

from __future__ import annotations

import copy
import threading

import pytest
import torch
from test_paraformer import (  # noqa: F401  (_one_thread: its autouse fixture, here too)
    RTOL,
    _one_thread,
    build,
    images,
    rel_err,
)

K = 5


def _buffers(m) -> dict[str, tuple[int, int]]:
    """name -> (data pointer, elements) of this thread's workspace."""
    ws = m.__dict__["_workspaces"][threading.get_ident()]
    return {name: (t.data_ptr(), t.numel()) for name, t in ws._flat.items()}


@pytest.mark.parametrize("group", [1, 2, K])
@pytest.mark.parametrize("residual", ["authors", "prenorm"])
def test_later_calls_reuse_the_buffers_and_compute_the_loop_function(group, residual):
    m = build(num_branches=K, branch_depth=3, residual=residual, branch_group=group)
    loop = copy.deepcopy(m).set_execution("loop")
    x = images(3)
    with torch.inference_mode():
        want = loop(x)
        assert rel_err(m(x), want) < RTOL
        first = _buffers(m)
        assert {"q", "mid", "ffn", "level-out-0", "level-out-1", "last-out"} <= set(first)
        # the CPU flash kernel writes its output in row order already: no copy of it
        assert "heads" not in first
        for _ in range(2):
            assert rel_err(m(x), want) < RTOL
            assert _buffers(m) == first  # the same memory: nothing asked of the allocator


def test_attention_output_is_copied_into_rows_only_where_the_kernel_did_not_write_rows():
    """The math kernel writes ``[S, heads, n, dh]``: its output takes the one copy into
    rows (into the workspace), and the function is the loop's either way."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    m = build(num_branches=K, branch_depth=2, branch_group=2)
    loop = copy.deepcopy(m).set_execution("loop")
    x = images(2)
    with torch.inference_mode(), sdpa_kernel(SDPBackend.MATH):
        want = loop(x)
        assert rel_err(m(x), want) < RTOL
        assert "heads" in _buffers(m)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_norm_without_affine_is_the_plain_norm_with_one_kept_unit_weight(dtype):
    from paraformer.fused import norm_without_affine
    from paraformer.workspace import Workspace

    x = torch.randn(3, 7, 16, dtype=dtype) * 4 + 1
    want = torch.nn.functional.layer_norm(x, (16,), None, None, 1e-6)
    ws = Workspace()
    with torch.inference_mode():
        got = norm_without_affine(x, 1e-6, ws)
        ones = ws.ones(16, x)
        assert torch.equal(ones, torch.ones(16, dtype=dtype))
    assert torch.allclose(got, want, rtol=0, atol=1e-6)
    assert torch.allclose(norm_without_affine(x, 1e-6, None), want, rtol=0, atol=1e-6)
    # read, never written: made once under inference_mode, it serves no_grad too
    with torch.no_grad():
        assert torch.allclose(norm_without_affine(x, 1e-6, ws), want, rtol=0, atol=1e-6)
    assert ws.ones(16, x).data_ptr() == ones.data_ptr()
    assert ws.ones(8, x).numel() == 8 and ws.ones(16, x.half()).dtype == torch.float16


@pytest.mark.parametrize("group", [2, K])  # with one group nothing is concatenated
def test_what_a_forward_returns_is_never_overwritten_by_the_next(group):
    m = build(num_branches=K, branch_depth=2, branch_group=group)
    a, b = images(2, seed=1), images(2, seed=2)
    with torch.inference_mode():
        x0a = m.embed(a)
        outs = {
            "logits": lambda x, x0: m(x),
            "features": lambda x, x0: m.forward_features(x),
            "branches": lambda x, x0: m.forward_branches(x0),
            "cls rows": lambda x, x0: m.forward_branches(x0, cls_only=True),
        }
        for name, call in outs.items():
            first = call(a, x0a)
            kept = first.clone()
            call(b, m.embed(b))
            assert torch.equal(first, kept), name


def test_no_grad_and_inference_mode_alternate_on_one_model():
    """A buffer made under inference_mode cannot be written outside it: each mode gets
    its own, and both compute the loop's function."""
    m = build(num_branches=K, branch_depth=2, branch_group=2)
    want = copy.deepcopy(m).set_execution("loop")(images(2)).detach()
    for mode in (torch.inference_mode, torch.no_grad, torch.inference_mode, torch.no_grad):
        with mode():
            assert rel_err(m(images(2)), want) < RTOL


def test_autograd_forwards_use_no_workspace_and_get_gradients():
    m = build(num_branches=K, branch_depth=2, branch_group=2)
    m(images(2)).sum().backward()
    assert "_workspaces" not in m.__dict__
    assert m.blocks[0].qkv.weight.grad.norm() > 0


def test_threads_sharing_a_model_each_get_their_own_buffers():
    m = build(num_branches=K, branch_depth=2, branch_group=2)
    inputs = [images(2, seed=s) for s in range(4)]
    loop = copy.deepcopy(m).set_execution("loop")
    with torch.inference_mode():
        wants = [loop(x) for x in inputs]
    errors: list[str] = []
    barrier = threading.Barrier(len(inputs))

    def work(i: int) -> None:
        barrier.wait()
        with torch.inference_mode():
            for _ in range(20):
                if rel_err(m(inputs[i]), wants[i]) >= RTOL:
                    errors.append(f"thread {i}")
                    return

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(m.__dict__["_workspaces"]) >= 2


def test_release_workspace_frees_the_buffers_and_the_next_forward_makes_them_again():
    m = build(num_branches=K, branch_depth=2)
    x = images(2)
    with torch.inference_mode():
        want = m(x)
        m.release_workspace()
        assert "_workspaces" not in m.__dict__
        assert rel_err(m(x), want) < RTOL
        assert _buffers(m)


def test_copies_and_pickles_leave_the_workspace_behind():
    import io

    m = build(num_branches=K, branch_depth=2)
    x = images(2)
    with torch.inference_mode():
        want = m(x)
    assert m.__dict__["_workspaces"]
    twin = copy.deepcopy(m)
    assert "_workspaces" not in twin.__dict__
    buf = io.BytesIO()
    torch.save(m, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False)
    assert "_workspaces" not in loaded.__dict__
    with torch.inference_mode():
        assert rel_err(twin(x), want) < RTOL and rel_err(loaded(x), want) < RTOL
    assert "_workspaces" in m.__dict__  # the original keeps its own


def test_a_repeated_request_is_the_same_view_and_a_grown_buffer_forgets_the_old_ones():
    from paraformer.workspace import Workspace

    ws, like = Workspace(), torch.empty(0)
    with torch.inference_mode():
        small = ws.take("a", (2, 3), like)
        assert ws.take("a", (2, 3), like) is small  # no new view, no allocator call
        big = ws.take("a", (4, 5), like)  # grows: a new buffer
        again = ws.take("a", (2, 3), like)
        assert again is not small and again.data_ptr() == big.data_ptr()
        assert ws.take("a", (2, 3), like.double()).dtype == torch.float64
    with torch.no_grad():  # the other mode gets its own buffer (inference tensors are
        outside = ws.take("a", (2, 3), like)  # read-only outside inference_mode)
        assert not outside.is_inference()
        outside.fill_(1.0)


@pytest.mark.parametrize("execution", ["fused", "least-work"])
def test_level_views_are_made_once_and_follow_grown_buffers(execution, monkeypatch):
    """The views a level derives from its buffers (k and v of the kv GEMM, the
    accumulators' rows) are made on a signature's first call and read on the next; a
    batch that grows the buffers makes them again, and every call is the loop's
    function."""
    from paraformer import workspace

    made = []
    real = workspace.kept

    def counting(views, name, base, make):
        return real(views, name, base, lambda: made.append(name) or make())

    monkeypatch.setattr(workspace, "kept", counting)
    import paraformer.embedding as embedding
    import paraformer.fused as fused

    monkeypatch.setattr(fused, "_kept", counting)
    monkeypatch.setattr(embedding, "kept", counting)
    m = build(num_branches=K, branch_depth=2, execution=execution, branch_group=2)
    loop = copy.deepcopy(m).set_execution("loop")
    with torch.inference_mode():
        # batch 5 grows the buffers: the batch-2 views are made again after it
        for batch, makes in ((2, True), (2, False), (5, True), (2, True), (2, False)):
            x = images(batch)
            before = len(made)
            assert rel_err(m(x), loop(x)) < RTOL
            assert (len(made) > before) == makes, (batch, made[before:])


def test_with_dropout_outside_autograd_the_output_is_never_a_kept_view():
    """Training without autograd (no_grad) still writes into the workspace, but with
    dropout a sub-layer's output is a fresh sum: a view of it kept for the next call
    would hand back the previous call's output. Each call equals the same draw made
    with autograd (no workspace)."""
    m = build(num_branches=3, branch_depth=1, execution="least-work", drop_rate=0.3).train()
    x = images(2)
    outs = {}
    for grad in (False, True):
        with torch.set_grad_enabled(grad):
            for seed in (1, 2):
                torch.manual_seed(seed)
                outs[grad, seed] = m(x).detach()
    assert rel_err(outs[False, 1], outs[False, 2]) > 1e-3  # the draws differ
    for seed in (1, 2):
        assert rel_err(outs[False, seed], outs[True, seed]) < RTOL


def test_kept_views_are_made_again_for_another_buffer():
    """Views kept for a call signature are returned only while their buffer is the one
    they were made from: after a buffer is replaced they are made from the new one."""
    from paraformer.workspace import Workspace, kept

    ws, like = Workspace(), torch.empty(0)
    with torch.inference_mode():
        views = ws.views(("sig",))
        a = ws.take("a", (2, 3), like)
        first = kept(views, "rows", a, lambda: a.view(3, 2))
        assert kept(views, "rows", a, lambda: a.view(3, 2)) is first
        b = ws.take("b", (2, 3), like)
        again = kept(views, "rows", b, lambda: b.view(3, 2))
        assert again is not first and again.data_ptr() == b.data_ptr()
        assert kept(None, "rows", a, lambda: a.view(6)).shape == (6,)  # nothing kept
