"""The fused execution's branch groups (paraformer.groups): the same function at every
group size, and the rule that picks one.

CPU only, tiny configurations (those of test_paraformer).
"""

from __future__ import annotations

import copy

import paraformer.groups as groups
import pytest
import torch
from paraformer import ParaFormer
from test_paraformer import (  # noqa: F401  (_one_thread: its autouse fixture, here too)
    RTOL,
    _one_thread,
    build,
    images,
    rel_err,
    run_with_grads,
)

K = 5  # groups of 2 and 3 leave a smaller last group


def _at(model: ParaFormer, execution: str, group: int | None) -> ParaFormer:
    m = copy.deepcopy(model).set_execution(execution)
    m.branch_group = group
    return m


@pytest.mark.parametrize("pool", ["cls", "mean"])
@pytest.mark.parametrize("residual", ["authors", "prenorm"])
@pytest.mark.parametrize("depth", [1, 2])
def test_every_group_size_computes_the_loop_function(depth, residual, pool):
    """G = 1..K (and above K, capped), dividing K or not: outputs equal the loop's, for
    fused and (CLS head) least-work, without autograd (cached folds, in-place GELU)."""
    m = build(num_branches=K, branch_depth=depth, residual=residual, pool=pool)
    x = images(3)
    execs = ["fused", "least-work"] if pool == "cls" else ["fused"]
    models = {(e, g): _at(m, e, g) for e in execs for g in range(1, K + 2)}
    loop = _at(m, "loop", None)
    with torch.inference_mode():
        want = loop(x)
        for key, model in models.items():
            for _ in range(2):  # the second call reads the fold cache
                assert rel_err(model(x), want) < RTOL, key


@pytest.mark.parametrize("execution", ["fused", "least-work"])
@pytest.mark.parametrize("group", [1, 2, 3])
def test_group_gradients_equal_the_loop(group, execution):
    m = build(num_branches=K, branch_depth=2)
    x = images(2)
    w = torch.randn(2, m.num_classes, generator=torch.Generator().manual_seed(2))
    out_l, g_l = run_with_grads(_at(m, "loop", None), x, w)
    out_g, g_g = run_with_grads(_at(m, execution, group), x, w)
    assert rel_err(out_g, out_l) < RTOL
    for name in g_l:
        assert g_l[name].norm() > 0, name
        assert rel_err(g_g[name], g_l[name]) < RTOL, name


def test_branch_outputs_and_features_concatenate_over_groups():
    m = build(num_branches=K, branch_depth=2)
    x = images(2)
    whole, parts = _at(m, "fused", K), _at(m, "fused", 2)
    with torch.inference_mode():
        x0 = m.embed(x)
        for cls_only in (False, True):
            a, b = whole.forward_branches(x0, cls_only), parts.forward_branches(x0, cls_only)
            assert a.shape == b.shape and a.shape[0] == K
            assert rel_err(b, a) < RTOL
        assert rel_err(parts.forward_features(x), whole.forward_features(x)) < RTOL


def test_fold_cache_follows_parameter_changes_with_groups():
    m = build(num_branches=K, branch_depth=2, branch_group=2)
    x = images(2)
    with torch.inference_mode():
        m(x)
    with torch.no_grad():
        m.blocks[0].qkv.weight.mul_(1.3)  # the shared level's grouped columns
        m.blocks[1].norm2.weight.mul_(0.7)
    loop = _at(m, "loop", None)
    with torch.inference_mode():
        assert rel_err(m(x), loop(x)) < RTOL


def test_compiled_grouped_forward_is_one_graph():
    """G is a Python int from shapes: the grouped forward compiles to one graph that
    reads the fold cache, and computes the loop's function."""
    from test_paraformer import _compile_capturing

    m = build(num_branches=K, branch_depth=2, branch_group=2)
    x = images(2)
    compiled, graphs = _compile_capturing(m)
    loop = _at(m, "loop", None)
    with torch.inference_mode():
        assert rel_err(compiled(x), loop(x)) < RTOL
    assert len(graphs) == 1


def test_the_rule_fills_the_budget_and_stays_within_one_and_k():
    assert groups.choose_group(12, 10, 35) == 3
    assert groups.choose_group(12, 10, 9) == 1  # one branch beyond the budget: the loop's
    assert groups.choose_group(12, 10, 10**6) == 12
    assert groups.choose_group(1, 10**9, 1) == 1
    assert groups.choose_group(24, 10, 130) == 12  # two groups either way: evened out
    assert groups.choose_group(12, 10, 50) == 4  # room for 5: three groups of 4


def test_the_default_budget_runs_two_vit_s_branches_at_batch_8_on_32_mib(monkeypatch):
    """Five eighths of a 32 MiB cache (20 MiB) holds two of ViT-S's 9.7 MB branches at
    batch 8 (measured faster than one at a time), never three (29 MB, measured slower)."""
    monkeypatch.setattr(groups, "CACHE_BYTES", 32 * 2**20)
    m = ParaFormer(embed_dim=384, num_heads=6, head_dim=64, mlp_dim=1536, num_branches=12,
                   branch_depth=1, device="meta")
    plan = m.branch_plan(8, torch.float32, torch.device("cpu"))
    assert plan["fused_group"] == 2 and plan["fused_budget_bytes"] == 20 * 2**20


def test_plan_at_vit_s_width_shrinks_the_group_with_the_batch(monkeypatch):
    """ViT-S width (N 197, M 1536, float32): one branch's FFN intermediate is 1.21 MB per
    image; against a 16 MiB budget batch 1 runs all 12 branches at once, batch 8 (9.7 MB
    a branch) one at a time."""
    monkeypatch.setattr(groups, "CACHE_BYTES", 32 * 2**20)
    monkeypatch.setattr(groups, "CACHE_FRACTION", 0.5)
    m = ParaFormer(embed_dim=384, num_heads=6, head_dim=64, mlp_dim=1536, num_branches=12,
                   branch_depth=1, device="meta")
    cpu = torch.device("cpu")
    one = m.branch_plan(1, torch.float32, cpu)
    assert one["fused_branch_bytes"] == 197 * 1536 * 4
    assert one["fused_budget_bytes"] == 16 * 2**20 and one["fused_group"] == 12
    assert m.branch_plan(8, torch.float32, cpu)["fused_group"] == 1
    assert m.branch_plan(2, torch.float32, cpu)["fused_group"] == 6
    assert m.branch_plan(2, torch.bfloat16, cpu)["fused_group"] == 12
    # least-work with one level: its FFN is the CLS row's, k|v (2*H*dh) is the largest
    lw = m.set_execution("least-work").branch_plan(8, torch.float32, cpu)
    assert lw["fused_branch_bytes"] == 8 * 197 * 768 * 4 and lw["fused_group"] == 3
    m.branch_group = 5
    assert m.branch_plan(8, torch.float32, cpu)["fused_group_rule"] == "branch_group"
    assert m.branch_plan(8, torch.float32, cpu)["fused_group"] == 5


def test_cuda_plan_runs_every_branch_unless_a_quarter_of_memory_is_exceeded(monkeypatch):
    monkeypatch.setitem(groups._CUDA_MEMORY, 0, 80 * 2**30)
    m = ParaFormer(embed_dim=384, num_heads=6, head_dim=64, mlp_dim=1536, num_branches=48,
                   branch_depth=1, device="meta")
    gpu = torch.device("cuda", 0)
    assert m.branch_plan(256, torch.bfloat16, gpu)["fused_group"] == 48  # 7.4 GB < 20 GiB
    big = m.branch_plan(2048, torch.bfloat16, gpu)  # 1.24 GB a branch
    assert 20 * 2**30 // (2048 * 197 * 1536 * 2) == 17  # room for 17: three groups of 16
    assert big["fused_group"] == 16
    assert big["fused_group_rule"] == "cuda memory"


def test_cache_size_from_sysfs_sysconf_or_default(monkeypatch, tmp_path):
    for i, (kind, size) in enumerate([("Data", "48K"), ("Instruction", "64K"),
                                      ("Unified", "2048K"), ("Unified", "32768K")]):
        d = tmp_path / f"index{i}"
        d.mkdir()
        (d / "type").write_text(kind + "\n")
        (d / "size").write_text(size + "\n")
    monkeypatch.setattr(groups.glob, "glob", lambda _: sorted(map(str, tmp_path.iterdir())))
    assert groups.last_level_cache() == (32 * 2**20, "sysfs")
    monkeypatch.setattr(groups.glob, "glob", lambda _: [])

    def sysconf(name):
        raise ValueError(name)

    monkeypatch.setattr(groups.os, "sysconf", sysconf)
    assert groups.last_level_cache() == (groups.DEFAULT_CACHE_BYTES, "default")


@pytest.mark.parametrize("bad", [0, -1, True, 2.0, "4"])
def test_branch_group_must_be_a_positive_int(bad):
    with pytest.raises(ValueError, match="branch_group"):
        ParaFormer(**{**build().config, "branch_group": bad})


def test_kept_weight_views_follow_replaced_parameters():
    """The shaped views a level keeps of its weights (paraformer.folds.level_weights)
    are dropped when a parameter it reads is replaced, not only updated: a new
    Parameter object, or new storage through ``.data``, fc2's weight included (read as
    it is, not folded)."""
    m = build(num_branches=K, branch_depth=2, branch_group=2)
    x = images(2)
    with torch.inference_mode():
        m(x)
    blk = m.blocks[1]
    blk.fc2.weight = torch.nn.Parameter(blk.fc2.weight.detach() * 0.5)
    m.blocks[0].norm1.weight.data = m.blocks[0].norm1.weight.detach() * 1.7
    with torch.inference_mode():
        assert rel_err(m(x), _at(m, "loop", None)(x)) < RTOL


def test_a_changed_branch_group_takes_effect_on_the_next_call(monkeypatch):
    """The groups of a forward are worked out once per batch and dtype, and again when
    ``branch_group`` changes."""
    spans = []
    real = groups.fused_level
    monkeypatch.setattr(groups, "fused_level",
                        lambda blk, x, *a: spans.append(a[1]) or real(blk, x, *a))
    m = build(num_branches=K, branch_depth=1, branch_group=2)
    loop = _at(m, "loop", None)
    x = images(2)
    with torch.inference_mode():
        for group, want in ((2, [(0, 2), (2, 4), (4, 5)]), (4, [(0, 4), (4, 5)]),
                            (2, [(0, 2), (2, 4), (4, 5)])):
            m.branch_group = group
            spans.clear()
            assert rel_err(m(x), loop(x)) < RTOL
            assert spans == want
