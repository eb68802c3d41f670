"""`wildpose bench --inductor`: which of inductor's settings the compiled CUDA path should use, and
where its time goes.

The compiled path's settings were chosen by measuring them. Each variant compiles the network for one
batch size (default 64) in a fresh process, so its compile time and memory are its own. It is timed
on the device, as `bench --gpu`'s on-device column, three times. Then PyTorch's profiler splits its
kernels' time by kind: convolutions, GEMMs (cuDNN runs most 1x1 convolutions as GEMMs), inductor's
fused element-wise kernels. So the table says where the time goes as well as which variant is fastest.
The eager baseline runs in the same run, so the ratios are honest on one machine.
"""

from __future__ import annotations

import concurrent.futures
import logging
import multiprocessing
import statistics
import time
from dataclasses import dataclass, field

from tqdm import tqdm

from wildpose.errors import ConfigError
from wildpose.tools.bench import markdown_table
from wildpose.tools.bench_gpu import require_cuda

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Variant:
    description: str
    compile: bool = True
    fixed_batch: bool = True  # compiled with the batch size fixed, or symbolic (the smaller sizes' graph)
    options: tuple[tuple[str, object], ...] = ()  # inductor options given to torch.compile
    conv_relu: bool = False  # each ReLU after a convolution in cuDNN's kernel (torch_optimize.fuse_conv_relu)


VARIANTS = {
    "eager": Variant("plain PyTorch, fp16, channels-last", compile=False),
    "symbolic": Variant("compiled, batch size symbolic (the graph the sizes below the largest share)",
                        fixed_batch=False),
    "fixed": Variant("compiled, batch size fixed (the largest captured batch's graph)"),
    "1x1-as-mm": Variant("fixed, 1x1 convolutions as matrix multiplies", options=(("conv_1x1_as_mm", True),)),
    "coordinate-descent": Variant("fixed, element-wise kernels' block sizes tuned",
                                  options=(("coordinate_descent_tuning", True),)),
    "frozen": Variant("fixed, weights frozen as constants", options=(("freezing", True),)),
    "conv-relu": Variant("fixed, each ReLU after a convolution in cuDNN's convolution kernel", conv_relu=True),
    "gemm-autotune": Variant("fixed, 1x1 convolutions as matrix multiplies, GEMMs autotuned (Triton templates)",
                             options=(("conv_1x1_as_mm", True), ("max_autotune_gemm", True))),
}
DEFAULT_VARIANTS = ("eager", "symbolic", "fixed")
KINDS = ("convolution", "gemm", "fused element-wise", "other")


@dataclass(frozen=True)
class InductorBenchConfig:
    variants: tuple[str, ...] = DEFAULT_VARIANTS
    batch: int = 64
    seconds: float = 1.5  # each of the three timings
    preset: str = "paper"

    def __post_init__(self) -> None:
        unknown = [v for v in self.variants if v not in VARIANTS]
        if unknown:
            raise ConfigError(f"--variants: unknown {unknown}; choose from {list(VARIANTS)}")
        if self.batch < 1:
            raise ConfigError(f"--batch must be a positive integer, got {self.batch}")


@dataclass(frozen=True)
class InductorBenchRow:
    variant: str
    batch: int
    device_ms: tuple[float, ...]  # per batch, input on the GPU: three timings
    frames_per_s: float  # from the median timing
    kernel_ms: dict[str, float] = field(default_factory=dict)  # per batch, by KINDS (profiled, graph-less)
    top_kernel: str = ""
    top_kernel_ms: float = 0.0
    prepare_s: float = 0.0  # load + compile + capture
    peak_gpu_mb: float = 0.0
    gpu: str = ""
    torch: str = ""


def kernel_kind(name: str) -> str:
    """One of KINDS for a CUDA kernel's name (cuDNN's, cuBLAS's, or one inductor generated)."""
    lowered = name.lower()
    if lowered.startswith("triton_"):
        return "fused element-wise" if lowered.startswith(("triton_poi", "triton_per", "triton_red")) else "gemm"
    if any(mark in lowered for mark in ("fprop", "conv", "implicit_gemm", "nhwckrsc")):
        return "convolution"
    if any(mark in lowered for mark in ("gemm", "nvjet", "cublas", "matmul", "cutlass")):
        return "gemm"
    return "other"


def run_inductor_bench(config: InductorBenchConfig) -> list[InductorBenchRow]:
    from wildpose.engine import default_model

    require_cuda("the inductor benchmark", "it weighs the compiled CUDA path's settings")
    model = default_model.untrained_checkpoint(config.preset, default_model.DEFAULT_SEED)
    context = multiprocessing.get_context("spawn")
    rows = []
    for name in tqdm(config.variants, desc="inductor variants", unit="variant"):
        with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            row = pool.submit(measure_variant, str(model), name, config.batch, config.seconds).result()
        log.info("%s: %.2f ms a batch of %d, prepared in %.1f s", name, statistics.median(row.device_ms),
                 config.batch, row.prepare_s)
        rows.append(row)
    return rows


def measure_variant(model: str, name: str, batch: int, seconds: float) -> InductorBenchRow:
    """Runs in a fresh process: load, compile and capture one batch size, time it, profile it."""
    import torch

    from wildpose.engine.torch_backend import TorchBackend

    variant = VARIANTS[name]
    started = time.perf_counter()
    engine = TorchBackend(model, device="cuda", precision="fp16", compile=variant.compile, graph_batches=(batch,),
                          branch_streams=0, inductor_options=dict(variant.options) or None,
                          fixed_largest_batch=variant.fixed_batch, conv_relu=variant.conv_relu)
    try:
        engine.prepare()
        prepare_s = time.perf_counter() - started
        timer = engine.device_timer()
        device_ms = tuple(timer(batch, seconds) for _ in range(3))
        kernels = engine.kernel_times(batch)
    finally:
        engine.close()
    by_kind = {kind: 0.0 for kind in KINDS}
    for kernel, ms in kernels.items():
        by_kind[kernel_kind(kernel)] += ms
    top_kernel, top_ms = max(kernels.items(), key=lambda item: item[1], default=("", 0.0))
    return InductorBenchRow(
        variant=name, batch=batch, device_ms=device_ms, frames_per_s=batch * 1000.0 / statistics.median(device_ms),
        kernel_ms=by_kind, top_kernel=top_kernel, top_kernel_ms=top_ms, prepare_s=prepare_s,
        peak_gpu_mb=torch.cuda.max_memory_allocated() / 2**20, gpu=torch.cuda.get_device_name(),
        torch=torch.__version__)


def format_table(rows: list[InductorBenchRow]) -> str:
    headers = ["variant", "batch", "on-device ms (3 timings)", "frames/s", "vs eager",
               *(f"{kind} ms" for kind in KINDS), "prepare s", "peak GPU MB"]
    eager = {r.batch: r.frames_per_s for r in rows if r.variant == "eager"}
    body = []
    for r in rows:
        baseline = eager.get(r.batch)
        body.append([r.variant, str(r.batch), " / ".join(f"{ms:.2f}" for ms in r.device_ms), f"{r.frames_per_s:,.0f}",
                     f"{r.frames_per_s / baseline:.2f}x" if baseline else "-",
                     *(f"{r.kernel_ms.get(kind, 0.0):.2f}" for kind in KINDS),
                     f"{r.prepare_s:.1f}", f"{r.peak_gpu_mb:,.0f}"])
    notes = "; ".join(f"{name} = {VARIANTS[name].description}" for name in dict.fromkeys(r.variant for r in rows))
    where = f"{rows[0].gpu}, torch {rows[0].torch}; " if rows else ""
    return markdown_table(headers, body) + f"\n({where}kernel ms: profiled without the CUDA graph; eager's " \
        f"element-wise kernels count as other; {notes})"
