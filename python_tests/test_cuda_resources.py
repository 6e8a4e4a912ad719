"""sr_ops.bench.cuda_resources: ptxas -v parsing, name splitting and the doc section swap
(no nvcc needed; `make cuda-resources` runs the real thing)."""
from sr_ops.bench import cuda_resources as cr

LOG = """ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function '_ZN7sr_cuda47_GLOBAL__N__5d605cd2_14_layernorm2d_cu_6ac6ff1112bwd_w_kernelI13__nv_bfloat16EEvPKT_S5_PKNS_5AccOfIS3_E4typeEPS3_SB_lll' for 'sm_90'
ptxas info    : Function properties for _ZN7sr_cuda47_GLOBAL__N__5d605cd2_14_layernorm2d_cu_6ac6ff1112bwd_w_kernelI13__nv_bfloat16EEvPKT_S5_PKNS_5AccOfIS3_E4typeEPS3_SB_lll
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 28 registers, used 1 barriers, 2048 bytes smem
ptxas info    : Compile time = 47.217 ms
ptxas info    : Compiling entry function '_Z3fooPf' for 'sm_90'
ptxas info    : Function properties for _Z3fooPf
    544 bytes stack frame, 32 bytes spill stores, 80 bytes spill loads
ptxas info    : Used 128 registers, used 0 barriers, 544 bytes cumulative stack size
"""


def test_parse_ptxas():
    a, b = cr.parse_ptxas(LOG)
    assert (a["regs"], a["barriers"], a["shared"], a["stack"], a["spill_stores"]) == (28, 1, 2048, 0, 0)
    assert (b["regs"], b["barriers"], b["shared"], b["stack"], b["spill_stores"], b["spill_loads"]) == \
        (128, 0, 0, 544, 32, 80)
    assert a["arch"] == "90"


def test_split_name():
    d = ("void sr_cuda::(anonymous namespace)::knn_fwd_kernel<__half, float>(__half const*, __half const*, "
         "float*, long*, sr::KnnDims, long)")
    assert cr.split_name(d) == ("knn_fwd_kernel", ["float16", "float32"])
    assert cr.split_name("sr_cuda::place_kernel(long const*, long)") == ("place_kernel", [])


def test_replace_section_keeps_the_rest():
    old = f"# T\n\n## Triton kernels\n\nx\n\n{cr.HEADING}\n\nold table\n\n## Later\n\ny\n"
    new = cr.replace_section(old, f"{cr.HEADING}\n\nnew table\n")
    assert new == f"# T\n\n## Triton kernels\n\nx\n\n{cr.HEADING}\n\nnew table\n\n## Later\n\ny\n"
    assert cr.replace_section("# T\n", f"{cr.HEADING}\n\nz\n") == f"# T\n\n{cr.HEADING}\n\nz\n"


def test_heading_matches_the_triton_report():
    from sr_ops.triton.compile_report import CUDA_HEADING

    assert cr.HEADING == CUDA_HEADING
