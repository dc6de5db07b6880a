"""What the AMI listener keeps of the AMI events, and its heartbeat hash.

Only the events the service reasons about are kept (``KEPT_EVENTS``, plus ``VarSet`` of the
call-flow's ``IVR_*`` variables and of app_queue's ``QUEUESTATUS``); the others are counted
and skipped. The kept events go, with their effects on the metrics, into the stream
``ivr:ami:events`` (:class:`ivr.adapters.metrics.store.MetricsStore` writes both in one
atomic step; the stream is capped in length and in age). ``write_heartbeat`` publishes the
listener's state in ``ivr:ami:status``, a hash that expires when the listener stops
refreshing it.

What a stored event keeps (:func:`redacted`): no caller's number, keyed digit or account
number in clear. Numbers and names of the parties (``CallerIDNum``, ``ConnectedLineName``,
``DestCallerIDNum`` ...) are masked as in the logs (``138******00``); keyed digits
(``DTMFBegin``/``DTMFEnd`` ``Digit``) and AGI results (``AGIExecEnd`` ``Result``: what
``GET DATA`` read) are dropped; the values of variables other than the call flow's own
decisions (``IVR_ACCOUNT`` ...) are replaced by ``*``, in ``VarSet`` and in AGI ``SET
VARIABLE`` commands alike; the digits read back to the caller (``STREAM FILE .../digit-N``)
and any digit in another AGI command become ``*``. What the replay at start needs is left
as it is: event names, channel ids, queues, members, timestamps, ``IVR_QUEUE`` and
``QUEUESTATUS``.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ivr import redis_keys
from ivr.logging_setup import mask_number
from ivr.protocols.ami import AmiMessage

logger = logging.getLogger(__name__)

KEPT_EVENTS = frozenset(
    {
        # channels and the dialplan
        *("Newchannel", "Hangup", "Newstate", "NewCallerid", "NewConnectedLine"),
        *("AGIExecStart", "AGIExecEnd", "DTMFEnd"),
        *("DialBegin", "DialEnd", "BridgeEnter", "BridgeLeave"),
        *("BlindTransfer", "AttendedTransfer"),  # a call handed straight to an agent: the pop
        # queues and agents
        *("QueueCallerJoin", "QueueCallerLeave", "QueueCallerAbandon"),
        *("AgentCalled", "AgentConnect", "AgentComplete", "AgentRingNoAnswer", "AgentDump"),
        *("QueueMemberAdded", "QueueMemberRemoved", "QueueMemberStatus", "QueueMemberPause"),
        # Asterisk itself
        *("FullyBooted", "Reload", "Shutdown"),
    }
)
#: VarSet variables kept besides ``IVR_*`` (a leading ``_``/``__`` inheritance mark ignored).
KEPT_VARIABLES = frozenset({"QUEUESTATUS"})


# --- what a stored event keeps ------------------------------------------------------------
#: Fields naming a party (any prefix: Dest..., Orig...): masked like numbers in the logs.
PARTY_FIELD_SUFFIXES = ("CallerIDNum", "CallerIDName", "ConnectedLineNum", "ConnectedLineName")
#: Fields dropped from a stored event: keyed digits, and what an AGI command returned.
DROPPED_FIELDS = {"DTMFBegin": ("Digit",), "DTMFEnd": ("Digit",), "AGIExecEnd": ("Result",)}
#: Fields whose every digit is masked (dial strings, CDR account codes: may name a person).
DIGITS_MASKED_FIELDS = frozenset({"DialString", "AccountCode", "DestAccountCode"})
#: Variables whose values are the call flow's or app_queue's decisions, kept as they are;
#: any other variable's value (IVR_ACCOUNT, the caller's input) is masked.
PLAIN_VARIABLES = frozenset({
    "IVR_QUEUE", "QUEUESTATUS", "IVR_NEXT", "IVR_LANGUAGE", "IVR_CATEGORY", "IVR_PRIORITY",
    "IVR_REASON", "IVR_DID", "IVR_EMERGENCY", "IVR_FALLBACK", "IVR_AREA", "IVR_MESSAGE_S",
    "IVR_DESK", "IVR_HEARD",
})  # fmt: skip
#: Values that say "no number": kept, so that a replay knows there was none.
NO_PARTY = frozenset({"", "<unknown>", "unknown", "anonymous"})
#: AGI commands whose arguments are paths, timeouts and escape keys (the prompts read back
#: digit by digit are masked apart); any other command has its digits masked.
PLAIN_AGI_COMMANDS = ("ANSWER", "STREAM FILE", "GET DATA", "RECORD FILE", "HANGUP", "NOOP")
_DIGIT_PROMPT = re.compile(r"(/digit-)[^/\s]+")
_SET_VARIABLE = re.compile(r"^(SET VARIABLE) +(\S+)( +)(.*)$", re.DOTALL)


def redacted(fields: Mapping[str, str]) -> dict[str, str]:
    """What ``ivr:ami:events`` stores of one kept event (see the module's docstring)."""
    name = fields.get("Event", "")
    dropped = DROPPED_FIELDS.get(name, ())
    out: dict[str, str] = {}
    for key, value in fields.items():
        if key in dropped:
            continue
        if key.endswith(PARTY_FIELD_SUFFIXES):
            value = value if value.strip().lower() in NO_PARTY else mask_number(value)
        elif key in DIGITS_MASKED_FIELDS:
            value = _digits_masked(value)
        elif key == "Command" and name.startswith("AGIExec"):
            value = redacted_agi_command(value)
        elif key == "Value" and name == "VarSet":
            variable = fields.get("Variable", "").lstrip("_")
            value = value if variable in PLAIN_VARIABLES else _all_masked(value)
        out[key] = value
    return out


def redacted_agi_command(command: str) -> str:
    """``SET VARIABLE IVR_ACCOUNT 14002233`` -> ``SET VARIABLE IVR_ACCOUNT ********``.

    >>> redacted_agi_command("STREAM FILE /srv/p/zh/digit-7 \\"\\"")
    'STREAM FILE /srv/p/zh/digit-* ""'
    >>> redacted_agi_command("GET DATA /srv/p/zh/menu 3000 1")
    'GET DATA /srv/p/zh/menu 3000 1'
    >>> redacted_agi_command("SAY DIGITS 14002233 \\"\\"")
    'SAY DIGITS ******** ""'
    """
    setvar = _SET_VARIABLE.match(command)
    if setvar is not None:
        verb, variable, space, value = setvar.groups()
        if variable.lstrip("_") not in PLAIN_VARIABLES:
            value = _all_masked(value)
        return f"{verb} {variable}{space}{value}"
    if command.upper().startswith(PLAIN_AGI_COMMANDS):
        return _DIGIT_PROMPT.sub(r"\1*", command)
    return _digits_masked(command)


def _digits_masked(value: str) -> str:
    return re.sub(r"[0-9]", "*", value)


def _all_masked(value: str) -> str:
    return "*" * len(value)


def is_kept(message: AmiMessage) -> bool:
    name = message.event
    if name == "VarSet":
        variable = (message.get("Variable") or "").lstrip("_")
        return variable.startswith("IVR_") or variable in KEPT_VARIABLES
    return name in KEPT_EVENTS


async def write_heartbeat(client: aioredis.Redis, status: Mapping[str, object]) -> bool:
    """Store ``status`` (plus ``updated_at``) in the heartbeat hash; False if Redis failed."""
    fields = {k: str(v) for k, v in status.items()} | {"updated_at": f"{time.time():.3f}"}
    try:
        async with client.pipeline(transaction=True) as pipe:
            pipe.hset(redis_keys.AMI_STATUS, mapping=fields)  # type: ignore[arg-type]
            pipe.expire(redis_keys.AMI_STATUS, redis_keys.AMI_HEARTBEAT_TTL_S)
            await pipe.execute()
    except (RedisError, OSError) as exc:
        logger.debug("heartbeat not stored: Redis error: %s", exc)
        return False
    return True
