"""The pure rules of leadership terms: when a replica may act as leader, and when it must stop."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.leadership.term import LeadershipTiming, Term, expired, judge

TIMING = LeadershipTiming(lease_s=5.0, renew_every_s=1.0, step_down_margin_s=1.5)


def test_a_won_lease_starts_a_term_valid_until_before_the_lease_ends() -> None:
    verdict = judge(None, 7, sent_s=100.0, now_s=100.2, now_unix_ms=5_000, timing=TIMING)
    assert verdict.elected and not verdict.deposed
    assert verdict.term == Term(epoch=7, since_unix_ms=5_000, valid_until_s=103.5)


def test_a_renewal_extends_the_term_and_keeps_its_start() -> None:
    term = Term(7, 5_000, 103.5)
    verdict = judge(term, 7, sent_s=101.0, now_s=101.1, now_unix_ms=6_000, timing=TIMING)
    assert not verdict.elected and not verdict.deposed
    assert verdict.term == Term(7, 5_000, 104.5)


def test_a_failed_renewal_keeps_the_term_only_until_it_runs_out() -> None:
    term = Term(7, 5_000, 103.5)
    kept = judge(term, None, sent_s=102.0, now_s=102.5, now_unix_ms=0, timing=TIMING)
    assert kept.term == term and not kept.deposed
    lost = judge(term, None, sent_s=102.0, now_s=103.5, now_unix_ms=0, timing=TIMING)
    assert lost.term is None and lost.deposed


def test_a_renewal_answered_too_late_to_be_trusted_counts_as_failed() -> None:
    term = Term(7, 5_000, 103.5)
    # sent at 99.9, so it would grant validity until 103.4: answered at 103.45, already past
    late = judge(term, 7, sent_s=99.9, now_s=103.45, now_unix_ms=0, timing=TIMING)
    assert late.term == term and not late.elected


def test_a_new_epoch_ends_the_old_term_and_starts_another() -> None:
    term = Term(7, 5_000, 103.5)
    verdict = judge(term, 8, sent_s=101.0, now_s=101.1, now_unix_ms=9_000, timing=TIMING)
    assert verdict.deposed == "epoch changed" and verdict.elected
    assert verdict.term is not None and verdict.term.epoch == 8


def test_the_same_epoch_after_the_term_ran_out_is_a_new_start() -> None:
    # the replica stopped acting (e.g. it was frozen): its state is gone and must be rebuilt
    term = Term(7, 5_000, 103.5)
    verdict = judge(term, 7, sent_s=110.0, now_s=110.1, now_unix_ms=9_000, timing=TIMING)
    assert verdict.elected and verdict.deposed == "lease lapsed before renewal"


def test_expiry_is_noticed_without_a_renewal_attempt() -> None:
    term = Term(7, 5_000, 103.5)
    assert expired(term, 103.0) is None
    verdict = expired(term, 103.5)
    assert verdict is not None and verdict.term is None and verdict.deposed
    assert expired(None, 1e9) is None


@pytest.mark.parametrize(
    ("lease_s", "renew_s", "margin_s"),
    [(3.0, 1.0, 1.5), (5.0, 0.0, 1.0), (5.0, 1.0, -1.0), (0.0, 1.0, 0.0)],
)
def test_timings_that_leave_no_room_are_refused(
    lease_s: float, renew_s: float, margin_s: float
) -> None:
    with pytest.raises(ValueError):
        LeadershipTiming(lease_s=lease_s, renew_every_s=renew_s, step_down_margin_s=margin_s)


attempts = st.lists(
    st.tuples(
        st.floats(min_value=0.0, max_value=3.0),  # gap since the previous attempt was sent
        st.floats(min_value=0.0, max_value=6.0),  # how long the attempt took
        st.one_of(st.none(), st.integers(min_value=1, max_value=3)),  # epoch won, if any
    ),
    max_size=40,
)


@given(attempts)
def test_a_replica_never_acts_past_the_lease_its_last_won_attempt_wrote(
    history: list[tuple[float, float, int | None]],
) -> None:
    """Whatever the delays, a held term is valid only while the database lease it last wrote
    (sent time + lease, by a clock at most the margin apart) still stands."""
    term: Term | None = None
    sent = 0.0
    last_won_sent: float | None = None
    for gap, took, epoch in history:
        sent += gap
        now = sent + took
        verdict = judge(
            term, epoch, sent_s=sent, now_s=now, now_unix_ms=int(now * 1000), timing=TIMING
        )
        if epoch is not None and now < TIMING.valid_until(sent):
            last_won_sent = sent
        term = verdict.term
        if term is not None:
            assert last_won_sent is not None
            assert term.valid_until_s <= last_won_sent + TIMING.lease_s - TIMING.step_down_margin_s
        if verdict.elected:
            assert term is not None and term.epoch == epoch
