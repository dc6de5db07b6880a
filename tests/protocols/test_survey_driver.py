"""The post-call survey over AGI, sans I/O: the commands it sends and how it reads replies."""

from __future__ import annotations

from ivr.core import survey
from ivr.errors import AgiHangup
from ivr.protocols.agi import parse_result
from ivr.protocols.agi_flow import SurveyDriver, drive_survey

CONFIG = survey.SurveyConfig(desks=frozenset({"repair"}))
OK = parse_result("200 result=0")


def _driver() -> SurveyDriver:
    state, batch = survey.start(CONFIG, desk="repair", language="zh")
    return drive_survey(state, batch, "/p", lambda: 0.0)


def test_given_key_2_then_the_commands_and_the_answer():
    driver = _driver()
    sent = [next(driver)]
    sent.append(driver.send(OK))  # SET VARIABLE IVR_SURVEY asking
    sent.append(driver.send(parse_result("200 result=2")))  # GET DATA: 2
    sent.append(driver.send(OK))
    sent.append(driver.send(OK))
    try:
        driver.send(parse_result("200 result=0 endpos=8000"))  # the thanks played
    except StopIteration as done:
        final = done.value
    assert sent == [
        ("SET VARIABLE", "IVR_SURVEY", "asking"),
        ("GET DATA", "/p/zh/survey-question", "5000", "1"),
        ("SET VARIABLE", "IVR_SURVEY", "basically satisfied"),
        ("SET VARIABLE", "IVR_SURVEY_KEY", "2"),
        ("STREAM FILE", "/p/zh/survey-thanks", ""),
    ]
    assert final.outcome is survey.Outcome.BASICALLY_SATISFIED


def test_given_get_data_fails_because_the_caller_left_then_hung_up_not_no_answer():
    driver = _driver()
    next(driver)
    driver.send(OK)
    try:
        driver.send(parse_result("200 result=-1"))  # what GET DATA answers on a hang-up
    except StopIteration as done:
        final = done.value
    assert (final.stage, final.outcome) == (survey.Stage.HUNG_UP, survey.Outcome.HUNG_UP)


def test_given_a_timeout_then_no_answer():
    driver = _driver()
    next(driver)
    driver.send(OK)
    words = driver.send(parse_result("200 result= (timeout)"))
    assert words == ("SET VARIABLE", "IVR_SURVEY", "no answer")


def test_given_hangup_thrown_then_hung_up():
    driver = _driver()
    next(driver)
    try:
        driver.throw(AgiHangup("caller hung up"))
    except StopIteration as done:
        final = done.value
    assert final.outcome is survey.Outcome.HUNG_UP
