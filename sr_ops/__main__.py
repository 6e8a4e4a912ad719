"""Command line: `python -m sr_ops bench [--quick]` (also installed as `sr-ops`)."""
from __future__ import annotations

import argparse
import json
import sys


def _bench(args) -> int:
    from sr_ops.bench import runner

    info = runner.machine()
    print(f"sr_ops bench on {info['machine']} ({info['cpu_threads']} threads), torch {info['torch']}, "
          f"backends {info['backends']}" + (f", GPU {info['cuda']}" if info["cuda"] else ""))
    rows = runner.run(quick=args.quick, ops=args.op, device=args.device, repeats=args.repeats,
                      with_compile=args.compile, log=lambda m: print(m, file=sys.stderr))
    print(runner.format_table(rows))
    if any(r.gflops for r in rows):
        info["mm_gflops"] = runner.mm_gflops(args.device)
        print(f"torch.mm float32 on this machine: {info['mm_gflops']:.1f} GFLOP/s "
              "(GFLOP/s above count the useful work only, e.g. KNN's windowed 2*m*w^2*C*p^2)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": info, "rows": runner.as_dicts(rows)}, f, indent=1)
        print(f"wrote {args.json}")
    return 0


def _eval(args) -> int:
    from sr_ops import models
    from sr_ops.evaluate import evaluate, format_rows

    if args.model not in models.available():
        print(f"sr-ops: unknown model {args.model!r}; available: {', '.join(models.available())}", file=sys.stderr)
        return 2
    try:
        model = models.build(args.model, args.scale, args.checkpoint).to(args.device)
        rows = evaluate(model, args.dataset, args.scale, args.device)
    except (FileNotFoundError, KeyError, ValueError) as exc:
        print(f"sr-ops: {exc}", file=sys.stderr)
        return 2
    print(format_rows(rows, args.model, args.scale))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sr-ops", description="Fused operators for image super-resolution.")
    sub = parser.add_subparsers(dest="command", required=True)
    bench = sub.add_parser("bench", help="fused ops vs pure PyTorch: time and peak memory")
    bench.add_argument("--quick", action="store_true", help="the smaller, faster set of cases")
    bench.add_argument("--op", action="append", help="only this op (repeatable)")
    bench.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    bench.add_argument("--repeats", type=int, default=None, help="timed repeats per implementation")
    bench.add_argument("--compile", action="store_true", help="also time torch.compile of the PyTorch way")
    bench.add_argument("--json", help="also write the rows as JSON to this path")
    bench.set_defaults(func=_bench)
    ev = sub.add_parser("eval", help="PSNR on a folder of HR images (LR made with MATLAB bicubic), vs bicubic")
    ev.add_argument("--model", required=True)
    ev.add_argument("--scale", type=int, required=True)
    ev.add_argument("--checkpoint", default=None)
    ev.add_argument("--dataset", required=True, help="folder of HR images (SelfExSR *_HR.png or plain)")
    ev.add_argument("--device", default="cpu")
    ev.set_defaults(func=_eval)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
