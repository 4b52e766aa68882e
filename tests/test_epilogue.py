"""fc1's bias + exact GELU in one pass (paraformer.epilogue).

The kernel is Triton; on this CPU it runs through Triton's interpreter
(``TRITON_INTERPRET=1``, read when the kernel is defined, so in a subprocess). The
``gpu`` test runs the compiled kernel inside the fused execution on CUDA.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from paraformer import ParaFormer
from paraformer import epilogue as ep

MODELS = Path(__file__).resolve().parents[1] / "models"
TINY = dict(img_size=32, patch_size=8, num_classes=10, embed_dim=64, num_heads=2,
            head_dim=32, mlp_dim=128, drop_rate=0.0, attn_drop_rate=0.0, emb_drop_rate=0.0)


def _run(script: str, **env: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(MODELS), **env}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.skipif(ep.triton is None, reason="Triton is not installed")
def test_kernel_equals_bias_plus_exact_gelu_in_the_interpreter():
    out = _run("""
        import torch, torch.nn.functional as F
        from paraformer.epilogue import bias_gelu_
        g = torch.Generator().manual_seed(0)
        # widths around the 512-column block, K > 1 with distinct biases per branch
        for K, R, M, dt in [(1, 1, 1, torch.float32), (3, 7, 130, torch.float32),
                            (2, 1, 512, torch.float32), (4, 3, 1025, torch.float32),
                            (2, 0, 8, torch.float32),
                            (2, 5, 1500, torch.bfloat16), (3, 2, 700, torch.float16)]:
            h = (torch.randn(K, R, M, generator=g) * 3).to(dt)
            b = torch.randn(K, M, generator=g).to(dt)
            want = F.gelu(h.float() + b.float()[:, None])  # exact (erf) GELU, float32
            got = bias_gelu_(h, b)
            assert got.data_ptr() == h.data_ptr() and got.dtype == dt  # in place
            if h.numel() == 0:  # an empty batch launches nothing
                continue
            ulp = {torch.float32: 2e-6, torch.bfloat16: 2**-7, torch.float16: 2**-10}[dt]
            err = ((got.float() - want).abs() / want.abs().clamp_min(1.0)).max().item()
            assert err <= ulp, (K, R, M, dt, err)
            tanh = F.gelu(h.float() + b.float()[:, None], approximate="tanh")
            if dt == torch.float32 and M > 1:  # tells erf from tanh GELU apart
                assert (got - tanh).abs().max() > 1e-5
        try:
            bias_gelu_(torch.zeros(2, 3, 4), torch.zeros(4))
        except ValueError as e:
            print("refused:", e)
        print("ok")
    """, TRITON_INTERPRET="1")
    assert out.splitlines()[-1] == "ok"
    assert "refused: bias_gelu_: needs a contiguous h [K, rows, M] and bias [K, M]" in out


@pytest.mark.skipif(ep.triton is None, reason="Triton is not installed")
@pytest.mark.parametrize("residual", ["authors", "prenorm"])
def test_fused_execution_through_the_kernel_equals_the_loop(residual):
    """The fused level routed through bmm + the kernel (forced on CPU, interpreted)
    computes what the loop execution does, for several K and depths."""
    out = _run(f"""
        import copy, torch
        import paraformer.fused as fused
        from paraformer import ParaFormer
        torch.set_num_threads(1)
        calls = []
        real = fused.bias_gelu_
        fused.one_pass_available = lambda *t: True
        fused.bias_gelu_ = lambda h, b: calls.append(tuple(h.shape)) or real(h, b)
        for K, depth, batch in [(1, 1, 1), (3, 2, 2), (4, 1, 3)]:
            torch.manual_seed(K)
            m = ParaFormer(**{TINY!r}, num_branches=K, branch_depth=depth,
                           residual={residual!r}, execution="fused").eval()
            with torch.no_grad():
                for p in m.parameters():
                    p.add_(0.1 * torch.randn_like(p))
            loop = copy.deepcopy(m).set_execution("loop")
            x = torch.randn(batch, 3, 32, 32)
            before = len(calls)
            with torch.inference_mode():
                got, want = m(x), loop(x)
            assert len(calls) - before == depth, (calls, depth)  # one kernel per level
            err = ((got - want).norm() / want.norm()).item()
            assert err < 2e-5, (K, depth, batch, err)
        print("ok", calls)
    """, TRITON_INTERPRET="1")
    assert out.startswith("ok")


def test_the_kernel_is_for_cuda_inference_only():
    x = torch.randn(2, 3, 4)
    w = torch.randn(2, 4, 5, requires_grad=True)
    assert not ep.one_pass_available(x, w.detach())  # CPU keeps baddbmm + GELU
    if torch.cuda.is_available() and ep.triton is not None:
        xc, wc = x.cuda(), w.detach().cuda()
        assert ep.one_pass_available(xc, wc)
        assert not ep.one_pass_available(xc, wc.requires_grad_())  # autograd records
        with torch.no_grad():
            assert ep.one_pass_available(xc, wc)


def test_models_work_without_triton():
    """A CPU-only install may lack Triton: the package imports and the fused execution
    runs with baddbmm + GELU."""
    out = _run(f"""
        import sys, importlib.abc
        import torch  # torch probes for triton itself; hide it from the models only
        class NoTriton(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "triton" or name.startswith("triton."):
                    raise ImportError("no triton here")
        for name in [n for n in sys.modules if n == "triton" or n.startswith("triton.")]:
            del sys.modules[name]
        sys.meta_path.insert(0, NoTriton())
        from paraformer import ParaFormer, epilogue
        assert epilogue.triton is None
        m = ParaFormer(**{TINY!r}, num_branches=2, branch_depth=1, execution="fused").eval()
        with torch.inference_mode():
            print("ok", tuple(m(torch.randn(1, 3, 32, 32)).shape))
    """)
    assert out.strip() == "ok (1, 10)"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cuda_fused_inference_runs_the_kernel_and_equals_the_loop(monkeypatch, dtype):
    import copy

    import paraformer.fused as fused

    calls = []
    real = fused.bias_gelu_
    monkeypatch.setattr(fused, "bias_gelu_", lambda h, b: calls.append(h.shape) or real(h, b))
    torch.manual_seed(0)
    m = ParaFormer(**TINY, num_branches=4, branch_depth=2, execution="fused")
    m = m.to("cuda", dtype).eval()
    loop = copy.deepcopy(m).set_execution("loop")
    x = torch.randn(3, 3, 32, 32, device="cuda", dtype=dtype)
    with torch.inference_mode():
        got, want = m(x).float(), loop(x).float()
    assert len(calls) == 2
    tol = 2e-5 if dtype == torch.float32 else 3e-2
    assert ((got - want).norm() / want.norm()).item() < tol


def test_fused_2pass_is_chosen_per_model_instance(monkeypatch):
    """Two models side by side: "fused" takes the one-pass epilogue wherever it is
    available, "fused-2pass" never does, and both compute the same function. (On a CPU
    the kernel is never available; here it is made available with an eager stand-in.)"""
    import paraformer.fused as fused_mod

    calls = []

    def stand_in(h, bias):
        calls.append(h.shape)
        return torch.nn.functional.gelu(h + bias.unsqueeze(1))

    monkeypatch.setattr(fused_mod, "one_pass_available", lambda *t: True)
    monkeypatch.setattr(fused_mod, "bias_gelu_", stand_in)
    kw = dict(img_size=32, patch_size=8, num_classes=10, embed_dim=64, num_heads=2,
              head_dim=32, mlp_dim=128, num_branches=3, branch_depth=2)
    torch.manual_seed(0)
    one = ParaFormer(**kw, execution="fused").eval()
    two = ParaFormer(**kw, execution="fused-2pass").eval()
    two.load_state_dict(one.state_dict())
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        y2 = two(x)
        assert calls == []  # the 2-pass model never took the kernel
        y1 = one(x)
    assert len(calls) == 2  # one per level of the fused model
    torch.testing.assert_close(y1, y2, rtol=1e-5, atol=1e-5)
    assert two.set_execution("fused").blocks[0].one_pass_epilogue
