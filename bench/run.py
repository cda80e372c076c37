"""Benchmark runner: discovers bench/bench_*.py, runs each and writes JSON to the output folder.

With --soak it runs only the modules that define `soak(minutes)` and writes `<name>-soak.json`.
A result with `"ok": false` counts as a failure, so the exit status is non-zero.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
from pathlib import Path

SOAK_MINUTES_ENV = "COMPUTENET_SOAK_MINUTES"
DEFAULT_SOAK_MINUTES = 10.0


def _machine() -> dict[str, object]:
    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }


def _soak_minutes(flag: float | None) -> float:
    """Soak length: --minutes, else COMPUTENET_SOAK_MINUTES, else the default."""
    if flag is not None:
        return flag
    raw = os.environ.get(SOAK_MINUTES_ENV, "").strip()
    if not raw:
        return DEFAULT_SOAK_MINUTES
    try:
        return float(raw)
    except ValueError:
        raise SystemExit(f"bench.run: {SOAK_MINUTES_ENV}={raw!r} is not a number") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--out", default="bench/results", help="folder for the JSON results")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks they still run")
    parser.add_argument(
        "--soak",
        action="store_true",
        help="long, bounded load runs: only benchmarks that define soak(minutes)",
    )
    parser.add_argument(
        "--minutes",
        type=float,
        default=None,
        help=f"soak length (default: ${SOAK_MINUTES_ENV}, else {DEFAULT_SOAK_MINUTES:g})",
    )
    parser.add_argument("--only", default="", help="comma-separated benchmark names to run")
    args = parser.parse_args(argv)
    if args.soak and args.smoke:
        parser.error("--soak and --smoke exclude each other")
    minutes = _soak_minutes(args.minutes) if args.soak else None
    if minutes is not None and minutes <= 0:
        parser.error("the soak length must be positive")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    names = sorted(p.stem for p in Path(__file__).parent.glob("bench_*.py"))
    wanted = {n.strip() for n in args.only.split(",") if n.strip()}
    failures = ran = 0
    for name in names:
        short = name.removeprefix("bench_")
        if wanted and short not in wanted and name not in wanted:
            continue
        module = importlib.import_module(f"bench.{name}")
        if minutes is not None and not callable(getattr(module, "soak", None)):
            continue
        print(f"== {short}" + (f" (soak, {minutes:g} min)" if minutes is not None else ""))
        sys.stdout.flush()
        ran += 1
        started = time.perf_counter()
        try:
            result = module.soak(minutes) if minutes is not None else module.run(smoke=args.smoke)
        except Exception as exc:  # a failing benchmark is reported, the others still run
            print(f"   FAILED: {exc!r}", file=sys.stderr)
            failures += 1
            continue
        record: dict[str, object] = {
            "benchmark": short,
            "smoke": args.smoke,
            "seconds": round(time.perf_counter() - started, 3),
            "machine": _machine(),
            "results": result,
        }
        if minutes is not None:
            record["soak_minutes"] = minutes
            suffix = "-soak"
        else:
            suffix = "-smoke" if args.smoke else ""
        path = out / f"{short}{suffix}.json"
        path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        print(json.dumps(result, indent=2, sort_keys=True))
        print(f"   wrote {path}", flush=True)
        if isinstance(result, dict) and result.get("ok") is False:
            print(f"   NOT OK: {result.get('reasons')}", file=sys.stderr)
            failures += 1
    if minutes is not None and not ran:
        print("bench.run: no benchmark defines soak(minutes)", file=sys.stderr)
        return 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
