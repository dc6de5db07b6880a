"""The standard phrases (ivr.core.phrases) rendered from the shipped routing/phrases.yaml: each
variant (time of day, weekend, holiday, make-up working day, language, complaint level) and
the boundaries between them, in the hotline's time zone whatever the input's."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from ivr.adapters.telephony.routing_files import load_routing
from ivr.core.phrases import (
    Customer,
    DayKind,
    InvalidPhraseRequest,
    Rendered,
    check_language,
    parse_level,
    render,
)
from ivr.core.tickets import Calendar, Level

REPO = Path(__file__).resolve().parents[2]
ROUTING = load_routing(REPO / "routing")
PHRASES = ROUTING.phrases
SHANGHAI = ZoneInfo("Asia/Shanghai")
NATIONAL_DAY = date(2027, 10, 1)  # a Friday off
MAKE_UP = date(2027, 9, 26)  # a Sunday worked (调休)
CALENDAR = Calendar.of(SHANGHAI, holidays=[NATIONAL_DAY], workdays=[MAKE_UP])
WANG = Customer("王", "先生")


def at(day: date, hhmm: str) -> datetime:
    hours, minutes = hhmm.split(":")
    return datetime(day.year, day.month, day.day, int(hours), int(minutes), tzinfo=SHANGHAI)


def phrases_at(
    now: datetime, customer: Customer | None = WANG, language: str = "zh", level: Level = Level.L3
) -> Rendered:
    assert PHRASES is not None
    return render(
        PHRASES,
        hotline_name=ROUTING.hotline.name,
        work_number="1001",
        customer=customer,
        language=language,
        now=now,
        calendar=CALENDAR,
        level=level,
    )


def text(rendered: Rendered, phrase: str) -> str:
    return next(p.text for p in rendered.phrases if p.id == phrase)


def test_every_required_phrase_is_rendered_in_order_with_the_agent_and_hotline_filled_in():
    rendered = phrases_at(at(date(2027, 9, 22), "09:30"))  # a Wednesday

    assert [p.id for p in rendered.phrases] == ["greeting", "readback", "wait", "complaint",
                                                "closing"]  # fmt: skip
    assert text(rendered, "greeting") == (
        "上午好，华源燃气热力服务热线，1001号话务员为您服务，请问有什么可以帮您？"
    )
    assert text(rendered, "readback").startswith("王先生，我跟您核对一下")
    assert text(rendered, "wait") == "请您稍等，我帮您查询一下。"
    assert "会在4个工作日内给您回复" in text(rendered, "complaint")
    assert text(rendered, "closing") == "感谢您的来电，1001号话务员为您服务，祝您生活愉快，再见！"
    assert (rendered.day_kind, rendered.day_part, rendered.customer_known) == (
        DayKind.workday, "morning", True,
    )  # fmt: skip
    assert {p.variant for p in rendered.phrases} == {"text"}


@pytest.mark.parametrize(
    ("hhmm", "part", "greeting"),
    [
        ("04:59", "evening", "晚上好"),  # before the first part: the night is the evening's
        ("05:00", "morning", "上午好"),
        ("11:59", "morning", "上午好"),
        ("12:00", "afternoon", "下午好"),
        ("17:59", "afternoon", "下午好"),
        ("18:00", "evening", "晚上好"),
        ("23:59", "evening", "晚上好"),
        ("00:00", "evening", "晚上好"),
    ],
)
def test_the_time_of_day_picks_the_greeting_at_its_boundaries(hhmm, part, greeting):
    rendered = phrases_at(at(date(2027, 9, 22), hhmm))

    assert rendered.day_part == part
    assert text(rendered, "greeting").startswith(f"{greeting}，")


def test_the_hotlines_local_time_counts_not_the_clocks_zone():
    # 03:59 UTC is 11:59 in Shanghai, 04:00 UTC is 12:00
    assert phrases_at(datetime(2027, 9, 22, 3, 59, tzinfo=UTC)).day_part == "morning"
    assert phrases_at(datetime(2027, 9, 22, 4, 0, tzinfo=UTC)).day_part == "afternoon"
    # 16:30 UTC on a Friday is 00:30 on Saturday in Shanghai
    late = phrases_at(datetime(2027, 9, 24, 16, 30, tzinfo=UTC))
    assert (late.day, late.day_kind) == (date(2027, 9, 25), DayKind.weekend)


def test_a_naive_clock_is_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        phrases_at(datetime(2027, 9, 22, 9, 0))


def test_on_a_saturday_the_weekend_variants_and_text_where_there_is_none():
    rendered = phrases_at(at(date(2027, 9, 25), "10:00"))

    assert rendered.day_kind is DayKind.weekend
    assert text(rendered, "closing") == "感谢您的来电，1001号话务员为您服务，祝您周末愉快，再见！"
    assert "今天是休息日" in text(rendered, "complaint")
    variants = {p.id: p.variant for p in rendered.phrases}
    assert variants == {"greeting": "text", "readback": "text", "wait": "text",
                        "complaint": "weekend", "closing": "weekend"}  # fmt: skip


def test_on_a_holiday_the_holiday_variants_even_on_a_weekday():
    rendered = phrases_at(at(NATIONAL_DAY, "19:00"))

    assert rendered.day_kind is DayKind.holiday
    assert text(rendered, "greeting").startswith("晚上好，节日快乐！")
    assert "祝您节日快乐" in text(rendered, "closing")
    assert "节假日期间" in text(rendered, "complaint")


def test_a_make_up_working_day_on_a_sunday_is_a_working_day():
    rendered = phrases_at(at(MAKE_UP, "14:00"))

    assert rendered.day_kind is DayKind.workday
    assert "祝您生活愉快" in text(rendered, "closing")
    assert {p.variant for p in rendered.phrases} == {"text"}


def test_an_english_call_gets_the_english_phrases_with_mr_and_the_english_name():
    rendered = phrases_at(at(date(2027, 9, 25), "20:00"), Customer("Smith", "女士"), "en")

    assert text(rendered, "greeting") == (
        "Good evening, Huayuan Gas and Heating Service Hotline, agent 1001 speaking. "
        "How may I help you?"
    )
    assert text(rendered, "readback").startswith("Ms Smith, let me read that back")
    assert "Have a nice weekend" in text(rendered, "closing")
    assert rendered.language == "en"
    glosses = {p.id: p.gloss for p in rendered.phrases}
    assert glosses["closing"] == "感谢您的来电，1001号话务员为您服务，祝您周末愉快，再见！"
    assert glosses["readback"].startswith("Smith女士，")


def test_a_chinese_call_needs_no_gloss():
    assert {p.gloss for p in phrases_at(at(date(2027, 9, 22), "10:00")).phrases} == {None}


@pytest.mark.parametrize(
    ("level", "zh", "en"),
    [(Level.L1, "2小时", "2 hours"), (Level.L2, "48小时", "48 hours"),
     (Level.L3, "4个工作日", "4 working days"), (Level.L4, "7个工作日", "7 working days")],
)  # fmt: skip
def test_the_complaint_reply_time_follows_the_level(level, zh, en):
    day = at(date(2027, 9, 22), "10:00")
    assert f"会在{zh}内给您回复" in text(phrases_at(day, level=level), "complaint")
    assert f"reply within {en}." in text(phrases_at(day, language="en", level=level), "complaint")


def test_without_a_surname_the_customer_is_addressed_politely_and_marked_unknown():
    zh = phrases_at(at(date(2027, 9, 22), "10:00"), customer=None)
    en = phrases_at(at(date(2027, 9, 22), "10:00"), customer=None, language="en")

    assert text(zh, "readback").startswith("先生/女士，")
    assert text(en, "readback").startswith("Sir or Madam,")
    assert not zh.customer_known


def test_the_surname_is_filled_in_as_typed_never_read_as_a_field():
    rendered = phrases_at(at(date(2027, 9, 22), "10:00"), Customer("{work_number}<b>", "女士"))

    assert text(rendered, "readback").startswith("{work_number}<b>女士，")


@pytest.mark.parametrize(
    ("surname", "title", "field"),
    [("", "先生", "surname"), ("王", "小姐", "title"), ("王", None, "title"),
     ("王\n", "先生", None), ("王\u0000", "先生", "surname"), ("王" * 21, "先生", "surname")],
)  # fmt: skip
def test_a_bad_customer_is_refused_naming_the_field(surname, title, field):
    if field is None:  # surrounding whitespace is trimmed, not refused
        assert Customer.of(surname, title) == Customer("王", "先生")
        return
    with pytest.raises(InvalidPhraseRequest) as caught:
        Customer.of(surname, title)
    assert caught.value.details["field"] == field


def test_a_bad_level_or_language_is_refused_naming_it():
    assert parse_level("l2") is Level.L2
    with pytest.raises(InvalidPhraseRequest, match="level must be one of L1, L2, L3, L4"):
        parse_level("L5")
    with pytest.raises(InvalidPhraseRequest, match="lang must be one of zh, en"):
        check_language("fr")


@hypothesis_settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(
    surname=st.text(max_size=30),
    title=st.sampled_from(["先生", "女士"]),
    level=st.sampled_from(["L1", "L2", "l3", "L4"]),
    language=st.sampled_from(["zh", "en"]),
)
def test_any_surname_either_renders_as_typed_or_is_refused(surname, title, level, language):
    try:
        customer = Customer.of(surname, title)
        rendered = phrases_at(
            at(date(2027, 9, 22), "10:00"), customer, check_language(language), parse_level(level)
        )
    except InvalidPhraseRequest:
        return
    if customer is not None:
        assert text(rendered, "readback").startswith(customer.address(language))
