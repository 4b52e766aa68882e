"""The patch embedding's kept parts (paraformer.embedding): the contiguous conv kernel,
kept until the weight changes, and x0 written into the fused levels' workspace.

CPU only, tiny configurations (those of test_paraformer).
"""

from __future__ import annotations

import pytest
import torch
from paraformer.embedding import embed_for_levels
from test_paraformer import (  # noqa: F401  (_one_thread: its autouse fixture, here too)
    _one_thread,
    build,
    images,
)


@pytest.mark.parametrize("patch", [8, (4, 8)])
@pytest.mark.parametrize("mode", [torch.no_grad, torch.inference_mode])
def test_x0_for_the_levels_is_the_embedding_in_one_kept_buffer(patch, mode):
    m = build(patch_size=patch).eval()
    with mode():
        first = embed_for_levels(m, images(3))
        assert torch.equal(first, m.embed(images(3)))
        again = embed_for_levels(m, images(3, seed=2))
        assert again.data_ptr() == first.data_ptr()  # the same memory, call after call
        assert torch.equal(again, m.embed(images(3, seed=2)))
        assert m.embed(images(3)).data_ptr() != first.data_ptr()  # the public one: fresh


def test_x0_is_fresh_where_dropout_or_autograd_act():
    m = build(emb_drop_rate=0.5).train()
    with torch.no_grad():
        a, b = embed_for_levels(m, images(2)), embed_for_levels(m, images(2))
    assert not torch.equal(a, b)  # dropout drew two masks into two tensors
    m.eval()
    x0 = embed_for_levels(m, images(2))
    assert x0.requires_grad and x0.grad_fn is not None


def test_the_kept_kernel_follows_the_weight():
    m = build().eval()
    x = images(2)
    with torch.inference_mode():
        before = m.embed(x)
    kernel = m.__dict__["_patch_kernel_kept"][True][1]
    with torch.no_grad():
        m.patch_embed.weight.mul_(2.0)  # in place: same storage, new version
    with torch.inference_mode():
        after = m.embed(x)
    # brought up to date in place: a CUDA graph captured on the kernel reads the new one
    assert m.__dict__["_patch_kernel_kept"][True][1] is kernel
    m2 = build().eval()
    with torch.no_grad():
        m2.patch_embed.weight.mul_(2.0)
        want = m2.embed(x)
    assert not torch.equal(before, after)
    assert torch.allclose(after, want, rtol=0, atol=1e-6)


def test_a_kernel_kept_under_inference_mode_does_not_stop_an_input_gradient():
    """Frozen weights, an input that wants its gradient (a saliency map): autograd must
    save the kernel, which it cannot do with one made under inference_mode."""
    m = build().eval().requires_grad_(False)
    with torch.inference_mode():
        m(images(2))
    x = images(2).requires_grad_(True)
    m(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_gradients_reach_the_patch_weight():
    m = build().eval()
    with torch.inference_mode():
        m(images(2))  # a kept kernel exists; training must not use it
    m(images(2)).sum().backward()
    assert m.patch_embed.weight.grad is not None and m.patch_embed.weight.grad.abs().sum() > 0


def test_pickles_leave_the_kept_kernel_behind():
    import pickle

    m = build().eval()
    with torch.no_grad():
        m(images(2))
    assert "_patch_kernel_kept" in m.__dict__
    assert "_patch_kernel_kept" not in pickle.loads(pickle.dumps(m)).__dict__
