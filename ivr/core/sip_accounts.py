"""An agent's SIP account as Asterisk needs it, and the registrations Asterisk reports. Pure.

The service never keeps an agent's SIP password: it is generated, shown once, and only its
digest HA1 (``MD5(username:realm:password)``, RFC 2617/7616's stored form) is kept, which is
what Asterisk's ``auth_type=md5`` needs to check a phone's digest. Changing the realm
invalidates every HA1, so every password would have to be set again.

>>> digest_ha1("1001", "hotline", "Secret-1")
'e18c1311f1db3507600969e2c30cef7e'
>>> p = generate_password()
>>> len(p), p.isalnum(), p == generate_password()
(20, True, False)
>>> acc = SipAccount(username="1001", ha1=digest_ha1("1001", "hotline", "pw-123456"),
...                  display_name="张三", enabled=True)
>>> acc.username
'1001'
>>> SipAccount(username="10a1", ha1="0" * 32, display_name="x", enabled=True)
Traceback (most recent call last):
...
ValueError: a SIP username is the agent's 工号: 1 to 12 digits, got '10a1'
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

_WORK_NUMBER = re.compile(r"[0-9]{1,12}")
_HA1 = re.compile(r"[0-9a-f]{32}")
# Generated passwords: letters and digits only (no character a desk phone's keypad or a
# config file would mangle), 20 of them: about 119 bits.
_PASSWORD_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"
PASSWORD_LENGTH = 20


def digest_ha1(username: str, realm: str, password: str) -> str:
    """HA1 of HTTP digest authentication: what Asterisk's ``md5_cred`` holds."""
    return hashlib.md5(f"{username}:{realm}:{password}".encode(), usedforsecurity=False).hexdigest()


def generate_password() -> str:
    """A new SIP password, to be shown once and then forgotten (only its HA1 is kept)."""
    return "".join(secrets.choice(_PASSWORD_ALPHABET) for _ in range(PASSWORD_LENGTH))


@dataclass(frozen=True, slots=True)
class SipAccount:
    """One agent's SIP account: one endpoint for desk phones (UDP, TCP) and the browser (WSS).

    ``username`` is the agent's 工号; ``enabled`` false means Asterisk must not know the
    endpoint at all (registrations refused, existing contacts dropped)."""

    username: str
    ha1: str
    display_name: str
    enabled: bool

    def __post_init__(self) -> None:
        if not _WORK_NUMBER.fullmatch(self.username):
            raise ValueError(
                f"a SIP username is the agent's 工号: 1 to 12 digits, got {self.username!r}"
            )
        if not _HA1.fullmatch(self.ha1):
            raise ValueError("ha1 must be 32 lowercase hex digits (an MD5 digest)")


@dataclass(frozen=True, slots=True)
class Registration:
    """One registered contact of an agent's endpoint, as Asterisk holds it."""

    username: str
    contact: str  # the contact URI the phone registered
    user_agent: str
    since: datetime | None  # when this contact registered (None: Asterisk did not say)
    expires: datetime | None
