"""sr_ops.bench.cuda_resources: ptxas -v parsing, name splitting and the doc section swap
(no nvcc needed; `make cuda-resources` runs the real thing)."""
import pytest

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


PTX = """.visible .entry _Z1aPf(
{
\tld.global.nc.v4.f32 \t{%f1, %f2, %f3, %f4}, [%rd4];
\t@%p1 ld.global.f32 \t%f5, [%rd5];
\tdiv.s64 \t%rd9, %rd7, %rd8;
\tatom.global.add.f32 \t%f6, [%rd1], %f5;
\tred.global.add.u32 \t[%rd2], 1;
}
.visible .entry _Z1bPf(
{
\tmma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%f1,%f2,%f3,%f4}, {%r1,%r2,%r3,%r4}, {%r5,%r6}, {%f1,%f2,%f3,%f4};
\tld.global.v2.f32 \t{%f7, %f8}, [%rd3];
}
"""


def test_ptx_facts():
    from sr_ops.bench import ptx_facts

    a, b = ptx_facts.entries(PTX).values()
    assert ptx_facts.facts(a) == {"mma": 0, "ld128": 1, "ld64": 0, "ld_scalar": 1, "float_atomics": 1,
                                  "int_atomics": 1, "div64": 1}
    assert ptx_facts.facts(b) == {"mma": 1, "ld128": 0, "ld64": 1, "ld_scalar": 0, "float_atomics": 0,
                                  "int_atomics": 0, "div64": 0}


@pytest.fixture(scope="module")
def cuda_records():
    if cr.find_nvcc() is None:
        pytest.skip("nvcc not found: the CUDA kernels' PTX cannot be read here")
    return cr.collect(log=lambda *_: None)


def test_cuda_kernels_keep_their_design(cuda_records):
    """nvcc's sm_90 PTX of every .cu against sr_ops/bench/kernel_design.py, both ways (an
    unwaived violation fails, and so does a waiver whose kernel now keeps the rule)."""
    from sr_ops.bench import kernel_design as kd

    assert not cuda_records["failed"], cuda_records["failed"]
    found = kd.violations("cuda", cuda_records["records"])
    assert not kd.unwaived("cuda", found), "\n".join(kd.unwaived("cuda", found))
    stale = kd.stale_waivers("cuda", found)
    assert not stale, "waivers whose kernel now keeps the rule (remove them):\n" + "\n".join(stale)


def test_cuda_facts_match_the_compiler(cuda_records):
    from sr_ops.bench import roofline

    now, saved = roofline.summarise(cuda_records["records"], "cuda"), roofline.load_facts()["cuda"]
    assert now == saved, "docs/gpu-kernel-facts.json is stale: run python -m sr_ops.bench.roofline --update-facts"
