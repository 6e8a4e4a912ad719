"""The JSON document, markdown tables and final summary of `make gpu-check` (no torch here:
the driver that calls this must survive a broken torch)."""
from __future__ import annotations

SCHEMA = "sr_ops gpu-check 1"
# Relative error (||fused - pytorch|| / ||pytorch||) above which a row is flagged for a look
# (not a failure: the tests stage is the correctness check; bfloat16 references round differently).
CHECK_TOL = {"float32": 1e-3, "float16": 3e-2, "bfloat16": 3e-2, "int64": 0.0}


def _derive(rows: list[dict], mm: dict | None) -> list[dict]:
    base = {(r["op"], r["case"], r["dtype"]): r for r in rows if r.get("impl") == "pytorch" and r["status"] == "ok"}
    for r in rows:
        if r["status"] != "ok":
            continue
        b = base.get((r["op"], r["case"], r["dtype"]))
        if b is not None and r is not b:
            r["speedup"] = b["ms"] / r["ms"] if r["ms"] else None
            if b.get("peak_mb") and r.get("peak_mb"):
                r["mem_ratio"] = b["peak_mb"] / r["peak_mb"]
        if r.get("flops"):
            r["gflops"] = r["flops"] / (r["ms"] * 1e-3) / 1e9
            if mm and mm.get(r["dtype"]):
                r["mm_fraction"] = r["gflops"] / (mm[r["dtype"]] * 1e3)
        err, tol = r.get("rel_err"), CHECK_TOL.get(r["dtype"], 1e-3)
        r["check"] = err is not None and err > tol
    return rows


def assemble(records: list[dict], dry: bool, budget: float, started: str, wall_s: float) -> dict:
    by = {r["name"]: r for r in records}
    env = (by.get("env") or {}).get("result") or {}
    mm = ((by.get("mm") or {}).get("result") or {}).get("tflops")
    ops = [dict(r) for n in ("ops", "compile") for r in (by.get(n) or {}).get("rows", [])]
    models = [dict(r) for r in (by.get("models") or {}).get("rows", [])]
    stages = []
    for r in records:
        if r.get("rows") and any(x["status"] == "failed" for x in r["rows"]) and r["status"] in ("ok", "incomplete"):
            n = sum(x["status"] == "failed" for x in r["rows"])
            r = dict(r, status="failed", error=f"{n} rows failed" + (f"; {r['error']}" if r.get("error") else ""))
        stages.append({k: v for k, v in r.items() if k != "rows"})
    return {
        "schema": SCHEMA, "dry": dry, "started": started, "wall_s": round(wall_s, 1), "budget_s": budget,
        "env": env, "stages": stages, "mm_tflops": mm,
        "ops": _derive(ops, mm), "models": _derive(models, None),
        "roofline": [dict(r) for r in (by.get("roofline") or {}).get("rows", [])],
        "failed": [s["name"] for s in stages if s["status"] != "ok"],
    }


def _f(v, fmt="{:.3f}", empty=""):
    return empty if v is None else fmt.format(v)


def _table(head: list[str], body: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|",
            *("| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in body)]


def _first_line(s: str | None, n: int = 160) -> str:
    return "" if not s else s.strip().splitlines()[0][:n]


def markdown(doc: dict) -> str:
    env = doc["env"]
    what = "dry run on the CPU (tiny sizes; cpu and interpreted Triton stand in for cuda and triton)" if doc["dry"] \
        else env.get("device", "unknown GPU")
    lines = [f"# GPU check: {what}", "",
             f"`make gpu-check` started {doc['started']}, {doc['wall_s']:.0f} s of a {doc['budget_s']:.0f} s budget, "
             f"commit {env.get('commit') or 'unknown (no git checkout there)'}. "
             f"torch {env.get('torch')} (CUDA {env.get('torch_cuda')}), triton {env.get('triton')}, "
             f"{env.get('nvcc') or 'no nvcc'}; " + (f"{env.get('nvidia_smi')}; " if env.get("nvidia_smi") else "")
             + (f"{env.get('sms')} SMs, {env.get('memory_gib')} GiB. " if env.get("sms") else "")
             + f"TF32: {env.get('tf32')}. " + ("Failed or cut short: " + ", ".join(doc["failed"]) + "."
                                                if doc["failed"] else "Every stage passed."), ""]
    lines += ["## Stages", ""]
    lines += _table(["stage", "status", "seconds", "time box", "note"],
                    [[s["name"], s["status"], _f(s.get("seconds"), "{:.0f}"), _f(s.get("box_s"), "{:.0f}"),
                      _first_line(s.get("error")) or _stage_note(s)] for s in doc["stages"]])
    lines.append("")
    if doc["mm_tflops"]:
        lines += ["## torch.mm", ""]
        lines += _table(["dtype", "TFLOP/s"], [[k, f"{v:.1f}"] for k, v in doc["mm_tflops"].items()]) + [""]
    timing = "wall time" if doc["dry"] else "CUDA events, L2 flushed before each call"
    lines += ["## Ops", "",
              f"Median ms after warm-up ({timing}); peak = the largest memory allocated during one call over what "
              "was live before it (`torch.cuda.max_memory_allocated`; CPU: resident set). speedup and less memory: "
              "against `pytorch` (the pure-PyTorch way, mostly `sr_ops.reference`) of the same case and dtype. "
              "rel err: ‖out − pytorch‖ / ‖pytorch‖ (\\* above the dtype's tolerance). of mm: GFLOP/s over "
              "torch.mm's rate "
              "in that dtype.", ""]
    lines += _rows_table(doc["ops"], models=False) + [""]
    lines += ["## Models", "",
              "FPS = 1000 / the median ms of one frame; graph: timed as CUDA-graph replays (eager otherwise, "
              "reason in the failures list).", ""]
    lines += _rows_table(doc["models"], models=True) + [""]
    bad = [r for r in doc["ops"] + doc["models"] if r["status"] != "ok"]
    notes = [r for r in doc["models"] if r.get("graph_error")]
    if any(s["status"] != "ok" for s in doc["stages"]) or bad or notes:
        lines += ["## Failures and skips", ""]
        for s in doc["stages"]:
            if s["status"] != "ok":
                lines.append(f"- stage **{s['name']}** {s['status']}: {_first_line(s.get('error'), 600)}")
                for t in ((s.get("result") or {}).get("failed_tests") or [])[:30]:
                    lines.append(f"  - {t}")
        for r in bad:
            lines.append(f"- {r['key']}: {r['status']}: {_first_line(r.get('error'), 400)}")
        for r in notes:
            lines.append(f"- {r['key']}: no CUDA graph: {_first_line(r['graph_error'], 300)}")
        lines.append("")
    return "\n".join(lines)


def _stage_note(s: dict) -> str:
    res = s.get("result") or {}
    if s["name"] == "tests" and "tests" in res:
        return f"{res['passed']} passed, {res['skipped']} skipped, {res['failures'] + res['errors']} failed"
    if s["name"] == "build" and res.get("built_with"):
        return f"built with {res['built_with']}"
    if s["name"] == "env":
        return res.get("device") or ""
    return ""


def _rows_table(rows: list[dict], models: bool) -> list[str]:
    if models:
        head = ["model", "case", "dtype", "impl", "backend", "time ms", "FPS", "graph", "peak MB", "speedup", "rel err"]
    else:
        head = ["op", "case", "dtype", "impl", "backend", "time ms", "peak MB", "speedup", "less memory", "rel err",
                "GFLOP/s", "of mm"]
    body = []
    for r in rows:
        if r["status"] != "ok":
            cells = [r["op"], r["case"], r["dtype"], r["impl"], r["backend"], r["status"]]
            body.append(cells + [""] * (len(head) - len(cells)))
            continue
        err = _f(r.get("rel_err"), "{:.1e}") + ("\\*" if r.get("check") else "")
        common = [r["op"], r["case"], r["dtype"], r["impl"], r["backend"], _f(r["ms"])]
        if models:
            body.append(common + [_f(r.get("fps"), "{:.1f}"), "yes" if r.get("graph") else "no",
                                  _f(r.get("peak_mb"), "{:.1f}", "n/a"), _f(r.get("speedup"), "{:.2f}x"), err])
        else:
            body.append(common + [_f(r.get("peak_mb"), "{:.1f}", "n/a"), _f(r.get("speedup"), "{:.2f}x"),
                                  _f(r.get("mem_ratio"), "{:.2f}x"), err, _f(r.get("gflops"), "{:.1f}"),
                                  _f(r.get("mm_fraction"), "{:.1%}")])
    return _table(head, body)


def summary(doc: dict) -> str:
    lines = ["", "==== gpu-check summary" + (" (dry run)" if doc["dry"] else "") + " ===="]
    for s in doc["stages"]:
        note = _first_line(s.get("error"), 200) or _stage_note(s)
        lines.append(f"  {s['name']:8s} {s['status']:10s} {s.get('seconds', 0):6.0f} s  {note}")
    for name in ("ops", "models"):
        rows = doc[name]
        if rows:
            n = {k: sum(r["status"] == k for r in rows) for k in ("ok", "failed", "skipped", "n/a")}
            flagged = sum(bool(r.get("check")) for r in rows)
            lines.append(f"  {name} rows: {n['ok']} ok, {n['failed']} failed, {n['skipped']} skipped (time box), "
                         f"{n['n/a']} n/a"
                         + (f", {flagged} with rel err above tolerance" if flagged else ""))
    if doc["mm_tflops"]:
        lines.append("  torch.mm TFLOP/s: " + ", ".join(f"{k} {v:.1f}" for k, v in doc["mm_tflops"].items()))
    for r in doc["models"]:
        if r["status"] == "ok":
            lines.append(f"  {r['op']} {r['dtype']} {r['impl']}/{r['backend']}: {r['fps']:.1f} FPS"
                         + (" (graph)" if r.get("graph") else ""))
    verdict = "FAILED: " + ", ".join(doc["failed"]) if doc["failed"] else "all ok"
    lines.append(f"  wall {doc['wall_s']:.0f} s; {verdict}")
    return "\n".join(lines)
