"""The catalog builds every family through timm, with honest parameter and FLOP counts."""
import pytest
import timm
import torch

from parabench import UsageError
from parabench.catalog import build, depth_meaning, model_info, resnet_layers
from parabench.config import FAMILIES, WIDTHS
from parabench.measure.timing import make_input


@pytest.mark.parametrize("family", ["paraformer-loop", "paraformer-fused", "paraformer-least-work",
                                    "paraformer-serial", "vit", "vit-parallel"])
@pytest.mark.parametrize("depth", [1, 3])
def test_counted_flops_equal_the_analytic_formula(family, depth):
    info = model_info(family, depth, width="tiny", img_size=32)
    # attention is counted: without it the count would fall short of the formula
    assert info["flops"] == info["flops_analytic"] > 0


def test_equal_width_families_cost_the_same_per_layer():
    flops = {f: model_info(f, 4)["flops"] for f in ("paraformer-loop", "paraformer-fused",
                                                    "paraformer-serial", "vit")}
    assert len(set(flops.values())) == 1
    # a parallel-ViT block holds two attention and two MLP branches: two serial layers' worth
    assert model_info("vit-parallel", 2)["flops"] == model_info("vit", 4)["flops"]


def test_paraformer_with_k_branches_has_the_parameters_of_a_depth_k_vit_up_to_qkv_bias():
    w_dim, heads, head_dim = 64, 2, 32
    k = 5
    para = model_info("paraformer-fused", k)["params"]
    vit = model_info("vit", k)["params"]
    # timm's ViT has a qkv bias (3*H*dh per block); Para-Former's qkv has none. Its
    # LayerNorm eps differs but not its parameters.
    assert vit - para == k * 3 * heads * head_dim
    assert heads * head_dim == w_dim


def test_least_work_counts_its_own_smaller_work():
    """Same parameters and output as the fused family, fewer FLOPs: reported as counted."""
    lw, fused = model_info("paraformer-least-work", 4), model_info("paraformer-fused", 4)
    assert lw["params"] == fused["params"]
    assert lw["flops"] < 0.5 * fused["flops"]
    x = make_input(2, 32)
    a, b = build("paraformer-least-work", 4), build("paraformer-fused", 4)
    b.load_state_dict(a.state_dict())
    assert torch.allclose(a(x), b(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("depth", [1, 3, 6])
def test_serial_twin_is_one_branch_of_para_formers_own_blocks(depth):
    from paraformer import param_count

    model = build("paraformer-serial", depth)
    assert (model.num_branches, model.branch_depth) == (1, depth)
    w = WIDTHS["tiny"]
    formula = param_count(img_size=32, patch_size=w.patch, num_classes=w.num_classes,
                          embed_dim=w.dim, num_heads=w.heads, head_dim=w.head_dim,
                          mlp_dim=w.mlp_dim, num_branches=1, branch_depth=depth)
    assert model_info("paraformer-serial", depth)["params"] == formula
    # K branches of depth 1 hold exactly the tensors of one branch of depth K
    assert formula == model_info("paraformer-fused", depth)["params"]


def test_depth_meaning_states_layers_and_critical_path():
    assert depth_meaning("paraformer-fused", 12) == {"layers": 12, "critical_path": 1}
    assert depth_meaning("paraformer-least-work", 12) == {"layers": 12, "critical_path": 1}
    assert depth_meaning("paraformer-serial", 12) == {"layers": 12, "critical_path": 12}
    assert depth_meaning("vit", 12) == {"layers": 12, "critical_path": 12}
    assert depth_meaning("vit-parallel", 6) == {"layers": 12, "critical_path": 6}
    assert depth_meaning("resnet", 18) is None


@pytest.mark.parametrize("family", FAMILIES)
def test_train_parity_no_family_has_dropout_by_default(family):
    """A training step must not pay for dropout in one family and not in another: in train
    mode two forwards of one input give the same output (dropout would make them differ)."""
    model = build(family, 18 if family == "resnet" else 2).train()
    active = [m for m in model.modules() if isinstance(m, torch.nn.Dropout) and m.p > 0]
    assert not active, active
    x = make_input(2, 32)
    torch.manual_seed(0)
    first = model(x)
    torch.manual_seed(1)
    assert torch.equal(first, model(x))


@pytest.mark.parametrize("depth", [18, 34, 50])
def test_standard_resnets_are_timms(depth):
    ours = build("resnet", depth)
    ref = timm.create_model(f"resnet{depth}", pretrained=False, num_classes=10)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())


def test_custom_resnet_depths():
    assert resnet_layers(10) == ("basic", (1, 1, 1, 1))
    assert resnet_layers(20) == ("basic", (2, 2, 3, 2))
    assert resnet_layers(62) == ("bottleneck", (5, 5, 5, 5))
    model = build("resnet", 26)
    assert model(make_input(2, 32)).shape == (2, 10)
    for bad in (9, 19, 51):
        with pytest.raises(UsageError, match=f"resnet depth {bad}"):
            resnet_layers(bad)


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_builds_and_runs(family):
    depth = 18 if family == "resnet" else 2
    model = build(family, depth)
    assert not model.training
    assert model(make_input(3, 32)).shape == (3, 10)


def test_bad_requests_name_the_problem():
    with pytest.raises(UsageError, match="unknown family"):
        build("transformer", 2)
    with pytest.raises(UsageError, match="depth must be >= 1"):
        build("vit", 0)
    with pytest.raises(UsageError, match="not divisible by the patch size"):
        build("paraformer-fused", 2, img_size=36)
    with pytest.raises(UsageError, match="unknown width"):
        build("vit", 2, width="huge")


@pytest.mark.parametrize("family", ["paraformer-loop", "paraformer-fused", "vit", "vit-parallel",
                                    "resnet"])
def test_counting_on_the_meta_device_matches_a_real_model(family, monkeypatch):
    """model_info counts shapes on the meta device (no weights, no compute); a model
    built and run on the CPU must give the same parameters and FLOPs."""
    import parabench.catalog as catalog

    real = catalog._count_on

    def meta_only(device, *args):
        assert device == "meta", f"{family} fell back to counting on the CPU"
        return real(device, *args)

    depth = 18 if family == "resnet" else 3
    cpu = real("cpu", family, depth, "tiny", 32)
    monkeypatch.setattr(catalog, "_count_on", meta_only)
    meta = meta_only("meta", family, depth, "tiny", 32)
    assert meta == cpu and meta[1] > 0
    assert (model_info(family, depth, width="tiny", img_size=32)["params"],
            model_info(family, depth, width="tiny", img_size=32)["flops"]) == meta
