"""Caller-number masking and the JSON log line format."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest

from ivr.logging_setup import JsonFormatter, mask_number


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("13800138000", "138******00"),
        ("4008000000", "400*****00"),
        ("123456", "123*56"),
        ("12345", "*****"),
        ("110", "***"),
        ("", ""),
    ],
)
def test_given_number_when_masked_then_only_first_three_and_last_two_digits_shown(number, masked):
    assert mask_number(number) == masked
    assert len(mask_number(number)) == len(number)


def record(
    msg: str, *args: object, level: int = logging.INFO, **extra: object
) -> logging.LogRecord:
    logger = logging.getLogger("ivr.adapters.telephony.flow_runner")
    return logger.makeRecord(logger.name, level, __file__, 42, msg, args, None, extra=extra)


def test_given_record_with_extra_fields_when_formatted_then_one_json_object_line():
    line = JsonFormatter().format(
        record("call flow %s", "started", call_id="c-1", uniqueid="1732329601.7", state="greeting")
    )

    assert "\n" not in line
    doc = json.loads(line)
    assert doc == {
        "ts": doc["ts"],
        "level": "INFO",
        "logger": "ivr.adapters.telephony.flow_runner",
        "msg": "call flow started",
        "call_id": "c-1",
        "uniqueid": "1732329601.7",
        "state": "greeting",
    }
    assert len(doc["ts"]) == len("2024-11-23T02:50:07")


def test_given_non_json_extra_values_when_formatted_then_scalars_kept_and_others_as_text():
    line = JsonFormatter().format(
        record("x", level=logging.WARNING, attempt=3, ratio=0.5, ok=True, path=Path("/p"), ids=[1])
    )

    doc = json.loads(line)
    assert doc["level"] == "WARNING"
    assert (doc["attempt"], doc["ratio"], doc["ok"]) == (3, 0.5, True)
    assert (doc["path"], doc["ids"]) == ("/p", "[1]")


def test_given_chinese_text_when_formatted_then_written_as_is():
    line = JsonFormatter().format(record("来电 %s", "张三", caller_name="张三"))

    assert "张三" in line
    assert json.loads(line)["msg"] == "来电 张三"


def test_given_exception_when_formatted_then_traceback_in_one_line():
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        rec = record("route failed", level=logging.ERROR)
        rec.exc_info = sys.exc_info()

    line = JsonFormatter().format(rec)

    assert "\n" not in line
    doc = json.loads(line)
    assert doc["msg"] == "route failed"
    assert doc["exc"].startswith("Traceback")
    assert "RuntimeError: boom" in doc["exc"]


def test_given_record_without_extra_when_formatted_then_only_base_fields():
    doc = json.loads(JsonFormatter().format(record("plain")))

    assert set(doc) == {"ts", "level", "logger", "msg"}
