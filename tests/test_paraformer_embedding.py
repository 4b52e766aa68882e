"""The patch embedding's kept parts (paraformer.embedding): the contiguous conv kernel,
kept until the weight changes, and x0 written into the fused levels' workspace by one
GEMM over the patches.

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
        assert close(first, m.embed(images(3)))
        again = embed_for_levels(m, images(3, seed=2))
        assert again.data_ptr() == first.data_ptr()  # the same memory, call after call
        assert close(again, m.embed(images(3, seed=2)))
        assert m.embed(images(3)).data_ptr() != first.data_ptr()  # the public one: fresh


@pytest.mark.parametrize("patch", [8, (4, 8)])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "strided"])
def test_x0_for_the_levels_is_the_authors_linear_over_patches(patch, layout):
    """The GEMM's patch rows are in the kernel's (c p1 p2) order, not the authors'
    (p1 p2 c): the result must still be their Linear over their patches, whatever the
    image's memory layout, and a smaller batch after a larger one must read its own."""
    m = build(patch_size=patch).eval()
    for batch in (3, 1):
        x = images(batch)
        if layout == "channels_last":
            x = x.contiguous(memory_format=torch.channels_last)
        elif layout == "strided":
            x = torch.cat((x, x), dim=3)[..., ::2]  # every other column of a wider image
        B, C, _, _ = x.shape
        (ph, pw), (gh, gw) = m.patch_size, m.grid_size
        patches = x.reshape(B, C, gh, ph, gw, pw).permute(0, 2, 4, 3, 5, 1).reshape(B, gh * gw, -1)
        with torch.no_grad():
            want = torch.cat((m.cls_token.expand(B, -1, -1), m.patch_embed(patches)), 1) + m.pos_embed
            assert close(embed_for_levels(m, x), want)


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


def close(a: torch.Tensor, b: torch.Tensor) -> bool:
    # a GEMM and a convolution sum in different orders: equal up to fp32 rounding
    return torch.allclose(a, b, rtol=1e-5, atol=1e-5)
