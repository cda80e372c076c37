"""Preflight verdicts of `computenet-agent check`: pure judgements of what the probes found, each
one line that says PASS, WARN, FAIL or SKIP and why."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from site_agent.link import PreflightAnswer


class Verdict(StrEnum):
    """How one check went; any FAIL makes `check` exit non-zero."""

    PASS = "PASS"
    WARN = "WARN"
    FAIL = "FAIL"
    SKIP = "SKIP"


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the preflight."""

    verdict: Verdict
    name: str
    detail: str

    def line(self) -> str:
        """`PASS  tls          ...`: fixed columns so a column of verdicts reads at a glance."""
        return f"{self.verdict.value:<4}  {self.name:<11}  {self.detail}"

    def to_dict(self) -> dict[str, str]:
        """The JSON shape of a check in `check --json`."""
        return {"verdict": self.verdict.value, "name": self.name, "detail": self.detail}


def failed(checks: Iterable[Check]) -> list[Check]:
    """The checks that failed."""
    return [c for c in checks if c.verdict is Verdict.FAIL]


EXPIRY_WARNING = timedelta(days=30)
"""A certificate that ends sooner than this gets a WARN: time to renew it."""


def validity(what: str, not_before: datetime, not_after: datetime, now: datetime) -> Check:
    """Whether a certificate is valid now, and for how long still."""
    if now < not_before:
        starts = f"{not_before:%Y-%m-%d %H:%M}Z"
        return Check(Verdict.FAIL, "tls", f"{what} is not valid before {starts}")
    if now >= not_after:
        return Check(Verdict.FAIL, "tls", f"{what} expired on {not_after:%Y-%m-%d %H:%M}Z")
    left = not_after - now
    detail = f"{what} valid until {not_after:%Y-%m-%d} ({left.days} days left)"
    if left < EXPIRY_WARNING:
        return Check(Verdict.WARN, "tls", f"{detail}: renew it soon")
    return Check(Verdict.PASS, "tls", detail)


SKEW_WARN_MS = 2_000
"""Skew worth fixing: event times and usage records from this site disagree with the broker's."""

SKEW_FAIL_MS = 60_000
"""Skew that breaks things: certificate validity windows and hour-of-day power prices shift."""


def clock(address: str, answer: PreflightAnswer) -> Check:
    """The agent's clock against a broker's, with the call's round trip as the uncertainty."""
    skew, slack = answer.skew_ms, answer.round_trip_ms // 2 + 1
    detail = f"broker {address} clock is {skew:+d} ms from this host's (±{slack} ms)"
    off_by = max(0, abs(skew) - slack)  # what the measurement cannot explain
    if off_by > SKEW_FAIL_MS:
        return Check(Verdict.FAIL, "clock", f"{detail}: synchronise this host (NTP)")
    if off_by > SKEW_WARN_MS:
        return Check(Verdict.WARN, "clock", f"{detail}: check NTP on both")
    return Check(Verdict.PASS, "clock", detail)


Outcome = PreflightAnswer | str
"""A broker's answer to the preflight, or why there was none."""

OLD_BROKER = "UNIMPLEMENTED"


def brokers(site: str, outcomes: Mapping[str, Outcome]) -> list[Check]:
    """One line per broker address and one clock line from the first that answered.

    An unreachable address is a FAIL only when none answers (the agent tries them in turn); a
    broker that takes the agent for another site, or does not know the site, is a FAIL.
    """
    checks: list[Check] = []
    answered = [a for a in outcomes.values() if isinstance(a, PreflightAnswer)]
    old = [addr for addr, o in outcomes.items() if isinstance(o, str) and OLD_BROKER in o]
    reached = bool(answered or old)
    for address, outcome in outcomes.items():
        if address in old:
            checks.append(Check(Verdict.PASS, "broker", f"{address} answers (an older broker)"))
        elif isinstance(outcome, str):
            verdict = Verdict.WARN if reached else Verdict.FAIL
            checks.append(Check(verdict, "broker", outcome))
        elif outcome.site_id and outcome.site_id != site:
            checks.append(
                Check(
                    Verdict.FAIL,
                    "broker",
                    f"{address} takes this agent for site {outcome.site_id!r} (its certificate), "
                    f"the config says {site!r}",
                )
            )
        elif not outcome.site_known:
            checks.append(
                Check(Verdict.FAIL, "broker", f"{address} does not know site {site!r} (topology)")
            )
        else:
            checks.append(
                Check(
                    Verdict.PASS,
                    "broker",
                    f"{address} answers and knows site {site} ({outcome.round_trip_ms} ms)",
                )
            )
    first = next(((a, o) for a, o in outcomes.items() if isinstance(o, PreflightAnswer)), None)
    if first is not None:
        checks.append(clock(*first))
    elif old:
        silent = "not checked: the broker does not tell its time"
        checks.append(Check(Verdict.WARN, "clock", silent))
    return checks
