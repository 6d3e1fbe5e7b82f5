"""The chaos suite's verdict can fail: each of its four promises, and order within a session, goes
red on an outcome that breaks it (no broker: a ledger and an outcome built by hand)."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.support.chaos import judge, session_order_breaks
from tests.support.e2e import Ledger, Outcome, Produced

pytestmark = pytest.mark.unit

GOOD = [Produced("bets", 0, offset, None, b"v", (), f"e{offset}") for offset in range(3)]
POISON = Produced("bets", 0, 3, None, b"x", (), "e3", poison="DECODE")


def ledger() -> Ledger:
    made = Ledger.__new__(Ledger)  # no producer: nothing is sent
    made.records = [*GOOD, POISON]
    return made


def verdict_of(outcome: Outcome, order: list[str] | None = None, dedup_max: int | None = None) -> None:
    judge(
        scenario="case",
        size="short",
        ledger=ledger(),
        outcome=outcome,
        order=order or [],
        replayed_records=0,
        peak_rss_bytes=0,
        duration_s=0.0,
        dedup_duplicates_max=dedup_max,
    )


def sound() -> Outcome:
    return Outcome(Counter({"e0": 1, "e1": 1, "e2": 1}), Counter({POISON.position: 1}))


def test_a_sound_outcome_passes_and_counts_what_it_saw() -> None:
    outcome = sound()
    outcome.accepted["e1"] += 1  # re-sent after a crash: a duplicate, not a failure
    verdict = judge(
        scenario="case",
        size="full",
        ledger=ledger(),
        outcome=outcome,
        order=[],
        replayed_records=2,
        peak_rss_bytes=1,
        duration_s=1.0,
    )
    assert (verdict.records, verdict.lost, verdict.dead_lettered) == (4, 0, 1)
    assert (verdict.raw_duplicates, verdict.dedup_duplicates) == (3, 1)


def test_a_record_neither_accepted_nor_dead_lettered_is_lost() -> None:
    outcome = sound()
    del outcome.accepted["e1"]
    with pytest.raises(AssertionError, match=r"\(a\) lost 1"):
        verdict_of(outcome)


def test_a_poison_record_missing_from_the_dead_letter_topic_is_lost() -> None:
    outcome = sound()
    del outcome.dead[POISON.position]
    with pytest.raises(AssertionError, match=r"\(a\) lost 1"):
        verdict_of(outcome)


def test_a_valid_record_in_the_dead_letter_topic_fails_even_when_also_accepted() -> None:
    outcome = sound()
    outcome.dead[GOOD[2].position] += 1
    with pytest.raises(AssertionError, match=r"\(b\) valid records dead-lettered"):
        verdict_of(outcome)


def test_poison_that_reached_the_api_fails() -> None:
    outcome = sound()
    outcome.accepted["e3"] += 1
    with pytest.raises(AssertionError, match=r"\(c\) poison accepted"):
        verdict_of(outcome)


def test_records_out_of_offset_order_within_a_session_fail_and_a_restart_may_repeat() -> None:
    by_id = {r.event_id: r for r in GOOD if r.event_id}
    sent = [{"event_id": e} for e in ("e0", "e2", "e1")]
    breaks = session_order_breaks([("c1", sent)], by_id)
    assert breaks == ["c1: bets[0]"]
    with pytest.raises(AssertionError, match=r"\(d\) offset order broken"):
        verdict_of(sound(), order=breaks)

    again = [{"event_id": e} for e in ("e0", "e1", "e1", "e2")]  # given back once: starts over
    assert session_order_breaks([("c1", again)], by_id, {"c1": {"bets[0]": 1}}) == []
    assert session_order_breaks([("c1", again)], by_id) == ["c1: bets[0]"]


def test_stored_duplicates_over_the_scenario_bound_fail() -> None:
    outcome = sound()
    outcome.accepted["e0"] += 2
    with pytest.raises(AssertionError, match="2 duplicates stored, bound 1"):
        verdict_of(outcome, dedup_max=1)
