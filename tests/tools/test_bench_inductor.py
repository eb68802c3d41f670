"""`wildpose bench --inductor`: kernels sorted by kind, the profile it reads, its table."""

import pytest

from wildpose.engine import default_model, load
from wildpose.errors import ConfigError
from wildpose.tools import bench_inductor

pytest.importorskip("torch")


@pytest.mark.parametrize(("kernel", "kind"), [
    # names from the paper preset's profile on an H200 (torch 2.11, cuDNN 9, 2026-11-28)
    ("sm90_xmma_fprop_implicit_gemm_f16f16_f16f32_f32_nhwckrsc_nhwc_tilesize128x128x64_warpgroupsize1x1x1_g1_execute",
     "convolution"),
    ("void cutlass__5x_cudnn::Kernel<cutlass_tensorop_f16_s16816fprop_optimized_f16_64x64_64x5_nhwc_align8>",
     "convolution"),
    ("nvjet_sm90_hsh_128x256_64x4_2x1_v_bz_coopA_TNN", "gemm"),
    ("triton_tem_fused__native_batch_norm_legit_no_training_convolution_relu_16", "gemm"),
    ("triton_poi_fused__native_batch_norm_legit_no_training_add_convolution_relu_20", "fused element-wise"),
    ("triton_per_fused_amax_1", "fused element-wise"),
    ("void at::native::vectorized_elementwise_kernel<4, at::native::CUDAFunctor_add<c10::Half>>", "other"),
    ("aten::mkldnn_convolution", "convolution"),  # the CPU's operators
    ("aten::add_", "other"),
])
def test_each_kernel_is_counted_as_its_kind(kernel, kind):
    assert bench_inductor.kernel_kind(kernel) == kind


def test_the_profile_splits_a_batchs_time_by_operator_and_convolutions_lead_on_the_cpu():
    with load(default_model.checkpoint_path(), "torch", device="cpu") as engine:
        times = engine.kernel_times(2, runs=1)
    by_kind = {kind: 0.0 for kind in bench_inductor.KINDS}
    for name, ms in times.items():
        by_kind[bench_inductor.kernel_kind(name)] += ms
    assert all(ms > 0 for ms in times.values())
    assert max(by_kind, key=by_kind.get) == "convolution", by_kind


def test_the_table_gives_each_variants_ratio_to_eager_and_its_time_by_kind():
    rows = [bench_inductor.InductorBenchRow(
        variant=name, batch=64, device_ms=(ms, ms + 0.1, ms + 0.2), frames_per_s=64000.0 / (ms + 0.1),
        kernel_ms={"convolution": 3.4, "gemm": 1.8, "fused element-wise": 4.5, "other": 0.1}, prepare_s=31.0,
        peak_gpu_mb=960.0, gpu="a GPU", torch="2.x") for name, ms in (("eager", 31.9), ("fixed", 10.1))]
    table = bench_inductor.format_table(rows)
    header, _, eager, fixed = ([cell.strip() for cell in line.strip("|").split("|")] for line in table.splitlines()[:4])
    eager, fixed = dict(zip(header, eager, strict=True)), dict(zip(header, fixed, strict=True))
    assert eager["vs eager"] == "1.00x" and fixed["vs eager"] == "3.14x"  # 32.0 / 10.2 ms
    assert fixed["on-device ms (3 timings)"] == "10.10 / 10.20 / 10.30" and fixed["fused element-wise ms"] == "4.50"
    assert "fixed = compiled, batch size fixed" in table


def test_unknown_variants_are_refused_with_the_known_ones():
    with pytest.raises(ConfigError, match=r"unknown \['fastest'\].*'frozen'"):
        bench_inductor.InductorBenchConfig(variants=("fixed", "fastest"))
