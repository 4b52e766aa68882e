"""asv suite for parabench: thin classes that build each family through `parabench.catalog`
at increasing depth and time it with parabench's own timer.

Why not asv's `time_*` / `peakmem_*`
------------------------------------
asv's timers read a host clock around the call: on a GPU that measures the kernel
*launch*, not the work, because nothing synchronises CUDA. `peakmem_*` is host RSS,
not GPU memory. So every latency here comes from `parabench.measure.timing.measure`
(CUDA events + one synchronise on GPU, perf_counter_ns on CPU).

How the raw samples reach asv
-----------------------------
The latency benchmarks are `track_*` functions that return
``{"samples": [seconds, ...], "number": 1}`` instead of a single number. asv
(0.6) recognises that shape for *any* benchmark type and treats it exactly like a
`time_*` result: `compute_stats` gives the median and its 99% confidence interval,
`--record-samples` keeps the samples, and `asv compare` / `asv continuous` run
their Mann-Whitney test on them. With `unit = "seconds"` the web pages and tables
format the values as times. This keeps the suite a plain directory of classes; the
alternative, an `asv_bench_*` plugin distribution exporting a new benchmark type,
would have to be pip-installed into every asv environment and buys nothing more.

`timing.py` adds `time_*` forward benchmarks, because only those does `asv continuous`
run in rounds that alternate between the two commits; each timed call ends with
`torch.cuda.synchronize()` on GPU, so asv's wall clock spans the GPU work (plus one
sync). `instructions.py` tracks instructions per forward under Callgrind (CPU, the
quick sizes): the deterministic value for history.

Tracked values with units: `track_params` (parameters), `track_gflops` (GFLOP per
image, counted by parabench's FLOP counter), `track_peak_gpu_memory` (bytes,
torch.cuda.max_memory_allocated over the timed window; skipped without CUDA).

CPU or GPU sizes
----------------
The suite measures a parabench preset (`parabench.config.PRESETS`, the same sizes
`parabench run --preset NAME` uses): `PARABENCH_ASV_PRESET=quick|paper|full`. Unset, it
is `paper` (ViT-S width, 224x224, bfloat16, depths 1..48, ResNet 18..152, batch
1/32/256, eager and CUDA graphs) when `torch.cuda.is_available()` (checked through
NVML, so the forkserver parent never initialises CUDA) and `quick` (tiny width, 32x32,
float32, depths 1/2/4/8, ResNet 18/34, batch 1, eager, one torch thread) otherwise.
asv times the preset's first dtype. Impossible combinations (CUDA graphs on CPU,
depths that do not build) raise NotImplementedError in `setup`, which asv records as
skipped. `PARABENCH_ASV_MODES` (e.g. `eager,graph,compile`) and `PARABENCH_ASV_THREADS`
(`0` = torch's default) override the preset's modes and thread count.

Why one CPU thread: on a shared 2-core machine, torch's two OpenMP threads spin at
barriers while another process holds a core; measured here, a tiny ViT went from
1.3 ms (1 thread) to 10 ms median with a 78 ms p90 (2 threads) under a load of 4.
Regression detection needs stable numbers more than it needs the last core.

Setup is seeded (`torch.manual_seed(0)` before building, a seeded input batch).
"""
