"""One Asterisk 22 instance inside the Debian sid root (see scripts/build-asterisk-root).

Several instances can share one root: each has its own directory ``/srv/hotline-<name>``
inside the root with ``etc`` (the project's ``dialplan/`` plus a few generated files),
``run``, ``log``, ``spool``, ``lib`` and ``prompts``. Asterisk starts as root only for
``chroot``, then drops to its root's own user (``-U``/``-G``, :meth:`AsteriskInstance.hand_over`
gives it the instance first), in its own session, bound to 127.0.0.1 only.

AMI accounts (``manager_generated.conf``, written with mode 0600 from the start): one per
purpose, :data:`LISTENER` and :data:`ACTIONS`. None has the write classes ``system``,
``command`` or ``config``: without ``system``, Asterisk refuses an ``Originate`` of the
``System``, ``AGI`` or ``Exec`` applications (what measured here on Asterisk 22 needs which
write class: Ping and QueueStatus none, CoreShowChannels ``reporting`` (or ``system``),
PlayDTMF ``call``, QueueAdd/QueuePause ``agent``, Originate ``originate``, Reload ``config``
or ``system`` — so no account may reload modules). Read classes only choose the events an
account receives.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

import asterisk  # pyst2, copied into the root for process AGI

import ivr
from ivr.adapters.private_files import write_private
from ivr.adapters.processes import pid_alive, spawn_detached
from ivr.adapters.service_user import SERVICE_UMASK
from ivr.adapters.telephony import instance_dirs, sip_directory
from ivr.adapters.telephony.routing_files import load_routing
from ivr.core.queue_ringing import ringing_conf
from ivr.core.routing_models import RingingIn, Routing
from ivr.core.survey import dialplan_lists
from ivr.errors import StackError
from ivr.settings import REPO_DIR, Settings

logger = logging.getLogger(__name__)

ASTERISK_BIN = "/usr/sbin/asterisk"
PROCESS_AGI = "inbound-agi"  # the wrapper running agi_scripts/inbound.py in the root
SAFETY_ADVICE_PARTS = (1, 2, 3, 4)  # prompts safety-<n>: the emergency queue's announcements
# Write classes no account may have: `system` lets Originate start System/AGI/Exec (a shell
# as Asterisk's user), `command` runs any CLI command, `config` rewrites the configuration.
FORBIDDEN_WRITE = frozenset({"system", "command", "config"})
# What Asterisk's user shares with the roles' group (set-group-ID): the recorder catalogues
# and removes the legs (write), the stt-worker reads voice messages, the ami role queue_log.
SHARED_DIRS = (
    (instance_dirs.MONITOR_SUBDIR, 0o2770),
    (instance_dirs.VOICE_MESSAGES_SUBDIR, 0o2750),
    ("log", 0o2750),
    (sip_directory.SIP_SUBDIR, sip_directory.DIR_MODE),  # Asterisk writes contacts there
)
# What may stand in an account's name or secret: both go into manager.conf as they are.
_ACCOUNT_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
_SECRET = re.compile(r"[A-Za-z0-9._~+/=@%:,-]{8,256}")


@dataclass(frozen=True, slots=True)
class AmiAccountClasses:
    """What one kind of AMI account may read (events) and write (actions)."""

    purpose: str
    read: tuple[str, ...]
    write: tuple[str, ...]


# The ami role: every event the metrics use (FullyBooted is `system`), the failed SIP
# authentications (`security`: the SIP guard), and for its resync CoreShowChannels
# (`reporting`); Ping and QueueStatus need no class.
LISTENER = AmiAccountClasses(
    "the AMI listener (ami role): events; Ping, CoreShowChannels, QueueStatus; the agents' "
    "queue membership it keeps in step with SQL and restores on every login (QueueAdd, "
    "QueueRemove, QueuePause, QueuePenalty)",
    read=("system", "call", "agent", "dialplan", "agi", "dtmf", "reporting", "security"),
    write=("reporting", "agent"),
)
# `ivr call` and what places calls or manages queue members: Originate (`originate`),
# PlayDTMF (`call`), QueueAdd/QueuePause/QueueRemove (`agent`); it follows its own calls'
# events (channels, AGI, variables, queues).
ACTIONS = AmiAccountClasses(
    "actions (ivr call, queue members): Originate, PlayDTMF, QueueAdd, QueuePause",
    read=("call", "agent", "dialplan", "agi", "dtmf"),
    write=("call", "agent", "originate"),
)


@dataclass(frozen=True, slots=True)
class AmiAccount:
    username: str
    secret: str
    classes: AmiAccountClasses

    def check(self) -> None:
        """Refuse what would break manager.conf, or give the account a forbidden class."""
        if not _ACCOUNT_NAME.fullmatch(self.username):
            raise StackError(f"AMI account name {self.username!r}: only A-Z a-z 0-9 . _ -")
        if not _SECRET.fullmatch(self.secret):
            raise StackError(
                f"the secret of the AMI account {self.username}: 8 to 256 of A-Z a-z 0-9 "
                ". _ ~ + / = @ % : , - (';' starts a comment in Asterisk's configuration)"
            )
        bad = sorted(set(self.classes.write) & FORBIDDEN_WRITE)
        if bad:
            raise StackError(f"AMI account {self.username}: write class {', '.join(bad)}")

    def conf(self) -> str:
        return (
            f"; {self.classes.purpose}\n"
            f"[{self.username}]\nsecret = {self.secret}\n"
            "deny = 0.0.0.0/0.0.0.0\npermit = 127.0.0.1/255.255.255.255\n"
            f"read = {','.join(self.classes.read)}\n"
            f"write = {','.join(self.classes.write)}\n"
        )


@dataclass(frozen=True, slots=True)
class AsteriskInstance:
    root: Path  # the sid root on the host
    name: str  # instance name: /srv/hotline-<name> inside the root
    sip_port: int
    ami_port: int
    agi_url: str  # e.g. agi://127.0.0.1:4573
    dialplan_dir: Path  # the project's dialplan/ on the host
    prompts_dir: Path | None = None  # built prompts (<lang>/<key>.wav) on the host
    emergency_dids: tuple[str, ...] = ()  # numbers that go straight to [emergency] (routing/)
    routing_dir: Path | None = None  # copied in for the process-AGI entry points
    trunk_addresses: tuple[str, ...] = ("127.0.0.1/32",)  # the carrier's source addresses
    trunk_max_calls: int = 300  # calls from the trunk at once ...
    trunk_emergency_reserve: int = 20  # ... of which these are kept for the emergency numbers
    ami_accounts: tuple[AmiAccount, ...] = ()  # rendered into manager_generated.conf
    # Each listed queue's strategy, ring time and wrap-up (routing/, section ringing).
    ringing: Mapping[str, RingingIn] = field(default_factory=dict)
    sip_bind: str = "127.0.0.1"  # the agents' transports (UDP, TCP on sip_port; WS on http_port)
    http_port: int = 8088  # Asterisk's HTTP server: only the browsers' WebSocket transport
    # The post-call survey (routing/): the categories and queues of the desks that have it.
    survey_categories: tuple[str, ...] = ()
    survey_queues: tuple[str, ...] = ()
    # The one trunk outbound calls leave by (routing/ hotline.followup.trunk): host, port.
    outbound_trunk: tuple[str, int] | None = None

    # --- paths -----------------------------------------------------------------------
    @property
    def base(self) -> PurePosixPath:
        """The instance directory as Asterisk sees it (inside the root)."""
        return instance_dirs.instance_base(self.name)

    def host_path(self, inner: PurePosixPath) -> Path:
        """Where a path inside the root lies on the host."""
        return instance_dirs.host_path(self.root, inner)

    @property
    def modules_dir(self) -> PurePosixPath:
        """Debian's multiarch module directory (x86_64-linux-gnu, aarch64-linux-gnu ...)."""
        found = sorted(self.root.glob("usr/lib/*/asterisk/modules"))
        if not found:
            raise StackError(f"no Asterisk modules in {self.root}: run scripts/provision")
        return PurePosixPath("/") / found[0].relative_to(self.root)

    @property
    def config_file(self) -> PurePosixPath:
        return self.base / "etc" / "asterisk.conf"

    @property
    def log_dir(self) -> Path:
        return self.host_path(self.base / "log")

    @property
    def messages_log(self) -> Path:
        return self.log_dir / "messages.log"

    @property
    def queue_log(self) -> Path:
        return self.log_dir / "queue_log"

    @property
    def monitor_dir(self) -> Path:
        return self.host_path(self.base / instance_dirs.MONITOR_SUBDIR)

    @property
    def prompts_inner(self) -> PurePosixPath:
        return self.base / "prompts"

    @property
    def messages_inner(self) -> PurePosixPath:
        """Where voice messages are recorded (RECORD FILE), inside the root."""
        return self.base / instance_dirs.VOICE_MESSAGES_SUBDIR

    @property
    def messages_dir(self) -> Path:
        return self.host_path(self.messages_inner)

    @property
    def sip_directory(self) -> Path:
        """The agents' SIP directory (sorcery realtime), on the host."""
        return self.host_path(sip_directory.directory_inner(self.name))

    @property
    def pid_file(self) -> Path:
        return self.host_path(self.base / "run" / "asterisk.pid")

    # --- configuration ---------------------------------------------------------------
    def render(self) -> None:
        """Write the instance's configuration and prompts into the root (idempotent)."""
        if not (self.root / ASTERISK_BIN.lstrip("/")).exists():
            raise StackError(
                f"no Asterisk in {self.root}: run scripts/provision first", root=str(self.root)
            )
        etc = self.host_path(self.base / "etc")
        if etc.exists():
            shutil.rmtree(etc)
        etc.mkdir(parents=True)
        # Only folders in it: Asterisk's user and the roles' pass through, each closed itself.
        self.host_path(self.base).chmod(0o755)
        for sub in ("run", "log", "spool/monitor", "spool/voicemessages", "lib", "cache"):
            self.host_path(self.base / sub).mkdir(parents=True, exist_ok=True)
        for src in sorted(self.dialplan_dir.glob("*.conf")):
            shutil.copyfile(src, etc / src.name)
        (etc / "asterisk.conf").write_text(self._asterisk_conf())
        (etc / "extensions_globals_generated.conf").write_text(
            f"IVR_AGI_URL = {self.agi_url}\nIVR_PROMPTS = {self.prompts_inner}\n"
            f"IVR_MESSAGES = {self.messages_inner}\n"
            f"IVR_PROCESS_AGI = {self.app_inner / PROCESS_AGI}\n"
            f"IVR_TRUNK_MAX_CALLS = {self.trunk_max_calls}\n"
            f"IVR_TRUNK_ORDINARY_CALLS = {self.trunk_max_calls - self.trunk_emergency_reserve}\n"
            f"IVR_SURVEY_CATEGORIES = {_survey_list(self.survey_categories)}\n"
            f"IVR_SURVEY_QUEUES = {_survey_list(self.survey_queues)}\n"
        )
        self._install_app()
        (etc / "extensions_generated.conf").write_text(self._emergency_dids_conf())
        (etc / "queues_generated.conf").write_text(self._queues_conf())
        (etc / "queues_ringing_generated.conf").write_text(ringing_conf(self.ringing))
        (etc / "pjsip_generated.conf").write_text(self._pjsip_conf())
        (etc / "http_generated.conf").write_text(
            f"bindaddr = {self._bind_address()}\nbindport = {self.http_port}\n"
        )
        (etc / "res_config_sqlite3_generated.conf").write_text(
            f"dbfile = {sip_directory.directory_inner(self.name)}\n"
        )
        sip_directory.create(self.sip_directory)  # kept across renders: phones keep working
        write_private(etc / "manager_generated.conf", self._manager_conf())
        prompts = self.host_path(self.prompts_inner)
        if prompts.exists():
            shutil.rmtree(prompts)
        if self.prompts_dir is not None and self.prompts_dir.exists():
            shutil.copytree(self.prompts_dir, prompts)
        else:
            prompts.mkdir(parents=True)
        _readable_by_all(prompts)

    def _manager_conf(self) -> str:
        if not self.ami_accounts:
            raise StackError("no AMI account to render (the listener's secret is required)")
        names = [account.username for account in self.ami_accounts]
        if len(set(names)) != len(names):
            raise StackError(f"AMI account names repeat: {', '.join(names)}")
        for account in self.ami_accounts:
            account.check()
        accounts = "\n".join(account.conf() for account in self.ami_accounts)
        return f"port = {self.ami_port}\nbindaddr = 127.0.0.1\n\n{accounts}"

    @property
    def app_inner(self) -> PurePosixPath:
        """The process-AGI code inside the root (run by Debian's python3 there)."""
        return self.base / "app"

    def _install_app(self) -> None:
        """Copy what agi_scripts/ needs into the root: ivr, pyst2, the routing files."""
        app = self.host_path(self.app_inner)
        if app.exists():
            shutil.rmtree(app)
        skip = shutil.ignore_patterns("__pycache__", "*.pyc")
        shutil.copytree(Path(ivr.__file__).parent, app / "ivr", ignore=skip)
        shutil.copytree(Path(asterisk.__file__).parent, app / "asterisk", ignore=skip)
        shutil.copytree(REPO_DIR / "agi_scripts", app / "agi_scripts", ignore=skip)
        if self.routing_dir is not None:
            shutil.copytree(self.routing_dir, app / "routing")
        wrapper = app / PROCESS_AGI
        wrapper.write_text(
            "#!/bin/sh\n"
            f"export PYTHONPATH={self.app_inner} IVR_ROUTING_DIR={self.app_inner}/routing\n"
            f'exec /usr/bin/python3 {self.app_inner}/agi_scripts/inbound.py "$@"\n'
        )
        wrapper.chmod(0o755)
        _readable_by_all(app)

    def _bind_address(self) -> str:
        try:
            return str(ipaddress.IPv4Address(self.sip_bind))
        except ValueError:
            raise StackError(f"sip_bind {self.sip_bind!r} is not an IPv4 address") from None

    def _pjsip_conf(self) -> str:
        """The transports (loopback unless sip_bind says otherwise: UDP and TCP on sip_port,
        WebSocket through the HTTP server) and the trunk's allow-list: a request from any
        other source matches no trunk endpoint."""
        bind = self._bind_address()
        lines = [
            "[transport-udp]", "type = transport", "protocol = udp",
            f"bind = {bind}:{self.sip_port}", "",
            "[transport-tcp]", "type = transport", "protocol = tcp",
            f"bind = {bind}:{self.sip_port}", "",
            "; browsers: ws://<http bindaddr>:<http bindport>/ws (http_generated.conf)",
            "[transport-ws]", "type = transport", "protocol = ws",
            f"bind = {bind}", "",
            "; the carrier trunk [pstn] is identified by these source addresses only",
            "[pstn-identify]", "type = identify", "endpoint = pstn",
        ]  # fmt: skip
        for address in self.trunk_addresses:
            if not all(ch.isalnum() or ch in ".:/" for ch in address):
                raise StackError(f"trunk address {address!r} is not an address or network")
            lines.append(f"match = {address}")
        return "\n".join(lines + self._outbound_trunk_conf()) + "\n"

    def _outbound_trunk_conf(self) -> list[str]:
        return outbound_trunk_conf(self.outbound_trunk)

    def _emergency_dids_conf(self) -> str:
        lines = [
            "; Emergency DIDs from routing/: straight to [emergency], no AGI.",
            "[from-pstn](+)",
        ]
        for did in self.emergency_dids:
            if not did.isdigit():
                raise StackError(f"emergency DID {did!r} is not all digits")
            lines += [
                f"exten = {did},1,Set(__IVR_DID=${{EXTEN}})",
                "same = n,Gosub(trunk-admit,s,1(${GLOBAL(IVR_TRUNK_MAX_CALLS)}))",
                "same = n,Goto(emergency,s,1)",
            ]
        return "\n".join(lines) + "\n"

    def _queues_conf(self) -> str:
        advice = ",".join(
            f"{self.prompts_inner}/{lang}/safety-{part}"
            for lang in ("zh", "en")
            for part in SAFETY_ADVICE_PARTS
        )
        return (
            "[emergency-announce](!)\n"
            f"periodic-announce = {advice}\n"
            "periodic-announce-startdelay = 1\n"
            "periodic-announce-frequency = 1\n"
            "relative-periodic-announce = yes\n"
        )

    def _asterisk_conf(self) -> str:
        b = self.base
        return (
            "[directories]\n"
            f"astcachedir => {b}/cache\n"
            f"astetcdir => {b}/etc\n"
            f"astmoddir => {self.modules_dir}\n"
            f"astvarlibdir => {b}/lib\n"
            f"astdbdir => {b}/{sip_directory.SIP_SUBDIR}\n"  # the contacts, read by the service
            "astkeydir => /usr/share/asterisk\n"
            "astdatadir => /usr/share/asterisk\n"
            "astagidir => /usr/share/asterisk/agi-bin\n"
            f"astspooldir => {b}/spool\n"
            f"astrundir => {b}/run\n"
            f"astlogdir => {b}/log\n"
            "astsbindir => /usr/sbin\n"
            "\n[options]\n"
            "hideconnect = yes\n"
            f"systemname = {self.name}\n"
        )

    # --- process ---------------------------------------------------------------------
    def run_command(
        self, user: str | None = None, group: str | None = None, chroot: str = "chroot"
    ) -> list[str]:
        """Asterisk in the foreground in the root. With ``user``/``group`` (names in the
        root's /etc/passwd and /etc/group) it drops to them once started (-U/-G)."""
        cmd = [chroot, str(self.root), ASTERISK_BIN, "-f", "-n"]
        if user is not None:
            cmd += ["-U", user]
        if group is not None:
            cmd += ["-G", group]
        return [*cmd, "-C", str(self.config_file)]

    def hand_over(self, user: str, group: str, share_gid: int) -> None:
        """Make the rendered instance usable by Asterisk running as ``user``/``group`` of the
        root: its directories and configuration become theirs. The monitor and voice-message
        spools and the log directory also get the group ``share_gid`` (a group of the host,
        set-group-ID so the files inherit it): the recorder, running as that group,
        catalogues and removes the legs; the stt-worker reads the messages; the ami role
        reads ``queue_log``. Nothing in them keeps a permission bit for others; ``spool``
        itself is the way in (0750, that group)."""
        uid = root_user_id(self.root, user)
        gid = root_group_id(self.root, group)
        for sub in ("etc", "run", "log", "spool", "lib", "cache"):
            top = self.host_path(self.base / sub)
            for path in (top, *top.rglob("*")):
                os.chown(path, uid, gid, follow_symlinks=False)
        for sub, mode in SHARED_DIRS:
            shared = self.host_path(self.base / sub)
            for path in shared.rglob("*"):
                os.chown(path, uid, share_gid, follow_symlinks=False)
                if not path.is_symlink():
                    path.chmod(path.stat().st_mode & 0o7770)
            os.chown(shared, uid, share_gid)
            shared.chmod(mode)
        spool = self.host_path(self.base / "spool")  # the roles' way to the shared spools
        os.chown(spool, uid, share_gid)
        spool.chmod(0o750)

    def start(self, console_log: Path, user: str | None = None, group: str | None = None) -> int:
        """Start Asterisk in the root, detached in its own session, with the service umask
        (what it writes keeps no bit for others); with ``user``/``group`` of the root it drops
        to them once started (:meth:`hand_over` first). Returns its PID."""
        pid = spawn_detached(self.run_command(user, group), console_log, umask=SERVICE_UMASK)
        logger.info("asterisk started", extra={"instance": self.name, "pid": pid})
        return pid

    def rx(self, command: str, timeout: float = 10.0) -> str:
        """Run one CLI command through the instance's control socket."""
        result = subprocess.run(
            ["chroot", str(self.root), ASTERISK_BIN, "-C", str(self.config_file), "-rx", command],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise StackError(
                f"asterisk -rx {command!r} failed: {result.stderr.strip() or result.stdout.strip()}"
            )
        return result.stdout

    def wait_booted(self, pid: int, timeout: float) -> None:
        """Wait until Asterisk is fully booted; on failure show the tail of its log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not pid_alive(pid):
                raise StackError(
                    f"asterisk exited during start-up; last log lines:\n{self.log_tail()}"
                )
            try:
                out = self.rx("core waitfullybooted", timeout=max(1.0, deadline - time.monotonic()))
            except (StackError, subprocess.TimeoutExpired):
                out = ""
            if "fully booted" in out:  # an Asterisk exiting mid-boot answers with nothing
                return
            time.sleep(0.1)
        raise StackError(
            f"asterisk not fully booted after {timeout:.0f} s; last log lines:\n{self.log_tail()}"
        )

    def stop(self, pid: int, timeout: float = 10.0) -> None:
        """Stop Asterisk: `core stop now`, then SIGTERM, then SIGKILL, by PID."""
        if not pid_alive(pid):
            return
        try:
            self.rx("core stop now", timeout=timeout)
        except (StackError, subprocess.TimeoutExpired):
            logger.warning("core stop now failed; sending SIGTERM", extra={"pid": pid})
        if _wait_gone(pid, timeout):
            return
        _signal_group(pid, signal.SIGTERM)
        if not _wait_gone(pid, 5.0):
            _signal_group(pid, signal.SIGKILL)
            _wait_gone(pid, 5.0)

    def remove(self) -> None:
        """Delete the instance's directory from the root (once it is stopped)."""
        shutil.rmtree(self.host_path(self.base), ignore_errors=True)

    def log_tail(self, lines: int = 20) -> str:
        for path in (self.messages_log, self.host_path(self.base / "log" / "console.log")):
            if path.exists():
                return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        return "(no log written)"


# --- from the settings ------------------------------------------------------------------
def asterisk_instance(settings: Settings) -> AsteriskInstance:
    """The instance's paths and ports (no AMI accounts: see :func:`configured_instance`)."""
    return AsteriskInstance(
        root=settings.asterisk.root,
        name=settings.asterisk.instance,
        sip_port=settings.asterisk.sip_port,
        ami_port=settings.ami.port,
        agi_url=f"agi://{settings.fastagi.host}:{settings.fastagi.port}",
        dialplan_dir=settings.dialplan_dir,
        prompts_dir=settings.prompts_build_dir,
        trunk_addresses=tuple(str(net) for net in settings.asterisk.trunk_addresses),
        trunk_max_calls=settings.asterisk.trunk_max_calls,
        trunk_emergency_reserve=settings.asterisk.trunk_emergency_reserve,
        sip_bind=str(settings.asterisk.sip_bind),
        http_port=settings.asterisk.http_port,
    )


def ami_accounts(settings: Settings) -> tuple[AmiAccount, ...]:
    """The AMI accounts to render: the listener's (its secret is required) and the actions
    account when its secret is configured (without it, nothing can place calls)."""
    accounts = [AmiAccount(settings.ami.username, settings.ami_secret(), LISTENER)]
    if settings.has_ami_actions_secret():
        accounts.append(
            AmiAccount(settings.ami.actions_username, settings.ami_actions_secret(), ACTIONS)
        )
    return tuple(accounts)


def configured_instance(settings: Settings) -> AsteriskInstance:
    """The instance as ``render()`` must write it: with the emergency numbers of routing/,
    the desks that have the post-call survey, and the AMI accounts."""
    routing = load_routing(settings.routing_dir)
    categories, queues = dialplan_lists(routing)
    return replace(
        asterisk_instance(settings),
        emergency_dids=tuple(routing.hotline.emergency_dids),
        ringing=dict(routing.ringing),
        routing_dir=settings.routing_dir,
        ami_accounts=ami_accounts(settings),
        survey_categories=categories,
        survey_queues=queues,
        outbound_trunk=_outbound_trunk(routing),
    )


def _outbound_trunk(routing: Routing) -> tuple[str, int] | None:
    followup = routing.hotline.followup
    return None if followup is None else (followup.trunk.host, followup.trunk.port)


def outbound_trunk_conf(trunk: tuple[str, int] | None) -> list[str]:
    """The outbound trunk's pjsip lines (none without one): an endpoint with a fixed contact
    and no identify section, so nothing arriving from anywhere is ever matched to it; its
    context takes no call. Only Originate (the ``followups`` loop) and ``[agent-callback]``
    (which only Originate reaches: an agent's click-to-call) dial it. The dev stack renders it
    into pjsip_generated.conf; the compose stack's prompts one-shot prints it
    (``ivr outbound-trunk-conf``) for the Asterisk entrypoint to append there."""
    if trunk is None:
        return []
    host, port = trunk
    if not re.fullmatch(r"[A-Za-z0-9.-]{1,100}", host) or not 0 < port < 65536:
        raise StackError(f"outbound trunk {host}:{port} is not a host and port")
    return [
        "", "; the outbound trunk (routing/hotline.yaml followup.trunk)",
        "[outbound]", "type = aor", f"contact = sip:{host}:{port}", "",
        "[outbound]", "type = endpoint", "transport = transport-udp",
        "context = outbound-refused", "disallow = all", "allow = alaw,ulaw",
        "dtmf_mode = rfc4733", "direct_media = no", "rtp_symmetric = yes", "aors = outbound",
    ]  # fmt: skip


def outbound_trunk_of(routing: Routing) -> str:
    """The outbound trunk's pjsip config from routing/ (empty without a followup section)."""
    lines = outbound_trunk_conf(_outbound_trunk(routing))
    return "\n".join(lines) + "\n" if lines else ""


def _survey_list(names: tuple[str, ...]) -> str:
    """``a/b/c`` for the dialplan's FIELDNUM; names are routing identifiers, checked again."""
    for name in names:
        if not re.fullmatch(r"[a-z][a-z0-9_-]{0,39}", name):
            raise StackError(f"survey desk name {name!r} is not an identifier")
    return "/".join(names)


def root_user_id(root: Path, user: str) -> int:
    """The UID of ``user`` in the root's own /etc/passwd (not the host's)."""
    return _root_id(root / "etc" / "passwd", user, "user")


def root_group_id(root: Path, group: str) -> int:
    """The GID of ``group`` in the root's own /etc/group (not the host's)."""
    return _root_id(root / "etc" / "group", group, "group")


def _root_id(table: Path, name: str, what: str) -> int:
    try:
        lines = table.read_text().splitlines()
    except OSError as exc:
        raise StackError(f"cannot read {table}: {exc.strerror}") from None
    for line in lines:
        fields = line.split(":")
        if len(fields) > 2 and fields[0] == name:
            return int(fields[2])
    raise StackError(f"no {what} {name!r} in {table} (the Asterisk root's own {what}s)")


def _readable_by_all(top: Path) -> None:
    """Prompts and the process-AGI code (nothing secret) readable by Asterisk's user, whatever
    the umask of the process that rendered them or of the folders they were copied from."""
    for path in (top, *top.rglob("*")):
        if not path.is_symlink():
            executable = path.is_dir() or path.stat().st_mode & 0o100
            path.chmod(0o755 if executable else 0o644)


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return not pid_alive(pid)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
