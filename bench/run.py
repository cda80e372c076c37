"""Benchmark runner: discovers bench/bench_*.py, runs each and writes JSON to the output folder."""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import time
from pathlib import Path


def _machine() -> dict[str, object]:
    import os

    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--out", default="bench/results", help="folder for the JSON results")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks they still run")
    parser.add_argument("--soak", action="store_true", help="long, bounded load runs")
    parser.add_argument("--only", default="", help="comma-separated benchmark names to run")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    names = sorted(p.stem for p in Path(__file__).parent.glob("bench_*.py"))
    wanted = {n.strip() for n in args.only.split(",") if n.strip()}
    failures = 0
    for name in names:
        short = name.removeprefix("bench_")
        if wanted and short not in wanted and name not in wanted:
            continue
        module = importlib.import_module(f"bench.{name}")
        print(f"== {short}", flush=True)
        started = time.perf_counter()
        try:
            result = module.run(smoke=args.smoke)
        except Exception as exc:  # a failing benchmark is reported, the others still run
            print(f"   FAILED: {exc!r}", file=sys.stderr)
            failures += 1
            continue
        record = {
            "benchmark": short,
            "smoke": args.smoke,
            "seconds": round(time.perf_counter() - started, 3),
            "machine": _machine(),
            "results": result,
        }
        path = out / f"{short}{'-smoke' if args.smoke else ''}.json"
        path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        print(json.dumps(result, indent=2, sort_keys=True))
        print(f"   wrote {path}", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
