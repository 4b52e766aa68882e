"""Para-Former model package: two executions of one function, counts, timm registry.

CPU only, tiny configurations (32x32 images, patch 8, D 64, H 2, dh 32, M 128).
"""

from __future__ import annotations

import copy

import paraformer
import pytest
import timm
import torch
from paraformer import ParaFormer, paraformer_flops, param_count, transformer_matmul_flops
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

TINY = {
    "img_size": 32,
    "patch_size": 8,
    "in_chans": 3,
    "num_classes": 10,
    "embed_dim": 64,
    "num_heads": 2,
    "head_dim": 32,
    "mlp_dim": 128,
    "drop_rate": 0.0,
    "attn_drop_rate": 0.0,
    "emb_drop_rate": 0.0,
}
RTOL = 2e-5  # float32, relative error in norm


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: one intra-op thread is faster and robust to a loaded machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def tiny(**over) -> dict:
    return {**TINY, **over}


def build(seed: int = 0, **over) -> ParaFormer:
    """A tiny model with every parameter perturbed (so branches and norms all differ)."""
    torch.manual_seed(seed)
    m = ParaFormer(**tiny(**over))
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return m.eval()


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


def images(batch: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, 32, 32, generator=g)


@pytest.mark.parametrize("patch", [8, (4, 8)])
def test_embedding_is_the_authors_linear_over_patches_in_p1_p2_c_order(patch):
    """The embedding runs as a strided convolution; it must stay the authors' function:
    cut into patches, flatten each as (p1 p2 c), Linear, CLS token, position embedding;
    and its gradient must reach the Linear's weight in that layout."""
    m = build(patch_size=patch)
    x = images(3)
    B, C, _, _ = x.shape
    (ph, pw), (gh, gw) = m.patch_size, m.grid_size
    patches = x.reshape(B, C, gh, ph, gw, pw).permute(0, 2, 4, 3, 5, 1).reshape(B, gh * gw, -1)
    want = torch.cat((m.cls_token.expand(B, -1, -1), m.patch_embed(patches)), 1) + m.pos_embed
    assert rel_err(m.embed(x), want) < 1e-6
    w = torch.randn_like(want)
    (m.embed(x) * w).sum().backward()
    got = m.patch_embed.weight.grad.clone()
    m.zero_grad()
    (want * w).sum().backward()
    assert rel_err(got, m.patch_embed.weight.grad) < 1e-5


def run_with_grads(model: ParaFormer, x: torch.Tensor, w: torch.Tensor):
    model.zero_grad(set_to_none=True)
    out = model(x)
    (out * w).sum().backward()
    return out.detach(), {n: p.grad.detach().clone() for n, p in model.named_parameters()}


def assert_executions_agree(fused: ParaFormer, x: torch.Tensor) -> None:
    """loop == fused (== least-work with a CLS head): outputs and every gradient, with
    autograd and (outputs) without it, where the fused executions use cached folded
    weights."""
    loop = copy.deepcopy(fused).set_execution("loop")
    assert fused.execution == "fused" and loop.execution == "loop"
    others = [fused]
    if fused.pool == "cls":
        others.append(copy.deepcopy(fused).set_execution("least-work"))
    w = torch.randn(x.shape[0], fused.num_classes, generator=torch.Generator().manual_seed(2))
    out_l, g_l = run_with_grads(loop, x, w)
    for other in others:
        out_o, g_o = run_with_grads(other, x, w)
        assert out_o.shape == (x.shape[0], fused.num_classes)
        assert rel_err(out_o, out_l) < RTOL, other.execution
        assert g_o.keys() == g_l.keys()
        for name in g_l:
            assert g_l[name].norm() > 0, name
            assert rel_err(g_o[name], g_l[name]) < RTOL, (other.execution, name)
        with torch.inference_mode():
            for _ in range(2):  # the second call reads the cached folded weights
                assert rel_err(other(x), out_l) < RTOL, other.execution


# -- the two executions compute one function ------------------------------------------------
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("depth", [1, 3])
@pytest.mark.parametrize("K", [1, 2, 5])
def test_loop_and_fused_agree(K, depth, batch):
    m = build(num_branches=K, branch_depth=depth, execution="fused")
    assert_executions_agree(m, images(batch))


@pytest.mark.parametrize("pool", ["cls", "mean"])
@pytest.mark.parametrize("residual", ["authors", "prenorm"])
@pytest.mark.parametrize("K, depth", [(3, 1), (3, 2), (1, 3)])
def test_loop_and_fused_agree_residual_pool(residual, pool, K, depth):
    m = build(num_branches=K, branch_depth=depth, residual=residual, pool=pool)
    assert_executions_agree(m, images(2))


@pytest.mark.parametrize("residual", ["authors", "prenorm"])
def test_cached_folded_weights_follow_parameter_changes_in_place(residual):
    """Inference reuses folded LayerNorm weights; an in-place update must not be missed,
    and the cache keeps its tensors (a CUDA graph captured on them stays valid) without
    ever writing into a parameter (with prenorm a cached bias is the parameter's value)."""
    m = build(num_branches=3, branch_depth=2, residual=residual)
    x = images(2)
    with torch.inference_mode():
        before = m(x)
    cached = {i: {n: t for n, t in blk._fold_cache[2].items() if t is not None}
              for i, blk in enumerate(m.blocks)}
    with torch.no_grad():
        m.blocks[0].norm1.weight.mul_(1.5)  # what an optimizer step or load_state_dict does
        m.blocks[1].fc1.bias.add_(0.3)
        m.blocks[1].fc2.bias.add_(0.2)
    params = {n: p.detach().clone() for n, p in m.named_parameters()}
    with torch.inference_mode():
        after = m(x)
        want = copy.deepcopy(m).set_execution("loop")(x)
    assert rel_err(after, want) < RTOL
    assert rel_err(after, before) > 1e-3
    for n, p in m.named_parameters():
        assert torch.equal(p, params[n]), n
    for i, blk in enumerate(m.blocks):
        for n, t in cached[i].items():
            assert blk._fold_cache[2][n] is t, (i, n)

    old_bias = m.blocks[1].fc2.bias  # replaced, not updated: an optimizer may still hold it
    kept = old_bias.detach().clone()
    m.blocks[1].fc2.bias = torch.nn.Parameter(old_bias.detach() - 0.4)
    with torch.inference_mode():
        assert rel_err(m(x), copy.deepcopy(m).set_execution("loop")(x)) < RTOL
    assert torch.equal(old_bias, kept)


def test_input_gradients_after_inference_mode_forward():
    """A frozen model evaluated under inference mode, then asked for input gradients (a
    saliency map): folded weights made under inference mode cannot be saved for
    backward, so they are made again, and the gradient equals the loop's."""
    m = build(num_branches=3, branch_depth=2).requires_grad_(False)
    x = images(2)
    with torch.inference_mode():
        m(x)
    grads = []
    for model in (m, copy.deepcopy(m).set_execution("loop")):
        xg = x.clone().requires_grad_(True)
        model(xg).square().sum().backward()
        grads.append(xg.grad)
    assert grads[0].norm() > 0 and rel_err(grads[0], grads[1]) < RTOL


@pytest.mark.parametrize("execution", ["fused", "fused-2pass", "least-work"])
def test_a_model_built_under_inference_mode_runs_and_follows_its_weights(execution):
    """Parameters made under inference_mode have no version counter: such a model must
    run (not raise on keying its folded weights), match the loop, and follow weights
    changed in place inside the mode."""
    x = images(2)
    with torch.inference_mode():
        m = build(num_branches=3, branch_depth=2, execution=execution).eval()
        loop = build(num_branches=3, branch_depth=2, execution="loop").eval()
        assert rel_err(m(x), loop(x)) < RTOL
        for model in (m, loop):
            model.blocks[0].fc1.weight.mul_(1.5)
            model.norm.bias.add_(0.25)
        assert rel_err(m(x), loop(x)) < RTOL


def _compile_capturing(model):
    """torch.compile with a backend that keeps Dynamo's graphs (and runs them as traced)."""
    graphs = []

    def backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    torch._dynamo.reset()
    return torch.compile(model, backend=backend, dynamic=False), graphs


@pytest.mark.parametrize("execution", ["fused", "least-work"])
def test_compiled_inference_reads_the_fold_cache(execution):
    """Inside torch.compile the folded weights come from the cache, brought up to date
    eagerly before the graph: qkv's and fc1's weights (used only to fold) are not read
    by the graph, the whole forward is one graph, and an in-place parameter update is
    followed without a recompile."""
    m = build(num_branches=3, branch_depth=2, execution=execution)
    x = images(2)
    compiled, graphs = _compile_capturing(m)
    with torch.inference_mode():
        first = compiled(x)
        assert rel_err(first, m(x)) < RTOL
    assert len(graphs) == 1
    inputs = [n.name for n in graphs[0].graph.nodes if n.op == "placeholder"]
    assert any("fold_cache" in n for n in inputs)
    assert not [n for n in inputs if "qkv" in n or ("fc1" in n and "fold_cache" not in n)]
    with torch.no_grad():
        m.blocks[0].norm1.weight.mul_(1.5)
        m.blocks[1].fc1.weight.mul_(0.5)
    with torch.inference_mode():
        assert rel_err(compiled(x), copy.deepcopy(m).set_execution("loop")(x)) < RTOL
    assert len(graphs) == 1


def test_compiled_training_folds_in_the_graph():
    """With autograd the fold stays in the compiled graph, so gradients reach the
    original parameters as in the loop."""
    m = build(num_branches=2, branch_depth=2)
    x = images(2)
    w = torch.randn(2, m.num_classes, generator=torch.Generator().manual_seed(2))
    compiled, _ = _compile_capturing(m)
    loop = copy.deepcopy(m).set_execution("loop")
    out_c, g_c = run_with_grads(compiled, x, w)
    out_l, g_l = run_with_grads(loop, x, w)
    g_c = {name.removeprefix("_orig_mod."): g for name, g in g_c.items()}
    assert rel_err(out_c, out_l) < RTOL
    assert g_c.keys() == g_l.keys()
    for name in g_l:
        assert rel_err(g_c[name], g_l[name]) < RTOL, name


def test_first_level_attends_over_batch_sequences_of_k_times_h_heads(monkeypatch):
    """B sequences of K*H heads at the shared first level (no K*B launch limit there);
    K*B sequences of H heads deeper."""
    shapes = []
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def spy(q, k, v, **kw):
        shapes.append((tuple(q.shape), tuple(k.shape)))
        return sdpa(q, k, v, **kw)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    m = build(num_branches=5, branch_depth=2)
    with torch.no_grad():
        m(images(3))
        m.set_execution("least-work")(images(3))
    N = m.num_tokens
    assert shapes == [((3, 10, N, 32), (3, 10, N, 32)), ((15, 2, N, 32), (15, 2, N, 32)),
                      ((3, 10, N, 32), (3, 10, N, 32)), ((15, 2, 1, 32), (15, 2, N, 32))]


def test_attention_split_below_the_launch_limit_computes_the_same(monkeypatch):
    from paraformer import fused

    m = build(num_branches=4, branch_depth=2, residual="prenorm")
    x = images(3)
    with torch.no_grad():
        whole = m(x)
        monkeypatch.setattr(fused, "MAX_ATTENTION_BATCH", 5)  # 12 sequences -> 3 calls
        split = m(x)
        loop = copy.deepcopy(m).set_execution("loop")(x)
    assert rel_err(split, loop) < RTOL and rel_err(whole, loop) < RTOL


def test_least_work_needs_a_cls_head():
    with pytest.raises(ValueError, match="execution='least-work' needs pool='cls'.*'mean'"):
        ParaFormer(**tiny(pool="mean", execution="least-work"))
    m = build(num_branches=2, branch_depth=1, pool="mean")
    with pytest.raises(ValueError, match="pool='cls'"):
        m.set_execution("least-work")
    assert m.execution == "fused"


def test_least_work_features_are_the_cls_token():
    m = build(num_branches=3, branch_depth=2)
    x = images(2)
    with torch.no_grad():
        full = m.forward_features(x)
        cls = m.set_execution("least-work").forward_features(x)
        assert cls.shape == (2, 1, 64)
        assert rel_err(cls[:, 0], full[:, 0]) < RTOL
        assert rel_err(m.forward_head(cls), m(x)) < RTOL


def test_forward_features_and_head_compose():
    for execution in ("fused", "loop"):
        m = build(num_branches=3, branch_depth=2, pool="mean", execution=execution)
        x = images(2)
        y = m.forward_features(x)
        assert y.shape == (2, m.num_tokens, 64)
        assert rel_err(m.forward_head(y), m(x)) < RTOL
        assert m.forward_head(y, pre_logits=True).shape == (2, 64)


def _reference_block(blk, x: torch.Tensor, residual: str) -> torch.Tensor:
    """Branch 0 of a ParallelBlock written out by hand (B=2, N=5, D=64, H=2, dh=32)."""
    F = torch.nn.functional

    def ln(norm, t):
        return F.layer_norm(t, (64,), norm.weight[0], norm.bias[0])

    def attn(u):
        q, k, v = (u @ blk.qkv.weight[0]).view(2, 5, 3, 2, 32).permute(2, 0, 3, 1, 4)
        a = torch.softmax(q @ k.transpose(-1, -2) * 32**-0.5, -1) @ v
        return a.transpose(1, 2).reshape(2, 5, 64) @ blk.proj.weight[0] + blk.proj.bias[0]

    def ffn(u):
        hid = F.gelu(u @ blk.fc1.weight[0] + blk.fc1.bias[0])
        return hid @ blk.fc2.weight[0] + blk.fc2.bias[0]

    if residual == "authors":  # x = f(LN(x)), f(u) = Attn(u) + u; then the same with FFN
        h = ln(blk.norm1, x)
        y = attn(h) + h
        h = ln(blk.norm2, y)
        return ffn(h) + h
    y = x + attn(ln(blk.norm1, x))
    return y + ffn(ln(blk.norm2, y))


def test_residual_modes_differ_and_match_definition():
    """'authors' adds the normalised input, 'prenorm' the block input (one block by hand)."""
    torch.manual_seed(0)
    x = torch.randn(2, 5, 64)
    outs = {}
    for residual in ("authors", "prenorm"):
        blk = build(num_branches=1, branch_depth=1, residual=residual).blocks[0]
        with torch.no_grad():
            want = _reference_block(blk, x, residual)
            got_f = blk.forward_fused(x)[0]
            got_l = blk.forward_branch(x, 0)
        assert rel_err(got_f, want) < 1e-5
        assert rel_err(got_l, want) < 1e-5
        outs[residual] = got_f
    assert rel_err(outs["authors"], outs["prenorm"]) > 1e-2


def test_branches_are_summed_plainly():
    """y = sum_k Branch_k(x0): no 1/K, no gating."""
    m = build(num_branches=4, branch_depth=2)
    with torch.no_grad():
        x0 = m.embed(images(2))
        z = m.forward_branches(x0)
        each = torch.stack([m.forward_branch(x0, k) for k in range(4)])
        assert rel_err(z, each) < RTOL
        assert rel_err(m.forward_features(images(2)), each.sum(0)) < RTOL


def test_training_mode_with_dropout_runs_every_execution():
    for execution in ("fused", "loop", "least-work"):
        m = ParaFormer(
            **tiny(
                num_branches=3,
                branch_depth=2,
                drop_rate=0.1,
                attn_drop_rate=0.1,
                emb_drop_rate=0.1,
                execution=execution,
            )
        ).train()
        out = m(images(2))
        out.sum().backward()
        assert torch.isfinite(out).all()
        assert all(p.grad is not None for p in m.parameters())


@pytest.mark.parametrize("residual", ["authors", "prenorm"])
def test_dropout_paths_compute_the_same_function(monkeypatch, residual):
    """Training with dropout takes other paths (bias inside the dropped projection, no
    accumulator fold); with a dropout that keeps everything they must still agree."""
    monkeypatch.setattr(torch.nn.functional, "dropout", lambda x, p=0.5, training=True,
                        inplace=False: x)
    m = build(num_branches=3, branch_depth=2, residual=residual, drop_rate=0.2,
              emb_drop_rate=0.2).train()
    assert_executions_agree(m, images(2))


@pytest.mark.parametrize("execution", ["fused", "least-work"])
def test_state_dict_moves_between_executions(execution):
    loop = build(seed=3, num_branches=4, branch_depth=2, execution="loop")
    other = ParaFormer(**tiny(num_branches=4, branch_depth=2, execution=execution)).eval()
    with torch.no_grad():
        other(images(3))  # fills the folded-weight cache, which must not leak into state
    other.load_state_dict(loop.state_dict())
    x = images(3)
    with torch.no_grad():
        assert rel_err(other(x), loop(x)) < RTOL
    assert {k: v.shape for k, v in loop.state_dict().items()} == {
        k: v.shape for k, v in other.state_dict().items()}


# -- counts -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "over",
    [
        {},
        {"num_branches": 1, "branch_depth": 1},
        {"num_branches": 5, "branch_depth": 3, "num_classes": 0},
        {"img_size": (32, 48), "patch_size": (8, 16), "in_chans": 1, "mlp_dim": 96, "head_dim": 16},
    ],
)
def test_param_count_matches_analytic(over):
    kw = tiny(**over)
    m = ParaFormer(**kw)
    assert sum(p.numel() for p in m.parameters()) == param_count(**kw) == param_count(**m.config)


def test_authors_default_param_count():
    m = ParaFormer()
    assert sum(p.numel() for p in m.parameters()) == param_count()


def _timm_vit(K, **kw):
    return timm.create_model(
        "vit_small_patch16_224",
        pretrained=False,
        depth=K,
        embed_dim=64,
        num_heads=2,
        mlp_ratio=128 / 64,
        img_size=32,
        patch_size=8,
        num_classes=10,
        **kw,
    )


@pytest.mark.parametrize("K", [1, 4])
def test_params_equal_serial_timm_vit_up_to_qkv_bias(K):
    """K branches of depth 1 vs timm ViT of depth K at equal width.

    Same tensors up to layout: conv patch embed (D*C*p*p + D) vs Linear(p*p*C -> D),
    CLS, positions (1, N+1, D), per block 2 LayerNorms + qkv + proj + fc1 + fc2,
    final LayerNorm + head. The only difference: timm's qkv bias (3*H*dh per block).
    """
    pf = sum(p.numel() for p in ParaFormer(**tiny(num_branches=K, branch_depth=1)).parameters())
    vit_bias = sum(p.numel() for p in _timm_vit(K).parameters())
    vit_nobias = sum(p.numel() for p in _timm_vit(K, qkv_bias=False).parameters())
    assert vit_nobias == pf
    assert vit_bias - pf == K * 3 * 2 * 32


def _counted_flops(model, x) -> int:
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as fc:
        model(x)
    return fc.get_total_flops()


@pytest.mark.parametrize("execution", ["fused", "loop", "least-work"])
@pytest.mark.parametrize(
    "over",
    [
        {"num_branches": 3, "branch_depth": 2},
        {"num_branches": 1, "branch_depth": 1},
        {"num_branches": 4, "branch_depth": 1, "residual": "prenorm"},
    ],
)
def test_flop_counter_matches_analytic(execution, over):
    kw = tiny(**over, execution=execution)
    assert _counted_flops(ParaFormer(**kw), images(2)) == 2 * paraformer_flops(**kw)


def test_flop_counter_mean_pool_matches_analytic():
    kw = tiny(num_branches=2, branch_depth=1, pool="mean")
    assert _counted_flops(ParaFormer(**kw), images(2)) == 2 * paraformer_flops(**kw)


def test_least_work_cuts_a_vit_s_branch_about_six_fold():
    """At ViT-S width (197 tokens, D 384): 757 MFLOP per full block, 119.4 for the last."""
    full = transformer_matmul_flops(197, 384, 6, 64, 1536, 1, 0, 0)
    last = paraformer.least_work_block_flops(197, 384, 6, 64, 1536)
    assert (full, last) == (756_782_592, 119_447_040)
    vit_s = {"embed_dim": 384, "num_heads": 6, "head_dim": 64, "mlp_dim": 1536}
    k12 = {**vit_s, "num_branches": 12, "branch_depth": 1}
    ratio = paraformer_flops(**k12) / paraformer_flops(**k12, execution="least-work")
    assert 5.5 < ratio < 6.0


def test_serial_vit_flops_equal():
    """The serial twin (timm ViT, depth K) has the same matmul FLOPs as K branches of depth 1."""
    K = 4
    x = images(2)
    want = 2 * transformer_matmul_flops(17, 64, 2, 32, 128, K, 8 * 8 * 3, 10)
    assert _counted_flops(_timm_vit(K, qkv_bias=False), x) == want
    assert want == 2 * paraformer_flops(**tiny(num_branches=K, branch_depth=1))


# -- fused is one pass ----------------------------------------------------------------------
def _aten_op_count(model, x) -> int:
    with torch.no_grad():
        model(x)  # warm-up outside the profile
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            model(x)
    return sum(1 for e in prof.events() if e.name.startswith("aten::"))


def test_fused_operator_count_independent_of_K():
    x = images(1)
    fused = {K: _aten_op_count(build(num_branches=K, branch_depth=2), x) for K in (1, 8, 16)}
    loop = {
        K: _aten_op_count(build(num_branches=K, branch_depth=1, execution="loop"), x)
        for K in (1, 8, 16)
    }
    assert fused[1] == fused[8] == fused[16], fused
    # loop: a fixed number of operators per branch (plus one add per extra branch)
    assert loop[1] < loop[8] < loop[16], loop
    assert 7 * (loop[16] - loop[8]) == 8 * (loop[8] - loop[1]), loop


# -- timm registry --------------------------------------------------------------------------
def test_timm_registry_lists_variants():
    names = timm.list_models("paraformer*")
    assert {"paraformer_tiny_patch16_224", "paraformer_small_patch16_224"} <= set(names)


def test_timm_create_model_defaults():
    m = timm.create_model("paraformer_tiny_patch16_224")
    c = m.config
    assert (c["embed_dim"], c["num_heads"], c["head_dim"], c["mlp_dim"]) == (192, 3, 64, 768)
    assert (c["num_branches"], c["branch_depth"], c["patch_size"], c["img_size"]) == (
        8,
        2,
        (16, 16),
        (224, 224),
    )
    assert (c["residual"], c["pool"], c["drop_rate"], c["emb_drop_rate"]) == (
        "authors",
        "cls",
        0.1,
        0.1,
    )
    s = timm.create_model("paraformer_small_patch16_224", num_branches=2, branch_depth=1)
    assert (s.embed_dim, s.num_heads, s.head_dim, s.mlp_dim) == (384, 6, 64, 1536)
    assert s.pretrained_cfg["input_size"] == (3, 224, 224)


def test_timm_create_model_overrides():
    m = timm.create_model(
        "paraformer_small_patch16_224",
        num_branches=5,
        branch_depth=1,
        img_size=32,
        patch_size=8,
        num_classes=7,
        execution="loop",
    ).eval()
    assert isinstance(m, ParaFormer)
    assert (m.num_branches, m.branch_depth, m.execution, m.num_classes) == (5, 1, "loop", 7)
    assert m.blocks[0].qkv.weight.shape == (5, 384, 3 * 6 * 64)
    assert len(m.blocks) == 1
    with torch.no_grad():
        assert m(images(2)).shape == (2, 7)
    assert sum(p.numel() for p in m.parameters()) == param_count(**m.config)


def test_timm_pretrained_raises():
    with pytest.raises(ValueError, match="pretrained"):
        timm.create_model("paraformer_tiny_patch16_224", pretrained=True)


# -- validation ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "bad, name",
    [
        ({"num_branches": 0}, "num_branches"),
        ({"num_branches": -2}, "num_branches"),
        ({"branch_depth": 0}, "branch_depth"),
        ({"img_size": 30}, "img_size"),
        ({"img_size": (32, 36)}, "img_size"),
        ({"embed_dim": 63}, "embed_dim"),
        ({"num_heads": 3}, "num_heads"),
        ({"execution": "parallel"}, "execution"),
        ({"residual": "postnorm"}, "residual"),
        ({"pool": "max"}, "pool"),
        ({"drop_rate": -0.1}, "drop_rate"),
        ({"attn_drop_rate": -0.5}, "attn_drop_rate"),
        ({"emb_drop_rate": -1.0}, "emb_drop_rate"),
        ({"drop_rate": 1.0}, "drop_rate"),
        ({"num_classes": -1}, "num_classes"),
        ({"head_dim": 0}, "head_dim"),
        ({"mlp_dim": 0}, "mlp_dim"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(bad, name):
    with pytest.raises(ValueError, match=name):
        ParaFormer(**tiny(**bad))


def test_set_execution_validates():
    m = build(num_branches=2, branch_depth=1)
    with pytest.raises(ValueError, match="execution"):
        m.set_execution("gpu")
    assert m.set_execution("loop") is m and m.execution == "loop"


def test_package_exports():
    for name in paraformer.__all__:
        assert hasattr(paraformer, name), name


# -- on a GPU -----------------------------------------------------------------------------
_CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.gpu
@_CUDA
@pytest.mark.parametrize("residual", ["authors", "prenorm"])
def test_gpu_bf16_executions_agree_with_flash_attention(residual):
    """loop == fused == least-work on CUDA in bf16, attention on the flash kernel."""
    m = build(num_branches=8, branch_depth=2, residual=residual).to("cuda", torch.bfloat16)
    x = images(4).to("cuda", torch.bfloat16)
    with torch.inference_mode(), sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        want = m.set_execution("loop")(x).float()
        for execution in ("fused", "least-work"):
            got = m.set_execution(execution)(x).float()
            assert rel_err(got, want) < 3e-2, execution  # bf16: 8 bits of mantissa


@pytest.mark.gpu
@_CUDA
def test_gpu_more_than_65535_branch_sequences_launch():
    """K*B above FlashAttention's grid limit: 48 branches x batch 1400 = 67200 sequences.
    The shared first level attends over B sequences of K*H heads; the deeper level in
    chunks. Both must launch and agree with the loop."""
    m = build(num_branches=48, branch_depth=2).to("cuda", torch.bfloat16)
    x = torch.randn(1400, 3, 32, 32, device="cuda", dtype=torch.bfloat16)
    with torch.inference_mode(), sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        fused = m.set_execution("fused")(x).float()
        loop = m.set_execution("loop")(x).float()
    assert torch.isfinite(fused).all()
    assert rel_err(fused, loop) < 5e-2  # bf16, 48 branch outputs summed in another order
