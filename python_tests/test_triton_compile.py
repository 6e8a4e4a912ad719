"""Every Triton kernel compiles with the real compiler for sm_80 and sm_90, no GPU needed.

The other Triton tests run the kernels in Triton's interpreter, which accepts code the
compiler rejects. sr_ops.triton.compile_check drives each op's Triton wrapper with the
launches turned into compile-only warm-ups for a fixed GPUTarget, in subprocesses without
TRITON_INTERPRET and with a fresh Triton cache; one test per case, dtype and arch.
"""
import fcntl
import hashlib
import json
import os

import pytest

pytest.importorskip("triton")

from sr_ops.triton import compile_check  # noqa: E402
from sr_ops.triton.compile_cases import CASES  # noqa: E402


def _selection(items):
    """The archs and case-id globs the selected tests need: all of them unless pytest -k
    narrowed the run to some test_kernels_compile items (so a focused run compiles less)."""
    mine = [i for i in items if i.module.__name__ == __name__]
    if any(i.originalname != "test_kernels_compile" for i in mine) or not mine:
        return compile_check.ARCHS, "*"
    params = [i.callspec.params for i in mine]
    archs = tuple(a for a in compile_check.ARCHS if any(p["arch"] == a for p in params))
    return archs, ",".join(sorted({p["case"].id for p in params}))


def _run_once(archs, pattern, tmp_path_factory):
    """compile_check.run_workers, once per test run: under pytest-xdist every worker that gets
    one of these tests asks, and the first to take the lock compiles while the others wait
    and read its result (xdist's documented pattern: the workers share basetemp's parent)."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return compile_check.run_workers(archs, pattern)
    key = hashlib.sha1(repr((archs, pattern)).encode()).hexdigest()[:12]
    root = tmp_path_factory.getbasetemp().parent
    done = root / f"triton-compile-{key}.json"
    with open(root / f"triton-compile-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            done.write_text(json.dumps(compile_check.run_workers(archs, pattern)))
    result = json.loads(done.read_text())
    result["kernels"] = {int(arch): names for arch, names in result["kernels"].items()}  # JSON keys are str
    return result


@pytest.fixture(scope="module")
def compiled(request, tmp_path_factory):
    archs, pattern = _selection(request.session.items)
    result = _run_once(archs, pattern, tmp_path_factory)
    by_case = {}
    for rec in result["records"]:
        by_case.setdefault((rec["arch"], rec["case"]), []).append(rec)
    return by_case, result


@pytest.mark.parametrize("arch", compile_check.ARCHS, ids=lambda a: f"sm{a}")
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_kernels_compile(compiled, case, arch):
    records = compiled[0].get((arch, case.id))
    assert records, f"{case.id}: the worker recorded nothing for sm_{arch}"
    bad = [r for r in records if not r["ok"]]
    if bad:
        pytest.fail("\n\n".join(f"{r['kernel']} ({case.op} {case.variant}, {case.dtype}, sm_{arch}) does not "
                                f"compile:\n{r['error']}" for r in bad), pytrace=False)


@pytest.mark.parametrize("arch", compile_check.ARCHS, ids=lambda a: f"sm{a}")
def test_every_kernel_has_a_case(compiled, arch):
    """A kernel added to sr_ops/triton without a case in compile_cases would go unchecked."""
    _, result = compiled
    launched = {r["kernel"] for r in result["records"] if r["arch"] == arch}
    missed = sorted(set(result["kernels"][arch]) - launched)
    assert not missed, f"no compile case launches {missed}; add one to sr_ops/triton/compile_cases.py"


def test_kernels_keep_their_design(compiled):
    """Each kernel's PTX for sm_80 and sm_90 against its stated design (sr_ops/bench/kernel_design.py):
    no spills, no float atomics, no 64-bit division, tensor cores where FLOP-bound, 128-bit loads
    where streaming; each exception waived there with its reason, and no waiver outlives its cause."""
    from sr_ops.bench import kernel_design as kd

    found = kd.violations("triton", compiled[1]["records"])
    assert not kd.unwaived("triton", found), "\n".join(kd.unwaived("triton", found))
    stale = kd.stale_waivers("triton", found)  # every case compiled: this test is not a test_kernels_compile
    assert not stale, "waivers whose kernel now keeps the rule (remove them):\n" + "\n".join(stale)


def test_roofline_facts_match_the_compiler(compiled):
    """docs/gpu-kernel-facts.json (the roofline's registers, shared memory, load widths) is
    what the compiler gives for sm_90 today."""
    from sr_ops.bench import roofline

    now = roofline.summarise([r for r in compiled[1]["records"] if r["arch"] == 90], "triton")
    saved = roofline.load_facts()["triton"]
    differ = sorted(f"{k} {d}: file {saved.get(k, {}).get(d)} != compiler {v}" for k, by in now.items()
                    for d, v in by.items() if saved.get(k, {}).get(d) != v)
    assert not differ, "run python -m sr_ops.bench.roofline --update-facts:\n" + "\n".join(differ[:20])
