"""The catalog builds every family through timm, with honest parameter and FLOP counts."""
import pytest
import timm

from parabench import UsageError
from parabench.catalog import build, model_info, resnet_layers
from parabench.measure.timing import make_input


@pytest.mark.parametrize("family", ["paraformer-loop", "paraformer-fused", "vit", "vit-parallel"])
@pytest.mark.parametrize("depth", [1, 3])
def test_counted_flops_equal_the_analytic_formula(family, depth):
    info = model_info(family, depth, width="tiny", img_size=32)
    # attention is counted: without it the count would fall short of the formula
    assert info["flops"] == info["flops_analytic"] > 0


def test_equal_width_families_cost_the_same_per_layer():
    flops = {f: model_info(f, 4)["flops"] for f in ("paraformer-loop", "paraformer-fused", "vit")}
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


@pytest.mark.parametrize("family", ["paraformer-loop", "paraformer-fused", "vit", "vit-parallel",
                                    "resnet"])
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
