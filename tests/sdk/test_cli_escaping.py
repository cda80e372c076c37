"""Text the CLI did not write (job names, reasons, event messages, site names) reaches the
terminal with its control characters escaped and its rich markup shown literally."""

from __future__ import annotations

import json

import pytest

import tests.sdk.fake_broker as fake_module
from computenet.cli.main import app
from computenet.cli.runner import run_app
from computenet.printable import escaped, escaped_json
from computenet.spec import JobSpec
from computenet.spec_limits import ACCEPTED
from computenet.types import (
    CandidateSite,
    Job,
    JobEvent,
    JobId,
    JobState,
    Placement,
    SiteId,
    SiteInfo,
    SiteStatus,
    TenantId,
)
from tests.sdk.fake_broker import RunningFake

EVIL = "\x1b[2J\x07evil"
MARKUP = "[red]x"
MESSAGE = "exit\x1b]0;pwned\x07 \u202eoops\x9b1m\nfake line"
RAW = ("\x1b", "\x07", "\u202e", "\x9b")


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as done:
        run_app(app, "computenet", list(argv))
    out, err = capsys.readouterr()
    return int(done.value.code or 0), out, err


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    return [s for item in value for s in _strings(item)] if isinstance(value, list) else []


def _clean(text: str) -> bool:
    return not any(raw in text for raw in RAW)


@pytest.fixture
def hostile(fake: RunningFake, monkeypatch: pytest.MonkeyPatch) -> RunningFake:
    """The stand-in holding a job named EVIL (accepted before names were checked), one named
    MARKUP, events and a placement carrying hostile text from a site."""
    monkeypatch.setenv("COLUMNS", "250")
    spec = {"name": EVIL, "kind": "batch", "duration_hours": 1.0, "command": ["true"]}
    evil = JobSpec.model_validate(spec, context=ACCEPTED)
    marked = evil.model_copy(update={"name": MARKUP})
    broker = fake.broker
    broker.jobs["j-1"] = Job(JobId("j-1"), TenantId("demo"), evil, JobState.RUNNING,
                             SiteId("s1"), 1, reason=MESSAGE)  # fmt: skip
    broker.jobs["j-2"] = Job(JobId("j-2"), TenantId("demo"), marked, JobState.PENDING)
    for sequence, state in ((1, JobState.RUNNING), (2, JobState.FAILED)):
        broker.events.append(
            JobEvent(
                sequence,
                JobId("j-1"),
                state,
                f"site_report{EVIL}",
                1000,
                SiteId("s1"),
                1,
                MESSAGE,
                3 if state is JobState.FAILED else None,
            )
        )
    placement = Placement(
        chosen=SiteId(MARKUP),
        candidates=(
            CandidateSite(SiteId(MARKUP), True, "", {"energy": 1.0}, 1.0),
            CandidateSite(SiteId("s2"), False, MESSAGE, {}, 0.0),
        ),
    )
    monkeypatch.setattr(fake_module, "PLACEMENT", placement)
    broker.sites = {
        "s1": SiteInfo(SiteId("s1"), EVIL, MARKUP, "west", SiteStatus.ACTIVE, agent_version=EVIL)
    }
    return fake


@pytest.mark.parametrize(
    "argv",
    [
        ("jobs", "list"),
        ("jobs", "get", "j-1"),
        ("jobs", "watch", "j-1"),
        ("jobs", "watch"),
        ("explain", "j-1"),
        ("sites",),
        ("sites", "get", "s1"),
    ],
    ids=lambda argv: "-".join(argv),
)
def test_text_output_escapes_control_characters_and_markup(
    hostile: RunningFake, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]
) -> None:
    if argv == ("jobs", "watch"):  # every job's events: a stream that ends when the server's does
        argv = (*argv, "--after", "0")
    code, out, err = cli(capsys, *argv, "--broker", hostile.address)
    assert (code, err) == (0, "")
    assert _clean(out), out
    shown = {"jobs-list": [escaped(EVIL), MARKUP], "jobs-get-j-1": [escaped(EVIL)],
             "jobs-watch-j-1": [escaped(MESSAGE)], "jobs-watch": [escaped(MESSAGE)],
             "explain-j-1": [MARKUP, "\\x1b]0;pwned"], "sites": ["s1"],
             "sites-get-s1": [escaped(EVIL), MARKUP]}  # fmt: skip
    for text in shown["-".join(a for a in argv if a not in ("--after", "0"))]:
        assert text in out, (text, out)


def test_the_escaped_form_keeps_the_characters_visible() -> None:
    assert escaped(EVIL) == "\\x1b[2J\\x07evil"
    assert escaped(MESSAGE).count("\n") == 0 and "\\u202e" in escaped(MESSAGE)
    assert escaped("中文 tab\there") == "中文 tab\\there"


@pytest.mark.parametrize(
    "argv", [("jobs", "list"), ("jobs", "get", "j-1"), ("jobs", "watch", "j-1"), ("explain", "j-1")]
)
def test_json_output_is_escaped_and_still_decodes_to_the_same_text(
    hostile: RunningFake, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]
) -> None:
    code, out, _ = cli(capsys, *argv, "--broker", hostile.address, "--json")
    assert code == 0 and _clean(out)
    strings = set(_strings([json.loads(line) for line in out.splitlines()]))
    assert EVIL in strings or MESSAGE in strings, strings


def test_escaped_json_is_valid_json_of_the_same_value() -> None:
    value = {"name": EVIL, "message": MESSAGE, "odd": "\ud800\x7f\u2028"}
    text = escaped_json(json.dumps(value, ensure_ascii=False))
    assert _clean(text) and "\ud800" not in text and "\u2028" not in text
    assert json.loads(text) == value


def test_errors_from_the_broker_are_escaped_on_one_line(
    fake: RunningFake, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(capsys, "jobs", "get", EVIL, "--broker", fake.address)
    assert (code, out) == (1, "")
    assert err == f"computenet: error: job {escaped(EVIL)} not found\n"
