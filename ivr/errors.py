"""Domain errors: the catalogue. Each carries a stable slug, an HTTP status and a details dict.

The slug is what clients see (``{"error": slug, "message": ..., "details": {...}}`` from the
web app) and what tests match on: unique across the tree, never reused for another meaning.
The web app answers any of these with that JSON and the class's ``status`` (a page asked
for without a session is redirected to the sign-in form instead); the CLI prints the message
and exits 1 (2 for ``ConfigError`` and ``InvalidInput``). Errors that belong to
one concern are defined beside the code that raises them; all of them are listed here, with
their slug and, when not in this module, where they live. ``tests/unit/test_errors.py``
keeps this tree, the slugs and the docstrings honest.

Hierarchy (class, slug, module)::

    HotlineError                  hotline-error
    ├── ConfigError               invalid-configuration
    ├── ProtocolError             protocol-error
    │   ├── AgiHeaderError        agi-header-invalid
    │   └── AmiFrameError         ami-frame-invalid
    ├── AgiError                  agi-error
    │   ├── AgiHangup             agi-hangup
    │   └── AgiCommandError       agi-command-failed
    ├── AmiError                  ami-error
    │   ├── AmiAuthError          ami-auth-failed
    │   └── AmiTimeout            ami-timeout
    ├── SipDirectoryError         sip-directory-unavailable
    ├── StackError                stack-error
    │   └── StackAlreadyUp        stack-already-up             ivr.devstack.stack
    ├── InvalidInput              invalid-input
    ├── ConversionFailed          conversion-failed            ivr.adapters.recordings.audio_convert
    │   ├── ConversionNoSpace     insufficient-storage         ivr.adapters.recordings.audio_convert
    │   └── NotConvertible        recording-not-convertible    ivr.adapters.recordings.audio_convert
    ├── DatabaseUnavailable       database-unavailable         ivr.adapters.sql.db
    │   ├── DatabaseBusy          database-busy                ivr.adapters.sql.db
    │   ├── SchemaOutdated        database-schema-outdated     ivr.adapters.sql.schema
    │   ├── SchemaNewer           database-schema-newer        ivr.adapters.sql.schema
    │   ├── SchemaUnrecognised    database-schema-unrecognised ivr.adapters.sql.schema
    │   └── MigrationFailed       database-migration-failed    ivr.adapters.sql.schema
    ├── MetricsUnavailable        metrics-unavailable          ivr.adapters.metrics.store
    ├── RecordingUnavailable      recording-unavailable        ivr.adapters.recordings.files
    │   ├── RecordingDeleted      recording-deleted            ivr.adapters.recordings.files
    │   ├── RecordingEmpty        recording-empty              ivr.adapters.recordings.files
    │   ├── RecordingCorrupt      recording-corrupt            ivr.adapters.recordings.files
    │   └── RecordingFileMissing  recording-file-missing       ivr.adapters.recordings.files
    ├── RecordingNotFound         recording-not-found          ivr.adapters.recordings.query
    ├── ReviewNotFound            review-not-found             ivr.adapters.recordings.query
    ├── InvalidCorrection         invalid-correction           ivr.adapters.recordings.query
    ├── SttError                  stt-error                    ivr.adapters.stt.engine
    │   ├── ModelMissing          stt-model-missing            ivr.adapters.stt.engine
    │   ├── ModelCorrupt          stt-model-corrupt            ivr.adapters.stt.engine
    │   ├── NotAudio              stt-not-audio                ivr.adapters.stt.engine
    │   ├── FileMissing           stt-file-missing             ivr.adapters.stt.engine
    │   ├── TooLong               stt-too-long                 ivr.adapters.stt.engine
    │   └── DecodeFailed          stt-decode-failed            ivr.adapters.stt.engine
    ├── ModelInstallError         stt-model-install-failed     ivr.adapters.stt.models
    │   ├── UnknownModel          stt-model-unknown            ivr.adapters.stt.models
    │   ├── AlreadyInstalled      stt-model-installed          ivr.adapters.stt.models
    │   ├── UnsafeZip             stt-model-zip-unsafe         ivr.adapters.stt.models
    │   └── ChecksumMismatch      stt-model-checksum-mismatch  ivr.adapters.stt.models
    ├── SttJobNotFound            stt-job-not-found            ivr.adapters.stt.job_queue
    ├── SttJobNotDead             stt-job-not-dead             ivr.adapters.stt.job_queue
    ├── InvalidJobQuery           invalid-job-query            ivr.adapters.stt.job_queue
    ├── TicketNotFound            ticket-not-found             ivr.adapters.sql.tickets
    ├── ReplyRequired             customer-reply-required      ivr.adapters.sql.tickets
    ├── TicketNotYours            ticket-not-yours             ivr.adapters.sql.ticket_desk
    ├── TicketAlreadyRecorded     ticket-already-recorded      ivr.adapters.sql.ticket_desk
    ├── DepartmentStepRefused     department-step-refused      ivr.adapters.sql.ticket_desk
    ├── RepeatLinkRefused         repeat-link-refused          ivr.adapters.sql.ticket_desk
    ├── FollowupNotFound          followup-not-found           ivr.adapters.sql.followups
    ├── OutboundCallRefused       outbound-call-refused        ivr.web.routes.outbound
    ├── InvalidOutboundCall       invalid-outbound-call        ivr.web.routes.outbound
    ├── UserError                 user-error                   ivr.adapters.sql.users
    │   ├── UserNotFound          user-not-found               ivr.adapters.sql.users
    │   ├── UserExists            user-exists                  ivr.adapters.sql.users
    │   ├── InvalidUserInput      invalid-user-input           ivr.adapters.sql.users
    │   └── InvalidCredentials    invalid-credentials          ivr.adapters.sql.users
    ├── RangeNotSatisfiable       range-not-satisfiable        ivr.core.http_range
    │   └── MultipleRangesRefused multiple-ranges-unsupported  ivr.core.http_range
    ├── InvalidReview             invalid-review               ivr.core.qa
    ├── InvalidSearch             invalid-search               ivr.core.recording_search
    ├── PartialNumberSearch       partial-number-search        ivr.core.recording_search
    ├── IllegalTransition         illegal-transition           ivr.core.tickets
    ├── InvalidTicketInput        invalid-ticket-request       ivr.core.tickets
    ├── TicketFormRefused         ticket-form-refused          ivr.core.ticket_form
    ├── InvalidDraft              invalid-ticket-draft         ivr.core.ticket_form
    ├── InvalidAgentInput         invalid-agent-input          ivr.core.agents
    │   ├── UnknownDesk           unknown-desk                 ivr.core.agents
    │   └── AgentWithoutDesk      agent-without-desk           ivr.core.agents
    ├── AgentExists               agent-exists                 ivr.core.agents
    ├── AgentStateUnchanged       agent-state-unchanged        ivr.core.agents
    ├── AgentNotFound             agent-not-found              ivr.adapters.sql.agents
    ├── UserTaken                 agent-user-taken             ivr.adapters.sql.agents
    ├── NoAgentForUser            no-agent-for-user            ivr.adapters.sql.agents
    ├── PresenceRefused           presence-refused             ivr.core.agent_presence
    ├── InvalidPhraseRequest      invalid-phrase-request       ivr.core.phrases
    ├── AuthError                 auth-error                   ivr.web.auth
    │   ├── NotAuthenticated      not-authenticated            ivr.web.auth
    │   ├── Forbidden             forbidden                    ivr.web.auth
    │   ├── CrossOriginRejected   cross-origin-request         ivr.web.auth
    │   ├── LoginThrottled        too-many-attempts            ivr.web.auth
    │   ├── InvalidAuthRequest    invalid-request              ivr.web.auth
    │   └── SignInBusy            sign-in-busy                 ivr.web.auth
    ├── InvalidDay                invalid-day                  ivr.web.routes.metrics
    ├── InvalidReportQuery        invalid-report-query         ivr.web.routes.reports
    ├── FigureNotFound            figure-not-found             ivr.web.routes.reports
    ├── MetricsNotAuthenticated   metrics-not-authenticated    ivr.web.routes.metrics
    ├── TooManyStreams            too-many-streams             ivr.web.routes.metrics
    ├── InvalidPresenceInput      invalid-presence-input       ivr.web.routes.presence
    ├── PhoneUnavailable          phone-unavailable            ivr.web.routes.phone
    ├── ReviewImmutable           review-immutable             ivr.web.routes.recordings
    ├── PartialSearchLimit        partial-search-limit         ivr.web.routes.recordings
    └── InvalidReviewRequest      invalid-review-request       ivr.web.routes.recordings

"""

from __future__ import annotations

from typing import Any


class HotlineError(Exception):
    """Base of every domain error: a message for people, a slug, an HTTP status, details."""

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
    """Settings, routing, prompts or dialplan files are invalid: the role refuses to start."""

    slug = "invalid-configuration"


class ProtocolError(HotlineError):
    """Bytes from a peer that do not follow the AGI or AMI protocol."""

    slug = "protocol-error"
    status = 502


class AgiHeaderError(ProtocolError):
    """The ``agi_*`` block is too big, too slow, or cut short by the peer."""

    slug = "agi-header-invalid"


class AmiFrameError(ProtocolError):
    """An AMI frame that cannot be parsed."""

    slug = "ami-frame-invalid"


class AgiError(HotlineError):
    """An AGI command failed."""

    slug = "agi-error"
    status = 502


class AgiHangup(AgiError):
    """The channel hung up (``HANGUP``, ``result=-1``, or the socket closed)."""

    slug = "agi-hangup"


class AgiCommandError(AgiError):
    """Asterisk answered a command with 510/520 or another non-200 reply, or not in time."""

    slug = "agi-command-failed"


class AmiError(HotlineError):
    """The AMI link failed (connect, an action refused)."""

    slug = "ami-error"
    status = 502


class AmiAuthError(AmiError):
    """Asterisk refused the AMI login."""

    slug = "ami-auth-failed"


class AmiTimeout(AmiError):
    """No reply in time (e.g. to a ping): the link is treated as dead."""

    slug = "ami-timeout"
    status = 504


class SipDirectoryError(HotlineError):
    """The agents' SIP directory (the SQLite file Asterisk reads the agents' endpoints and
    contacts from) is missing, unreadable or stayed locked past the busy timeout."""

    slug = "sip-directory-unavailable"
    status = 503
    public_message = "the SIP directory is unavailable"


class StackError(HotlineError):
    """Starting or stopping the local stack failed (``ivr up``/``ivr down``)."""

    slug = "stack-error"


class InvalidInput(HotlineError):
    """A value a person gave (a command-line option, an argument) that cannot be used; the
    message names the option and what it takes. The CLI exits 2, as for a usage error."""

    slug = "invalid-input"
    status = 422
