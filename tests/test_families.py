"""The family registry: each family declared once, and nothing else branches on a name."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

from parabench import UsageError, analysis, families
from parabench.catalog import build, check, model_info
from parabench.config import FAMILIES, PRESETS, WIDTHS, Point, Sweep

ROOT = Path(__file__).resolve().parents[1]


def _shallowest(name: str) -> int:
    """Depth 1, or for a family whose depth is a layer count its smallest buildable net."""
    return 1 if families.get(name).transformer else 10


def test_config_families_are_the_registry_in_its_order():
    assert FAMILIES == tuple(families.REGISTRY)
    # the order reports sort by
    assert FAMILIES == ("paraformer-loop", "paraformer-fused", "paraformer-fused-2pass",
                        "paraformer-least-work", "paraformer-serial", "vit", "vit-parallel",
                        "resnet")
    assert all(n == f.name and f.description and "\n" not in f.description
               for n, f in families.REGISTRY.items())


@pytest.mark.parametrize("name", FAMILIES)
def test_every_family_builds_at_its_shallowest_with_the_counted_parameters(name):
    depth = _shallowest(name)
    torch.manual_seed(0)
    model = build(name, depth)
    built = sum(p.numel() for p in model.parameters())
    assert built == model_info(name, depth)["params"] > 0  # counted on meta, same model
    with torch.no_grad():
        assert model(torch.zeros(2, 3, 32, 32)).shape == (2, WIDTHS["tiny"].num_classes)


@pytest.mark.parametrize("name", [n for n, f in families.REGISTRY.items() if f.transformer])
def test_transformers_analytic_flops_match_the_counted_ones(name):
    info = model_info(name, 2)
    assert info["flops_analytic"] == info["flops"] > 0


@pytest.mark.parametrize("name", [n for n in FAMILIES if n.startswith("paraformer")])
def test_para_former_families_have_the_closed_form_parameter_count(name):
    from paraformer import param_count

    fam = families.get(name)
    shape = families._paraformer_shape(fam.layout, 3, WIDTHS["tiny"], 32)
    assert (shape.num_branches, shape.branch_depth) == fam.layout(3)
    assert model_info(name, 3)["params"] == param_count(shape)


def test_twins_are_registered_serial_families():
    assert analysis.SERIAL_TWIN == families.serial_twins() == {
        "paraformer-loop": ("paraformer-serial", "vit"),
        "paraformer-fused": ("paraformer-serial", "vit"),
        "paraformer-fused-2pass": ("paraformer-serial", "vit"),
        "paraformer-least-work": ("paraformer-serial", "vit"),
        "vit-parallel": ("vit",),
    }
    for name, twins in families.serial_twins().items():
        for twin in twins:
            assert not families.get(twin).serial_twins  # a twin is serial: no twin of its own
            assert families.get(twin).depth_meaning(4) == {"layers": 4, "critical_path": 4}
        mine = families.get(name).depth_meaning(4)  # parallel: a row passes fewer blocks
        assert mine["critical_path"] < mine["layers"]


def test_least_work_does_less_than_its_twins_and_the_rest_do_not():
    """At equal layers (blocks), a parallel family's FLOPs equal its serial twins' (up to
    biases, which count no matmul FLOPs) unless it is declared to do less work."""
    assert families.LESS_WORK == ("paraformer-least-work",)
    for name, twins in families.serial_twins().items():
        mine = model_info(name, 4)["flops"]
        layers = families.get(name).depth_meaning(4)["layers"]
        for twin in twins:  # a serial twin of as many layers (blocks)
            theirs = model_info(twin, layers)["flops"]
            if families.get(name).equal_flops:
                assert mine == theirs, (name, twin)
            else:
                assert mine < 0.5 * theirs


def test_what_was_resnet_only_is_declared_by_resnet():
    resnet = families.get("resnet")
    assert families.LAYER_COUNTED == ("resnet",)
    assert (resnet.compute_kind, resnet.memory_format, resnet.analytic_flops) == (
        "conv", "channels_last", None)
    assert resnet.depth_meaning(18) is None
    others = [f for f in families.REGISTRY.values() if f is not resnet]
    assert {(f.compute_kind, f.memory_format) for f in others} == {("matmul", "contiguous")}
    # the big presets sweep ResNet's standard nets, as they did when config spelled it out
    for name in ("paper", "full"):
        assert PRESETS[name].depth_overrides == (("resnet", (18, 34, 50, 101, 152)),)


@pytest.mark.parametrize("bad", ["transformer", "ResNet", "", ["vit"]])
def test_a_family_not_in_the_registry_is_refused_in_one_line(bad):
    with pytest.raises(UsageError) as e:
        families.get(bad)
    assert "\n" not in str(e.value) and "unknown family" in str(e.value)
    assert "paraformer-fused" in str(e.value)  # the choices are listed
    if isinstance(bad, str):
        with pytest.raises(UsageError, match="unknown family"):
            check(bad, 2, "tiny", 32)
        with pytest.raises(UsageError, match="unknown family"):
            Sweep(families=(bad or "x",), depths=(1,)).validate()


def test_prepare_takes_the_memory_format_from_the_registry():
    from parabench.measure.prepare import _cuda_settings

    before = torch.backends.cudnn.benchmark
    try:
        for name, want in (("resnet", torch.channels_last), ("vit", torch.contiguous_format)):
            model, x = torch.nn.Conv2d(3, 4, 3), torch.zeros(2, 3, 8, 8)
            point = Point(name, 1, 2, "float32", "eager", "infer")
            model, x, settings = _cuda_settings(point, model, x)
            assert settings["memory_format"] == families.get(name).memory_format
            assert x.is_contiguous(memory_format=want)
            assert model.weight.is_contiguous(memory_format=want)
    finally:
        torch.backends.cudnn.benchmark = before


def test_an_asv_class_of_one_family_is_read_as_that_family():
    from parabench.regress.asv_results import _point_fields

    assert _point_fields("latency.ResNetLatency.track_latency", ["depth"], ["18"])["family"] \
        == "resnet"
    assert _point_fields("latency.TransformerLatency.track_latency", ["family", "depth"],
                         ["vit", "4"])["family"] == "vit"
    assert _point_fields("cost.Cost.track_flops", ["depth"], ["4"])["family"] is None


# -- nothing outside the registry branches on a family's name ------------------------------
def _family_literals(node: ast.AST) -> list[str]:
    """The family names a comparison operand spells out: a string, or a tuple/list/set of them."""
    items = node.elts if isinstance(node, (ast.Tuple, ast.List, ast.Set)) else [node]
    return [n.value for n in items
            if isinstance(n, ast.Constant) and n.value in families.REGISTRY]


def _branches_on_a_family(source: str) -> list[tuple[int, str]]:
    """(line, code) of each comparison against a family-name literal (==, !=, in, not in,
    is) and each startswith/endswith with a prefix of a family name. Plain data (a
    preset's tuple, a call's argument) is not a comparison and is not reported."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            if any(_family_literals(op) for op in [node.left, *node.comparators]):
                found.append((node.lineno, ast.unparse(node)))
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr in ("startswith", "endswith")):
            prefixes = [a.value for a in ast.walk(node) if isinstance(a, ast.Constant)
                        and isinstance(a.value, str) and a.value]
            if any(f.startswith(p) or f.endswith(p) for p in prefixes for f in families.REGISTRY):
                found.append((node.lineno, ast.unparse(node)))
    return sorted(found)


def test_the_checker_finds_the_branching_it_forbids():
    code = '''
if point.family == "resnet": pass
if family.startswith("paraformer"): pass
lin = g[g["family"] != "vit-parallel"]
big = family in ("vit", "vit-parallel")
fam = "resnet" if "resnet" in bench_name.lower() else None
PRESET = dict(families=("paraformer-loop", "vit", "resnet"), overrides=(("resnet", (18,)),))
point.open("resnet", 18)
ok = device.startswith("cuda") or mode == "eager"
'''
    assert [line for line, _ in _branches_on_a_family(code)] == [2, 3, 4, 5, 6]


def test_no_module_outside_the_registry_branches_on_a_family_name():
    offenders = []
    for path in sorted([*ROOT.glob("parabench/**/*.py"), *ROOT.glob("benchmarks/**/*.py")]):
        if path == ROOT / "parabench" / "families.py":
            continue
        for line, code in _branches_on_a_family(path.read_text()):
            offenders.append(f"{path.relative_to(ROOT)}:{line}: {code}")
    assert not offenders, "ask parabench.families instead:\n" + "\n".join(offenders)
