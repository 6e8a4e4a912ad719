"""Command line (also installed as `sr-ops`):

    python -m sr_ops bench [--quick] [--op OP] [--threads 1,2] [--json PATH] [--plot PATH]
    python -m sr_ops eval --model NAME --scale S --dataset DIR [--csv PATH]
    python -m sr_ops upscale IN OUT --model NAME --scale S [--tile N] [--ensemble]
    torchrun --standalone --nproc_per_node N -m sr_ops upscale IN_DIR OUT_DIR ...

Mistakes a person can fix (unknown model, missing checkpoint or dataset, a scale the
model lacks, an unreadable image) print one line and exit with status 2.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def _thread_list(text: str) -> list[int]:
    try:
        counts = [int(t) for t in text.split(",")]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"expected positive thread counts like 1,2; got {text!r}")
    return counts


def _bench(args) -> int:
    from sr_ops.bench import plot, runner

    if args.plot:
        try:  # before the minutes of benchmarking, not after
            plot.require_matplotlib()
        except ImportError as exc:
            print(f"sr-ops: {exc}", file=sys.stderr)
            return 2

    if args.op:
        known = sorted({c.op for c in runner.all_cases()})
        unknown = [op for op in args.op if op not in known]
        if unknown:
            print(f"sr-ops: unknown --op {', '.join(unknown)}; available: {', '.join(known)}", file=sys.stderr)
            return 2

    for path in (args.json, args.plot):
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    info = runner.machine()
    kept = False
    if not args.system_malloc:
        from sr_ops.cpu_memory import keep_freed_memory

        kept = keep_freed_memory()
    info["malloc"] = "glibc, freed memory kept (sr_ops.cpu_memory)" if kept else "system default"
    print(f"malloc: {info['malloc']}")
    print(f"sr_ops bench on {info['machine']} ({info['cpu_threads']} threads), torch {info['torch']}, "
          f"backends {info['backends']}" + (f", GPU {info['cuda']}" if info["cuda"] else ""))
    try:
        rows = runner.run(quick=args.quick, ops=args.op, device=args.device, repeats=args.repeats,
                          with_compile=args.compile, log=lambda m: print(m, file=sys.stderr),
                          threads=args.threads)
    finally:
        if kept:
            from sr_ops.cpu_memory import release_freed_memory

            release_freed_memory()
    print(runner.format_table(rows))
    four = runner.format_four(rows)
    if four:
        print("\nEager, sr_ops and torch.compile of each:\n" + four)
    if any(r.gflops for r in rows):
        if args.threads:
            info["mm_gflops"] = {r.threads: r.gflops / r.mm_fraction for r in rows if r.mm_fraction}
        else:
            info["mm_gflops"] = runner.mm_gflops(args.device)
        mm = info["mm_gflops"]
        mm_text = (", ".join(f"{v:.1f} at {t} thread(s)" for t, v in mm.items()) if isinstance(mm, dict)
                   else f"{mm:.1f}")
        print(f"torch.mm float32 on this machine: {mm_text} GFLOP/s (GFLOP/s above count the useful work "
              "only: KNN's windowed 2*m*w^2*C*p^2, global 2*m*n*C*p^2)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": info, "rows": runner.as_dicts(rows)}, f, indent=1)
        print(f"wrote {args.json}")
    if args.plot:
        plot.speedups(runner.as_dicts(rows), info, args.plot)
        print(f"wrote {args.plot}")
    return 0


def _eval(args) -> int:
    from sr_ops.cli.upscale import UsageError, build_model, check_device, model_fn, one_line
    from sr_ops.evaluate import evaluate, format_rows, write_csv
    from sr_ops.tiled import tiled

    try:
        if args.csv:  # before the evaluation, not after it
            folder = Path(args.csv).resolve().parent
            if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
                raise UsageError(f"cannot write --csv {args.csv}: {folder} is not a writable folder")
        check_device(args.device)
        if args.chop == "official" and args.tile is not None:
            raise UsageError("--chop official and --tile are two ways to cut the image: pick one")
        options = {"chop": "official"} if args.chop == "official" else {}
        model = build_model(args.model, args.scale, args.checkpoint, **options).to(args.device)
        fn = model_fn(model, args.ensemble)
        if args.tile is not None:
            whole = fn
            fn = lambda t: tiled(whole, t, args.scale, tile=args.tile, overlap=args.overlap, align=8)  # noqa: E731
        rows = evaluate(fn, args.dataset, args.scale, args.device)
    except (UsageError, FileNotFoundError, KeyError, ValueError) as exc:
        print(f"sr-ops: {one_line(exc)}", file=sys.stderr)
        return 2
    print(format_rows(rows, args.model + ("+" if args.ensemble else ""), args.scale))
    if args.csv:
        try:
            write_csv(rows, args.csv)
        except OSError as exc:
            print(f"sr-ops: cannot write --csv {args.csv}: {exc.strerror or one_line(exc)}", file=sys.stderr)
            return 2
        print(f"wrote {args.csv}")
    return 0


def main(argv: list[str] | None = None) -> int:
    from sr_ops.cli import upscale

    parser = argparse.ArgumentParser(prog="sr-ops", description="Fused operators for image super-resolution.")
    sub = parser.add_subparsers(dest="command", required=True)
    bench = sub.add_parser("bench", help="fused ops vs pure PyTorch: time and peak memory")
    bench.add_argument("--quick", action="store_true", help="the smaller, faster set of cases")
    bench.add_argument("--op", action="append", help="only this op (repeatable)")
    bench.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    bench.add_argument("--repeats", type=int, default=None, help="timed repeats per implementation")
    bench.add_argument("--compile", action="store_true", help="also time torch.compile of the PyTorch way")
    bench.add_argument("--threads", type=_thread_list, default=None,
                       help="CPU thread counts to run at, e.g. 1,2 (default: torch's current)")
    bench.add_argument("--system-malloc", action="store_true",
                       help="leave glibc's thresholds alone (by default freed memory is kept for reuse, "
                            "for every column alike: see sr_ops/cpu_memory.py)")
    bench.add_argument("--json", help="also write the rows as JSON to this path")
    bench.add_argument("--plot", help="also draw the speedups as a PNG here (needs matplotlib)")
    bench.set_defaults(func=_bench)
    ev = sub.add_parser("eval", help="PSNR/SSIM on a folder of HR images (LR made with MATLAB bicubic), vs bicubic")
    ev.add_argument("--model", required=True)
    ev.add_argument("--scale", type=int, required=True)
    ev.add_argument("--checkpoint", default=None)
    ev.add_argument("--dataset", required=True, help="folder of HR images (SelfExSR *_HR.png or plain)")
    ev.add_argument("--device", default="cpu")
    ev.add_argument("--csv", help="also write the per-image rows and the mean as CSV here")
    ev.add_argument("--ensemble", action="store_true", help="x8 self-ensemble (the '+' models)")
    ev.add_argument("--tile", type=int, default=None, help="run tiled, tiles of this side (input pixels)")
    ev.add_argument("--overlap", type=int, default=16, help="tile context pixels (with --tile)")
    ev.add_argument("--chop", choices=("none", "official"), default="none",
                    help="official: the model's own test-time chop (IGNN: the official recursive "
                         "quadrants, with which its published PSNRs were measured)")
    ev.set_defaults(func=_eval)
    upscale.add_parser(sub)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
