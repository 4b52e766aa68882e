"""The CUDA path end to end: graph capture, the runner on a GPU, bf16 equivalence of the
Para-Former executions, and the fused execution's flat kernel count. Skipped without
CUDA; `bash scripts/gpu_check.sh tests` runs them on a GPU machine."""
import pytest
import torch

from parabench import Store, Sweep, load
from parabench.catalog import build
from parabench.config import Point
from parabench.measure.prepare import prepared
from parabench.measure.profile import profile_step, summarize_trace
from parabench.runner import run_sweep

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]

GPU_TINY = dict(device="cuda", width="tiny", img_size=32, warmup=3, min_samples=5,
                min_time_s=0.0)


@pytest.mark.parametrize("family", ["vit", "paraformer-fused", "resnet"])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_graph_replay_gives_the_eager_output(family, dtype):
    depth = 18 if family == "resnet" else 4
    sweep = Sweep(families=(family,), depths=(depth,), dtypes=(dtype,), **GPU_TINY)
    outputs = {}
    for mode in ("eager", "graph"):
        with prepared(Point(family, depth, 8, dtype, mode, "infer"), sweep) as prep:
            outputs[mode] = prep.step().float().clone()
    # not bit-equal: on the capture stream cuBLAS may pick other kernels (another split-K,
    # another workspace), which sum in another order; within the dtype's rounding
    scale = outputs["eager"].abs().max().item()
    tol = 2e-2 if dtype == "bfloat16" else 1e-4
    torch.testing.assert_close(outputs["graph"], outputs["eager"], rtol=tol, atol=tol * scale)


def test_runner_on_cuda_every_mode_ok_and_peaks_include_activations(tmp_path):
    families = ("vit", "paraformer-fused", "resnet")
    sweep = Sweep(families=families, depths=(4,), depth_overrides=(("resnet", (18,)),),
                  batches=(64,), dtypes=("bfloat16",), modes=("eager", "graph", "compile"),
                  **GPU_TINY)
    with Store(tmp_path / "gpu.db") as store:
        rid = run_sweep(sweep, store, progress=False, log=lambda m: None)
    df = load(tmp_path / "gpu.db", rid)
    assert len(df) == 9 and set(df.status) == {"ok"}, df[["key", "status", "reason"]]
    for _, row in df.iterrows():
        weights, inputs = row.params * 2, row.batch * 3 * 32 * 32 * 2  # bf16
        # the least any forward holds at once: one [B, 17 tokens, 64] hidden state, or
        # ResNet's first [B, 64, 16, 16] feature map
        least = row.batch * (64 * 16 * 16 if row.family == "resnet" else 17 * 64) * 2
        assert row.peak_mem_allocated > weights + inputs + least, row.key
        assert row.extra["cudnn_benchmark"] is True
        if row.family == "resnet":
            assert row.extra["memory_format"] == "channels_last"
        if row["mode"] == "compile":
            assert row.extra["compiled_graphs"] >= 1
    # a graph row's peak holds the captured activations: not far below eager's
    peaks = df.set_index(["family", "mode"]).peak_mem_allocated
    for fam in families:
        assert peaks[(fam, "graph")] > 0.5 * peaks[(fam, "eager")], fam


@pytest.mark.parametrize("k", [1, 8, 24])
def test_loop_and_fused_agree_in_bf16_with_flash_attention(k):
    """Paper width and image size so that the attention kernels are the real ones."""
    kw = dict(width="paper", img_size=224, device="cuda", dtype=torch.bfloat16)
    torch.manual_seed(0)
    loop = build("paraformer-loop", k, **kw)
    fused = build("paraformer-fused", k, **kw)
    fused.load_state_dict(loop.state_dict())
    x = torch.randn(4, 3, 224, 224, device="cuda", dtype=torch.bfloat16)
    with torch.inference_mode():
        a, b = loop(x).float(), fused(x).float()
    # bf16 keeps 8 bits of mantissa; summation order differs between the executions
    scale = a.abs().max().item()
    assert (a - b).abs().max().item() <= 3e-2 * scale + 1e-2, (k, (a - b).abs().max().item())


def _kernels_per_forward(family, k, tmp_path):
    model = build(family, k, width="tiny", img_size=32, device="cuda", dtype=torch.bfloat16)
    x = torch.randn(2, 3, 32, 32, device="cuda", dtype=torch.bfloat16)

    def step():
        with torch.inference_mode():
            return model(x)

    res = profile_step(step, tmp_path / f"{family}{k}", device="cuda", wait=1, warmup=2,
                       active=3)
    return summarize_trace(res["trace"])["kernels_per_forward"]


#: kernels the fused forward may add as K grows: cuBLAS may split a larger GEMM's K
#: dimension (one reduction kernel more per GEMM) and FlashAttention may split KV (one
#: combine kernel), by shape; six GEMMs and one attention per level
FUSED_KERNEL_SLACK = 8


def test_fused_kernel_count_is_flat_in_k_and_the_loop_grows(tmp_path):
    fused = {k: _kernels_per_forward("paraformer-fused", k, tmp_path) for k in (2, 8, 32)}
    loop = {k: _kernels_per_forward("paraformer-loop", k, tmp_path) for k in (2, 32)}
    assert max(fused.values()) - fused[2] <= FUSED_KERNEL_SLACK, fused  # not growing with K
    assert loop[32] > 8 * loop[2] / 2, loop  # about linear in K
    assert fused[32] < loop[32] / 4


def test_a_large_point_leaves_nothing_reserved_for_the_next(tmp_path):
    """The previous point's model, CUDA graph, graph pool and cuBLAS workspaces are gone
    before the next point's peak is reset: a small point after a large one reports the
    reserve it reports when it runs first."""
    def small_point_reserve(batches):
        sweep = Sweep(families=("vit",), depths=(8,), batches=batches, dtypes=("bfloat16",),
                      modes=("graph",), **GPU_TINY)
        with Store(tmp_path / "gpu.db") as store:
            rid = run_sweep(sweep, store, progress=False, log=lambda m: None)
        df = load(tmp_path / "gpu.db", rid).set_index("batch")
        assert set(df.status) == {"ok"}, df[["status", "reason"]]
        return df.loc[1, "peak_mem_reserved"], df.peak_mem_reserved.max()

    alone, _ = small_point_reserve((1,))
    after, largest = small_point_reserve((4096, 1))
    assert largest > 4 * alone  # the large point was large
    assert after <= 1.1 * alone + 4 * 2**20, (alone, after)
