"""free_port: below the ephemeral range, free for TCP and UDP, never handed out twice at once."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from ivr.devstack import ports


@pytest.fixture
def narrow(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[int]:
    """Three ports to pick from, free now, and a reservation folder of this test's own."""
    for _ in range(100):
        base = ports.free_port()
        chosen = [base, base + 1, base + 2]
        if all(ports.is_free(p, kind) for p in chosen for kind in ("tcp", "udp")):
            break
    else:
        pytest.fail("no three consecutive free ports")
    monkeypatch.setattr(ports, "RESERVED_DIR", tmp_path / "reserved")
    monkeypatch.setattr(ports, "LOWEST", chosen[0])
    monkeypatch.setattr(ports, "ephemeral_range", lambda: (chosen[-1] + 1, 60999))
    return chosen


def test_a_picked_port_is_below_the_ephemeral_range_and_free_for_both() -> None:
    port = ports.free_port()
    assert ports.LOWEST <= port < ports.ephemeral_range()[0]
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as sock:
            sock.bind(("127.0.0.1", port))


def test_given_every_port_handed_out_then_none_is_handed_out_twice(narrow: list[int]) -> None:
    picked = {ports.free_port() for _ in narrow}
    assert picked == set(narrow)
    with pytest.raises(OSError, match="no free port"):
        ports.free_port()


def test_given_an_old_note_then_the_port_is_handed_out_again(narrow: list[int]) -> None:
    for _ in narrow:
        ports.free_port()
    old = time.time() - ports.RESERVED_S - 1
    os.utime(ports.RESERVED_DIR / str(narrow[1]), (old, old))
    assert ports.free_port() == narrow[1]


def test_given_a_port_bound_by_someone_then_it_is_not_picked(narrow: list[int]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", narrow[0]))  # UDP only: the port must be free for both
        assert {ports.free_port(), ports.free_port()} == set(narrow[1:])
