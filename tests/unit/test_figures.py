"""The service-standard figures (ivr/core/figures.py) on the synthetic month, and the docs."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr.core.figures import (
    BY_KEY,
    DOC_BEGIN,
    DOC_END,
    FIGURES,
    FigureValue,
    agent_figures,
    call_figures,
    counted_answers,
    definitions_markdown,
    follow_up_figures,
    follow_up_records,
    group_by,
    satisfaction_figures,
    ticket_figures,
)
from ivr.core.metrics import CallClass
from ivr.core.report_tables import follow_up_summary
from tests import figures_month as m

DOC = Path(__file__).resolve().parents[2] / "docs" / "figures.md"


def all_figures() -> dict[str, FigureValue]:
    calls = m.call_facts()
    zhang = [c for c in calls if c.agent == m.ZHANG]
    checks = [c for c in m.CHECKS if c.agent == m.ZHANG]
    return {
        **call_figures(calls, m.MONTH),
        **ticket_figures(m.TICKETS, m.MONTH),
        **satisfaction_figures(m.TICKETS, m.ANSWERS, m.MONTH),
        **follow_up_figures(m.TICKETS, m.FOLLOW_UPS, m.MONTH),
        **agent_figures(zhang, m.SHIFTS, checks, m.MONTH),
    }


def test_the_reducer_puts_the_boundaries_where_the_standard_does() -> None:
    classes = {c.linkedid: c.klass for c in m.classified_calls()}
    assert classes["a60"] is CallClass.ANSWERED  # a wait of exactly 60.0 s
    assert classes["a605"] is CallClass.ANSWERED_LATE  # 60.5 s
    assert classes["em15"] is CallClass.ANSWERED  # emergency: 15.0 s
    assert classes["em16"] is CallClass.ANSWERED_LATE
    assert classes["to"] is CallClass.TIMED_OUT
    assert classes["ivr"] is CallClass.IVR_ONLY
    facts = {f.linkedid: f for f in m.call_facts()}
    assert facts["a60"].agent == m.ZHANG and facts["a60"].talk_s == 120.0
    assert facts["em16"].emergency and facts["em16"].talk_s is None
    assert not facts["a10"].emergency


@pytest.mark.parametrize("key", sorted(m.EXPECTED))
def test_every_figure_of_the_synthetic_month(key: str) -> None:
    value, numerator, denominator = m.EXPECTED[key]
    got = all_figures()[key]
    assert got.value == pytest.approx(value)
    assert got.numerator == numerator
    assert got.denominator == denominator


def test_the_synthetic_month_has_an_answer_for_every_defined_figure() -> None:
    assert set(m.EXPECTED) == set(BY_KEY) == set(all_figures())


def test_targets_green_or_red() -> None:
    got = all_figures()
    assert got["answer_rate"].meets_target is False  # 40 % < 90 %
    assert got["key_account_complaint_satisfaction"].meets_target is True
    assert got["repeat_complaint_rate"].meets_target is False  # 20 % > 1 %
    assert got["offered"].meets_target is None  # no target


def test_each_counted_answer_names_its_source_and_counts_once() -> None:
    got = all_figures()
    assert got["complaint_satisfaction"].sources == {
        "5": "follow_up",
        "6": "follow_up",
        "8": "survey",
        "10": "follow_up",
    }
    assert got["consultation_satisfaction"].sources == {"1": "survey", "4": "survey"}
    chosen = counted_answers(m.ANSWERS)
    assert 2 not in chosen and 11 not in chosen  # asked, no answer
    assert chosen[5].satisfied is False  # the follow-up outranks the survey


def test_the_follow_up_report() -> None:
    records = follow_up_records(m.TICKETS, m.FOLLOW_UPS, m.ANSWERS, m.MONTH)
    assert follow_up_summary(records) == m.FOLLOW_UP_SUMMARY
    assert {r.ticket.id: r.state.value for r in records} == {
        5: "not_resolved", 6: "resolved", 8: "not_reached", 10: "resolved", 12: "resolved",
        13: "refused", 15: "resolved",
    }  # fmt: skip
    by_id = {r.ticket.id: r for r in records}
    assert by_id[8].attempts == 3 and by_id[8].satisfied is None
    assert by_id[5].satisfied is False  # the follow-up's answer, not the survey's


def test_nothing_to_divide_by_is_none_not_zero() -> None:
    empty = call_figures([], m.MONTH)
    assert empty["answer_rate"].value is None
    assert empty["wait_p90"].value is None
    assert empty["offered"].value == 0.0
    assert ticket_figures([], m.MONTH)["repeat_complaint_rate"].value is None
    assert agent_figures([], [], [], m.MONTH)["occupancy"].value is None


def test_short_abandon_time_is_configurable() -> None:
    from ivr.core.figures import FiguresConfig

    got = call_figures(m.call_facts(), m.MONTH, FiguresConfig(short_abandon_s=6.0))
    assert got["short_abandons"].denominator == ("ab3", "ab5")
    assert got["abandoned"].value == 4.0  # never dropped from the abandons
    assert got["answer_rate"].value == pytest.approx(0.4)  # nor from the answer rate


def test_per_desk_and_per_agent() -> None:
    calls = m.call_facts()
    desks = {q: call_figures(c, m.MONTH) for q, c in group_by(calls, lambda c: c.queue).items()}
    assert desks["repair"]["answer_rate"].value == pytest.approx(0.25)  # a60 of 4
    assert desks["billing"]["offered"].denominator == ("a10", "ab30", "to", "last")
    assert desks[""]["offered"].value == 0.0  # the menu-only call
    agents = group_by((c for c in calls if c.work_number), lambda c: c.work_number)
    assert sorted(agents) == ["1001", "1002"]
    assert call_figures(agents["1002"], m.MONTH)["handle_mean"].value == pytest.approx(140.0)


def test_the_docs_page_holds_the_definitions() -> None:
    text = DOC.read_text(encoding="utf-8")
    begin, end = text.index(DOC_BEGIN) + len(DOC_BEGIN), text.index(DOC_END)
    assert text[begin:end].strip() == definitions_markdown().strip(), (
        "docs/figures.md is out of date: paste `ivr report definitions` between its markers"
    )


def test_definitions_are_complete() -> None:
    keys = [f.key for f in FIGURES]
    assert len(keys) == len(set(keys))
    for figure in FIGURES:
        assert figure.zh and figure.en and figure.formula and figure.denominator
        assert figure.unit in {"rate", "count", "seconds", "score"}
        assert figure.family in {"calls", "tickets", "satisfaction", "follow_up", "agents"}
        if figure.unit == "rate" and figure.key != "occupancy":
            assert figure.numerator, figure.key
