"""`computenet demand report`: tell the broker where an inference job's users are now."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated

import typer

from computenet.cli.common import (
    EXIT_USAGE,
    PROG,
    BrokerOption,
    JsonOption,
    TimeoutOption,
    connect,
    reporting_violations,
)
from computenet.cli.jobs import JobIdArg
from computenet.cli.safe_text import echo
from computenet.cli.tables import OutputOption, emit_document, is_document, output_format
from computenet.client import DEFAULT_BROKER, DEFAULT_TIMEOUT_S

app = typer.Typer(help="Report the live user demand of inference jobs (rebalancing follows it).")

WeightsArg = Annotated[
    list[str],
    typer.Argument(
        help="REGION=WEIGHT pairs: user regions of the topology with relative weights or "
        "request rates (>= 0), e.g. beijing=120 shanghai=40."
    ),
]


def parse_weights(pairs: list[str]) -> list[tuple[str, float]]:
    """REGION=WEIGHT pairs in order; a malformed pair is a usage error (exit 2)."""
    out: list[tuple[str, float]] = []
    for pair in pairs:
        region, sep, text = pair.partition("=")
        try:
            weight = float(text)
        except ValueError:
            weight = math.nan
        if not sep or not region.strip() or math.isnan(weight):
            echo(f"{PROG}: error: {pair!r}: expected REGION=WEIGHT, e.g. beijing=2.5", err=True)
            raise typer.Exit(EXIT_USAGE)
        out.append((region.strip(), weight))
    return out


@app.command("report")
def report(
    job_id: JobIdArg,
    weights: WeightsArg,
    broker: BrokerOption = DEFAULT_BROKER,
    as_json: JsonOption = False,
    output: OutputOption = None,
    timeout_s: TimeoutOption = DEFAULT_TIMEOUT_S,
) -> None:
    """Replace an inference job's demand per user region with these weights."""
    fmt = output_format(output, as_json)
    pairs = parse_weights(weights)
    with connect(broker, timeout_s) as client, reporting_violations():
        # a region given twice is left to the broker, which names it with the other problems
        stored = client.report_demand(job_id, pairs)
    if is_document(fmt):
        emit_document(
            {
                "job_id": stored.job_id,
                "weights": dict(sorted(stored.weights.items())),
                "reported_unix_ms": stored.reported_unix_ms,
            },
            fmt,
        )
        return
    at = datetime.fromtimestamp(stored.reported_unix_ms / 1000, UTC)
    shown = " ".join(f"{r}={w:g}" for r, w in sorted(stored.weights.items()))
    echo(f"demand of {stored.job_id} at {at:%Y-%m-%d %H:%M:%SZ}: {shown}")
