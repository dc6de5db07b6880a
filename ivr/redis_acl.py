"""Redis ACL users: one per role that talks to Redis, each held to its own keys.

=============  ===========================================================================
user           may use
=============  ===========================================================================
``ami``        ``ivr:ami:*``, ``ivr:metrics:*``, ``ivr:live:*`` (writes the metrics, the
               agent states and the event stream), publishes on ``ivr:metrics:changed``
``web``        reads ``ivr:metrics:*``, ``ivr:live:*`` (the agent states and the calls'
               facts too), ``ivr:ami:status``, the event stream ``ivr:ami:events``
               (redacted: the agent desk's screen pop follows it); sends STT jobs (the
               job stream); subscribes to ``ivr:metrics:changed``
``recorder``   sends STT jobs (the job stream)
``stt-worker`` the job stream and its consumer group, ``ivr:stt:worker:*``
``default``    everything: operator commands (``ivr metrics``, ``ivr status``) and the tests
=============  ===========================================================================

The agi role has no Redis user: it never talks to Redis. Every role user may run the data
commands (strings, hashes, sets, streams, scripts, pub/sub) on its keys, and none of the
``@dangerous`` ones (FLUSHALL, CONFIG, KEYS, DEBUG, SHUTDOWN, ACL, MONITOR ...) nor script
or function management beyond loading a script. Key names: :mod:`ivr.redis_keys`.

``ivr up`` derives each user's password from one secret (``run_dir/redis.secret``, which is
the default user's password): :func:`role_password`. The ACL file holds only SHA-256 hashes
(``#<hex>``), so neither it nor redis-server's command line shows a password.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Final

from ivr import redis_keys

ROLE_USERS: Final = ("ami", "web", "recorder", "stt-worker")

# Data commands, minus what administers the server or the script cache.
_COMMANDS: Final = (
    "+@all -@dangerous -@admin -script|flush -script|kill -script|debug -function -fcall -fcall_ro"
)


def role_keys(role: str, stt_stream: str) -> str:
    """The key and channel patterns of a role's user (``%R~``: read only)."""
    changed = f"&{redis_keys.METRICS_CHANGED}"
    match role:
        case "ami":
            return f"~ivr:ami:* ~ivr:metrics:* ~ivr:live:* {changed}"
        case "web":
            return (
                f"%R~ivr:metrics:* %R~ivr:live:* %R~{redis_keys.AMI_STATUS} "
                f"%R~{redis_keys.AMI_EVENTS} ~{stt_stream} {changed}"
            )
        case "recorder":
            return f"~{stt_stream}"
        case "stt-worker":
            return f"~{stt_stream} ~{redis_keys.STT_WORKER_PREFIX}*"
    raise ValueError(f"no Redis user for the role {role!r}; users: {', '.join(ROLE_USERS)}")


def role_password(secret: str, role: str) -> str:
    """A role user's password, derived from the default user's (hex, URL-safe)."""
    return hmac.new(secret.encode(), f"redis-user:{role}".encode(), hashlib.sha256).hexdigest()


def _hashed(password: str) -> str:
    return "#" + hashlib.sha256(password.encode()).hexdigest()


def acl_file(passwords: Mapping[str, str], stt_stream: str) -> str:
    """The ACL file (``aclfile``) for ``passwords``: user -> password, ``default`` and
    any of :data:`ROLE_USERS`. Users not named are not in the file (so cannot log in)."""
    if "default" not in passwords:
        raise ValueError("the default user needs a password (else anyone is it)")
    lines = [f"user default on {_hashed(passwords['default'])} ~* &* +@all"]
    for role in ROLE_USERS:
        if role in passwords:
            lines.append(
                f"user {role} on {_hashed(passwords[role])} resetkeys resetchannels "
                f"{role_keys(role, stt_stream)} -@all {_COMMANDS}"
            )
    return "\n".join(lines) + "\n"


def stack_passwords(secret: str) -> dict[str, str]:
    """Every user's password for a Redis whose default user has ``secret``."""
    return {"default": secret} | {role: role_password(secret, role) for role in ROLE_USERS}
