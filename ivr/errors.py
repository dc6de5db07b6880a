"""Domain errors. Each carries a stable slug, an HTTP status and a details dict.

Hierarchy::

    HotlineError
    ├── ConfigError            settings, routing or dialplan files are invalid (refuse to start)
    ├── ProtocolError          bytes from a peer that do not follow AGI/AMI
    │   ├── AgiHeaderError     agi_* block too big, too slow, or cut short
    │   └── AmiFrameError      an AMI frame that cannot be parsed
    ├── AgiError               an AGI command failed
    │   ├── AgiHangup          the channel hung up (HANGUP, result=-1, or the socket closed)
    │   └── AgiCommandError    510/520 or another non-200 reply
    ├── AmiError               the AMI link failed
    │   ├── AmiAuthError       login refused
    │   └── AmiTimeout         no reply (e.g. to a ping) in time: the link is treated as dead
    └── StackError             starting or stopping the local stack failed (ivr up/down)
"""

from __future__ import annotations

from typing import Any


class HotlineError(Exception):
    slug = "hotline-error"
    status = 500
    #: What an HTTP answer says instead of ``message`` when the message can carry internals
    #: (hosts and ports, file paths, a subprocess's output); the message goes to the log.
    public_message: str | None = None

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class ConfigError(HotlineError):
    slug = "invalid-configuration"


class ProtocolError(HotlineError):
    slug = "protocol-error"
    status = 502


class AgiHeaderError(ProtocolError):
    slug = "agi-header-invalid"


class AmiFrameError(ProtocolError):
    slug = "ami-frame-invalid"


class AgiError(HotlineError):
    slug = "agi-error"
    status = 502


class AgiHangup(AgiError):
    slug = "agi-hangup"


class AgiCommandError(AgiError):
    slug = "agi-command-failed"


class AmiError(HotlineError):
    slug = "ami-error"
    status = 502


class AmiAuthError(AmiError):
    slug = "ami-auth-failed"


class AmiTimeout(AmiError):
    slug = "ami-timeout"
    status = 504


class StackError(HotlineError):
    slug = "stack-error"
