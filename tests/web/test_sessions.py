"""Console sessions and CSRF: signed cookies read back only when untouched and fresh."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from broker.web.sessions import Session, SessionCodec, csrf_ok, fresh_session


def test_a_session_round_trips_through_its_cookie() -> None:
    codec = SessionCodec(b"k" * 32)
    session = fresh_session("ab" * 32)
    assert codec.loads(codec.dumps(session)) == session
    assert session.logged_in and not fresh_session().logged_in


def test_another_key_a_changed_byte_or_garbage_reads_as_no_session() -> None:
    session = fresh_session("cd" * 32)
    value = SessionCodec(b"a" * 32).dumps(session)
    assert SessionCodec(b"b" * 32).loads(value) is None
    flipped = value[:-3] + ("A" if value[-3] != "A" else "B") + value[-2:]
    assert SessionCodec(b"a" * 32).loads(flipped) is None
    for junk in (None, "", "x", "a.b.c", "[]"):
        assert SessionCodec(b"a" * 32).loads(junk) is None


def test_an_expired_cookie_reads_as_no_session() -> None:
    codec = SessionCodec(b"k" * 32, max_age_s=1)
    value = codec.dumps(fresh_session("ef" * 32))
    later = SessionCodec(b"k" * 32, max_age_s=-1)  # any age is too old
    assert later.loads(value) is None
    assert codec.loads(value) is not None


def test_each_session_gets_its_own_csrf_secret() -> None:
    secrets = {fresh_session().csrf for _ in range(50)}
    assert len(secrets) == 50


def test_csrf_passes_only_with_the_sessions_own_secret() -> None:
    session = fresh_session()
    assert csrf_ok(session, session.csrf)
    assert not csrf_ok(session, fresh_session().csrf)
    assert not csrf_ok(session, "")
    assert not csrf_ok(session, None)
    assert not csrf_ok(None, session.csrf)
    assert not csrf_ok(session, ["list"])


@given(st.text(max_size=80))
def test_no_presented_text_but_the_secret_passes(presented: str) -> None:
    session = Session(csrf="the-secret", token_sha256="")
    assert csrf_ok(session, presented) == (presented == "the-secret")
