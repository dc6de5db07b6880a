"""AGI wire format: env blocks (recorded from Asterisk 22), result lines, command lines, and
reading the env block from a real socket with a size limit and a timeout."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ivr.adapters.telephony.fastagi_server import read_env_block
from ivr.errors import AgiHeaderError
from ivr.protocols.agi import AgiResult, EnvBlock, format_command, parse_env, parse_result

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "agi"


def recorded(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


# --- parse_env ---------------------------------------------------------------------------
def test_given_local_channel_block_when_parsed_then_typed_fields():
    req = parse_env(recorded("local_inbound.agi"))

    assert req.route == "inbound"
    assert req.channel == "Local/95158@from-pstn-00000003;2"
    assert req.uniqueid == "ivrcall-34d3dc8ee5934eee-2"
    assert req.callerid == "13800138000"
    assert req.extension == "95158"
    assert req.args == ("/srv/hotline-hotline/prompts", "/srv/hotline-hotline/spool/voicemessages")
    assert req.get("agi_type") == "Local"
    assert req.get("agi_request") == "agi://127.0.0.1:4573/inbound"
    assert req.get("agi_version") == "22.10.1+dfsg+~cs6.17.60671434-1"
    assert req.get("agi_accountcode") == ""  # sent as "agi_accountcode: " (trailing space)
    assert req.get("agi_dnid") == "unknown"
    assert len(req.env) == 24


def test_given_pjsip_channel_block_when_parsed_then_utf8_name_and_dnid_kept():
    req = parse_env(recorded("pjsip_inbound.agi"))

    assert req.channel == "PJSIP/pstn-00000001"
    assert req.get("agi_type") == "PJSIP"
    assert req.get("agi_calleridname") == "张三"
    assert req.get("agi_dnid") == "95158"
    assert req.uniqueid == "1732329601.1"
    assert req.args == ("/srv/hotline-hotline/prompts", "/srv/hotline-hotline/spool/voicemessages")


def test_given_unknown_callerid_when_parsed_then_callerid_empty():
    req = parse_env(b"agi_callerid: unknown\nagi_calleridname: unknown\n\n")

    assert req.callerid == ""
    assert req.get("agi_calleridname") == "unknown"  # only the number is normalised


def test_given_several_args_when_parsed_then_in_order_and_stop_at_first_gap():
    req = parse_env(b"agi_arg_2: second\nagi_arg_1: first\nagi_arg_3: \nagi_arg_5: after-a-gap\n\n")

    assert req.args == ("first", "second", "")


def test_given_no_args_when_parsed_then_empty_tuple():
    assert parse_env(b"agi_network_script: inbound\n\n").args == ()


def test_given_malformed_lines_when_parsed_then_ignored():
    req = parse_env(
        b"garbage without a colon\n"
        b"Content-Type: text/plain\n"
        b": no key\n"
        b"agi_uniqueid: 1.2\n"
        b"agi_channel:PJSIP/x-1\n"
        b"agi_request: agi://127.0.0.1:4573/inbound?lang=en\n"
        b"\n"
    )

    assert dict(req.env) == {
        "agi_uniqueid": "1.2",
        "agi_channel": "PJSIP/x-1",
        "agi_request": "agi://127.0.0.1:4573/inbound?lang=en",  # value keeps its own colons
    }


def test_given_crlf_line_endings_when_parsed_then_values_clean():
    req = parse_env(b"agi_uniqueid: 1.2\r\nagi_extension: 95158\r\n\r\n")

    assert req.uniqueid == "1.2"
    assert req.extension == "95158"


def test_given_non_utf8_bytes_when_parsed_then_replaced_and_rest_kept():
    req = parse_env(b"agi_calleridname: \xd5\xc5\xc8\xfd\nagi_uniqueid: 1.2\n\n")

    assert req.get("agi_calleridname") == "\ufffd" * 4
    assert req.uniqueid == "1.2"


def test_given_gbk_encoding_when_parsed_then_decoded():
    req = parse_env("agi_calleridname: 张三\n\n".encode("gbk"), encoding="gbk")

    assert req.get("agi_calleridname") == "张三"


@pytest.mark.parametrize(
    ("script", "route"),
    [("inbound", "inbound"), ("/inbound", "inbound"), ("inbound?x=1&y=2", "inbound"), ("", "")],
)
def test_given_network_script_when_route_read_then_query_and_slashes_dropped(script, route):
    assert parse_env(f"agi_network_script: {script}\n\n".encode()).route == route


# --- parse_result --------------------------------------------------------------------------
def test_given_200_with_result_data_and_endpos_when_parsed_then_all_fields():
    res = parse_result("200 result=1 (timeout) endpos=8000\n")

    assert res == AgiResult(code=200, result="1", data="timeout", extra={"endpos": "8000"})
    assert res.value == 1


def test_given_200_with_dtmf_result_when_parsed_then_value_is_code_point():
    res = parse_result("200 result=50 endpos=12345")

    assert res.value == ord("2")
    assert res.extra == {"endpos": "12345"}
    assert res.data is None


def test_given_variable_value_with_spaces_when_parsed_then_data_kept_whole():
    res = parse_result("200 result=1 (Local/95158@from-pstn-00000003;2 zh)")

    assert res.data == "Local/95158@from-pstn-00000003;2 zh"


def test_given_empty_result_when_parsed_then_value_zero():
    res = parse_result("200 result=")

    assert (res.code, res.result, res.value, res.data) == (200, "", 0, None)


def test_given_result_minus_one_when_parsed_then_value_minus_one():
    res = parse_result("200 result=-1 endpos=0\r\n")

    assert (res.code, res.result, res.value) == (200, "-1", -1)
    assert res.extra == {"endpos": "0"}


def test_given_trying_line_when_parsed_then_code_100():
    res = parse_result("100 result=0 Trying...")

    assert res.code == 100
    assert res.message == "result=0 Trying..."


def test_given_510_when_parsed_then_code_and_message():
    res = parse_result("510 Invalid or unknown command\n")

    assert (res.code, res.message, res.result) == (510, "Invalid or unknown command", "")


def test_given_520_usage_start_when_parsed_then_code_and_message_without_dash():
    res = parse_result("520-Invalid command syntax.  Proper usage follows:")

    assert res.code == 520
    assert res.message == "Invalid command syntax.  Proper usage follows:"


@pytest.mark.parametrize("line", ["HANGUP", "HANGUP\n", "HANGUP\r\n"])
def test_given_hangup_when_parsed_then_code_zero_message_hangup(line):
    assert parse_result(line) == AgiResult(code=0, message="HANGUP")


@pytest.mark.parametrize("line", ["", "\n", "hello", "OK result=1", "2x0 result=1"])
def test_given_garbage_when_parsed_then_code_zero_and_line_kept(line):
    res = parse_result(line)

    assert res.code == 0
    assert res.message == line.rstrip("\n")
    assert res.message != "HANGUP"


# --- format_command ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("parts", "wire"),
    [
        (("ANSWER",), b"ANSWER\n"),
        (("SET VARIABLE", "IVR_QUEUE", "repair"), b"SET VARIABLE IVR_QUEUE repair\n"),
        (("STREAM FILE", "/p/zh/greeting", ""), b'STREAM FILE /p/zh/greeting ""\n'),
        (("SET VARIABLE", "X", "two words"), b'SET VARIABLE X "two words"\n'),
        (("SET VARIABLE", "X", 'say "hi"'), b'SET VARIABLE X "say \\"hi\\""\n'),
        (("SET VARIABLE", "X", "a\\b"), b'SET VARIABLE X "a\\\\b"\n'),
        (("SET VARIABLE", "X", "张三"), "SET VARIABLE X 张三\n".encode()),
    ],
)
def test_given_arguments_when_formatted_then_quoted_only_when_needed(parts, wire):
    assert format_command(*parts) == wire


@pytest.mark.parametrize("bad", ["a\nHANGUP", "a\rb", "a\x00b", "\n"])
def test_given_line_break_or_nul_in_argument_when_formatted_then_refused(bad):
    with pytest.raises(ValueError, match="line break or NUL"):
        format_command("SET VARIABLE", "X", bad)


def test_given_no_parts_when_formatted_then_refused():
    with pytest.raises(ValueError, match="empty"):
        format_command()


# --- EnvBlock: the block line by line, no I/O --------------------------------------------
def test_given_recorded_block_fed_line_by_line_then_whole_at_the_blank_line():
    data = recorded("pjsip_inbound.agi")
    block = EnvBlock(limit=4096)

    ends = [block.feed(line) for line in data.splitlines(keepends=True)]

    assert ends == [False] * (len(ends) - 1) + [True]
    assert block.data == data and block.received == len(data)


def test_given_end_of_file_before_the_blank_line_when_fed_then_header_error():
    block = EnvBlock(limit=4096)
    block.feed(b"agi_network: yes\n")

    with pytest.raises(AgiHeaderError, match="closed before the end") as info:
        block.feed(b"")

    assert info.value.details == {"received": len(b"agi_network: yes\n")}


def test_given_more_than_limit_when_fed_then_header_error():
    block = EnvBlock(limit=32)
    block.feed(b"agi_arg_1: " + b"x" * 19 + b"\n")  # 31 bytes: still within

    with pytest.raises(AgiHeaderError, match="too large") as info:
        block.feed(b"agi_arg_2: y\n")

    assert info.value.details == {"limit": 32}


# --- read_env_block (the FastAGI server's reader) on a real socket ------------------------
@pytest.fixture
async def stream() -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """A StreamReader on one end of a loopback TCP connection and a writer on the other."""
    listener = socket.create_server(("127.0.0.1", 0))
    with listener:
        near = socket.create_connection(listener.getsockname())
        far, _ = listener.accept()
    reader, near_writer = await asyncio.open_connection(sock=near, limit=1024)
    _, far_writer = await asyncio.open_connection(sock=far)
    try:
        yield reader, far_writer
    finally:
        for writer in (near_writer, far_writer):
            writer.close()
            try:
                await writer.wait_closed()
            except ConnectionError:
                pass


async def test_given_complete_block_when_read_then_block_returned_and_rest_left(stream):
    reader, peer = stream
    peer.write(recorded("local_inbound.agi") + b"200 result=0\n")

    block = await read_env_block(reader, limit=4096, timeout=1.0)

    assert block == recorded("local_inbound.agi")
    assert parse_env(block).route == "inbound"
    assert await reader.readline() == b"200 result=0\n"  # nothing read past the blank line


async def test_given_block_sent_in_pieces_when_read_then_reassembled(stream):
    reader, peer = stream
    data = recorded("pjsip_inbound.agi")

    async def trickle() -> None:
        for i in range(0, len(data), 37):
            peer.write(data[i : i + 37])
            await peer.drain()
            await asyncio.sleep(0.005)

    task = asyncio.create_task(trickle())
    block = await read_env_block(reader, limit=4096, timeout=2.0)
    await task

    assert block == data


async def test_given_crlf_blank_line_when_read_then_block_ends_there(stream):
    reader, peer = stream
    peer.write(b"agi_uniqueid: 1.2\r\n\r\nANSWER\n")

    assert await read_env_block(reader, limit=4096, timeout=1.0) == b"agi_uniqueid: 1.2\r\n\r\n"


async def test_given_peer_closes_before_blank_line_when_read_then_header_error_at_once(stream):
    reader, peer = stream
    peer.write(b"agi_network: yes\nagi_network_script: inbound\n")
    peer.write_eof()
    started = time.monotonic()

    with pytest.raises(AgiHeaderError, match="closed before the end") as info:
        await read_env_block(reader, limit=4096, timeout=5.0)

    assert time.monotonic() - started < 0.5
    assert info.value.details == {"received": 45}


async def test_given_more_than_limit_when_read_then_header_error(stream):
    reader, peer = stream
    peer.write(b"".join(b"agi_arg_%d: %s\n" % (i, b"x" * 80) for i in range(1, 30)) + b"\n")

    with pytest.raises(AgiHeaderError, match="too large") as info:
        await read_env_block(reader, limit=1024, timeout=1.0)

    assert info.value.details == {"limit": 1024}


async def test_given_one_line_longer_than_reader_limit_when_read_then_header_error(stream):
    reader, peer = stream  # the reader's own limit is 1024 bytes
    peer.write(b"agi_calleridname: " + b"x" * 4000)

    with pytest.raises(AgiHeaderError, match="line too long"):
        await read_env_block(reader, limit=64 * 1024, timeout=1.0)


async def test_given_silent_peer_when_read_then_header_error_after_timeout(stream):
    reader, peer = stream
    peer.write(b"agi_network: yes\n")
    started = time.monotonic()

    with pytest.raises(AgiHeaderError, match=r"not complete after 0\.2 s") as info:
        await read_env_block(reader, limit=4096, timeout=0.2)

    elapsed = time.monotonic() - started
    assert 0.18 <= elapsed < 1.0
    assert info.value.details == {"received": len(b"agi_network: yes\n")}
