"""docker/compose.yaml run for real: podman (through its Docker API) and Debian's docker-compose
1.29 build both images and start every service; a call placed through the containerised
Asterisk runs the call flow on the agi container, reaches its queue and a simulated agent, the
ami container counts it into Redis, and the web container answers /health on the published
port. Everything is torn down (`down -v`) afterwards, failed or not.

The base images are local stand-ins built from Debian's mirror (scripts/build-container-bases,
cached); podman runs with the hotline's own configuration and store (scripts/podman). podman
without systemd does not schedule healthchecks itself, so the test runs each container's own
healthcheck (`podman healthcheck run`) every few seconds while the stack is up: compose's
`service_healthy` conditions then wait on the images' real checks."""

from __future__ import annotations

import ipaddress
import json
import os
import random
import secrets
import shutil
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pytest

from ivr.cli import ROLES
from ivr.devstack.ports import free_port, is_free
from ivr.devstack.sipp import run_caller
from tests.stack_support import ARTIFACTS, wait_for

REPO = Path(__file__).resolve().parents[2]
PODMAN = REPO / "scripts" / "podman"
ONE_SHOT = ("migrate", "prompts")  # exit 0 once done; every other service stays up, healthy
SERVICES = ("redis", "postgres", "asterisk", *ROLES)
# sipp runs in the sid root, as in the other SIP tests.
SID_ROOT = Path(os.environ.get("IVR_ASTERISK__ROOT", "/var/lib/hotline/sid-root"))
RTP_PORTS = 20  # the published (and used) RTP range: 10 calls at once, plenty here
PROJECT_LABEL = "com.docker.compose.project"
LOGS = ARTIFACTS / "compose-stack"  # what the run printed, every service's log, Asterisk's

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1500)]


def engine_missing() -> str:
    """Why the container engine cannot run here ('' if it can)."""
    if os.geteuid() != 0:
        return "rootful podman needs root"
    for tool in ("podman", "docker-compose", "debootstrap"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (scripts/provision installs it)"
    info = subprocess.run([PODMAN, "info"], capture_output=True, text=True, timeout=60, check=False)
    if info.returncode != 0:
        return f"podman cannot run here: {info.stderr.strip()[-500:]}"
    return ""


@dataclass
class ComposeStack:
    src: Path  # the copy of the work tree compose builds from
    project: str
    env: dict[str, str]  # the environment docker-compose runs with (DOCKER_HOST)
    secrets: dict[str, str]  # docker/.env
    web_port: int
    sip_port: int

    def compose(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["docker-compose", "-p", self.project, "-f", "docker/compose.yaml", *args],
            cwd=self.src, env=self.env, capture_output=True, text=True, timeout=timeout,
            check=False,
        )  # fmt: skip

    def exec(
        self, service: str, *command: str, env: dict[str, str] | None = None, timeout: float = 120
    ) -> str:
        options = [f"--env={k}={v}" for k, v in (env or {}).items()]
        result = self.compose("exec", "-T", *options, service, *command, timeout=timeout)
        assert result.returncode == 0, f"{service}: {command}: {result.stdout}{result.stderr}"
        return result.stdout

    def states(self) -> dict[str, str]:
        """service -> 'healthy', 'starting', 'exited 0', ... for every container of the project."""
        names = podman("ps", "-a", "-q", "--filter", f"label={PROJECT_LABEL}={self.project}")
        if not names.split():
            return {}
        states = {}
        for item in json.loads(podman("inspect", *names.split())):
            service = item["Config"]["Labels"]["com.docker.compose.service"]
            state = item["State"]
            health = (state.get("Health") or state.get("Healthcheck") or {}).get("Status")
            if state["Status"] == "exited":
                states[service] = f"exited {state['ExitCode']}"
            else:
                states[service] = health or state["Status"]
        return states


def podman(*args: str, timeout: float = 60) -> str:
    result = subprocess.run(
        [PODMAN, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, f"podman {' '.join(args)}: {result.stderr}"
    return result.stdout


def free_subnet() -> str:
    """A /24 under 10.213.0.0/16 that no podman network of this store uses."""
    used = []
    ids = podman("network", "ls", "-q").split()
    for network in json.loads(podman("network", "inspect", *ids)) if ids else []:
        for subnet in network.get("subnets") or []:
            used.append(ipaddress.ip_network(subnet["subnet"]))
    candidates = [ipaddress.ip_network(f"10.213.{n}.0/24") for n in range(100, 250)]
    free = [c for c in candidates if not any(c.overlaps(u) for u in used)]
    assert free, f"no free /24 under 10.213.0.0/16: {used}"
    return str(random.choice(free))


def free_udp_range(count: int) -> int:
    """The first of `count` consecutive UDP ports free on 127.0.0.1."""
    for _ in range(200):
        start = random.randrange(30000, 40000 - count, 2)
        if all(is_free(p, "udp") for p in range(start, start + count)):
            return start
    raise AssertionError(f"no {count} consecutive free UDP ports in 30000-40000")


def copy_work_tree(target: Path) -> None:
    """The files git knows or would add (no .venv, .git, run/, build/): the build context."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, check=True,
    ).stdout.decode()  # fmt: skip
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def run_healthchecks(project: str, stop: threading.Event) -> None:
    """What podman's systemd timers would do: each running container's healthcheck, every 3 s
    (podman records the result; compose's depends_on reads it through the Docker API)."""
    while not stop.wait(3):
        names = subprocess.run(
            [PODMAN, "ps", "-q", "--filter", f"label={PROJECT_LABEL}={project}"],
            capture_output=True, text=True, timeout=60, check=False,
        ).stdout.split()  # fmt: skip
        for name in names:
            subprocess.run(
                [PODMAN, "healthcheck", "run", name], capture_output=True, timeout=60, check=False
            )


@pytest.fixture(scope="module")
def compose_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComposeStack]:
    reason = engine_missing()
    if reason:
        pytest.skip(f"no container engine: {reason}")
    bases = subprocess.run(
        [REPO / "scripts" / "build-container-bases"], capture_output=True, text=True,
        timeout=1200, check=False,
    )  # fmt: skip
    shutil.rmtree(LOGS, ignore_errors=True)
    LOGS.mkdir(parents=True)
    (LOGS / "build-container-bases.log").write_text(bases.stdout + bases.stderr)
    assert bases.returncode == 0, bases.stdout + bases.stderr

    tmp = tmp_path_factory.mktemp("compose")
    src = tmp / "src"
    copy_work_tree(src)
    project = f"hltest{secrets.token_hex(4)}"
    rtp_start = free_udp_range(RTP_PORTS)
    web_port = free_port()
    sip_port = free_port("udp")
    values = {
        "HOTLINE_DB_PASSWORD": secrets.token_hex(24),
        "HOTLINE_REDIS_PASSWORD": secrets.token_hex(24),
        "HOTLINE_AMI_SECRET": secrets.token_hex(24),
        "HOTLINE_AMI_ACTIONS_SECRET": secrets.token_hex(24),
    }
    settings = {
        "COMPOSE_PROJECT_NAME": project,
        "HOTLINE_SUBNET": free_subnet(),
        "HOTLINE_SIP_PORT": str(sip_port),
        "HOTLINE_WEB_PORT": str(web_port),
        "HOTLINE_RTP_START": str(rtp_start),
        "HOTLINE_RTP_END": str(rtp_start + RTP_PORTS - 1),
    }
    dotenv = src / "docker" / ".env"
    dotenv.write_text("".join(f"{k}={v}\n" for k, v in (settings | values).items()))
    dotenv.chmod(0o600)
    shutil.copy(src / "docker" / "ivr.env.example", src / "docker" / "ivr.env")

    socket = tmp / "podman.sock"
    with (tmp / "podman-service.log").open("w") as service_log:
        service = subprocess.Popen(
            [PODMAN, "system", "service", "--time=0", f"unix://{socket}"],
            stdout=subprocess.DEVNULL, stderr=service_log, start_new_session=True,
        )  # fmt: skip
    stop = threading.Event()
    checker = threading.Thread(target=run_healthchecks, args=(project, stop), daemon=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "COMPOSE_"))}
    stack = ComposeStack(
        src, project, env | {"DOCKER_HOST": f"unix://{socket}"}, values, web_port, sip_port
    )
    try:
        wait_for(socket.exists, 30, "podman's API socket")
        checker.start()
        up = stack.compose("up", "-d", "--build", timeout=1200)
        (LOGS / "compose-up.log").write_text(up.stdout + up.stderr)
        assert up.returncode == 0, up.stdout[-5000:] + up.stderr[-5000:]
        wait_for(
            lambda: all(
                stack.states().get(s) == ("exited 0" if s in ONE_SHOT else "healthy")
                for s in (*ONE_SHOT, *SERVICES)
            ),
            180, "every service healthy and the one-shot services done", every=2,
        )  # fmt: skip
        yield stack
    finally:
        (LOGS / "states.json").write_text(json.dumps(stack.states(), indent=1))
        (LOGS / "services.log").write_text(stack.compose("logs", "--no-color").stdout)
        messages = stack.compose("exec", "-T", "asterisk", "cat", "/var/log/asterisk/messages.log")
        (LOGS / "asterisk-messages.log").write_text(messages.stdout)
        down = stack.compose("down", "-v", "--remove-orphans", "--timeout", "20", timeout=600)
        (LOGS / "compose-down.log").write_text(down.stdout + down.stderr)
        stop.set()
        if checker.is_alive():
            checker.join(timeout=120)
        service.terminate()
        try:
            service.wait(timeout=30)
        except subprocess.TimeoutExpired:
            service.kill()
            service.wait(timeout=30)
        assert down.returncode == 0, down.stderr
        left = podman("ps", "-a", "-q", "--filter", f"label={PROJECT_LABEL}={project}")
        assert not left.split(), f"containers of {project} left after down: {left}"
        # Images no tag leads to any more (the build cache of older work trees): the store
        # would otherwise grow by every change. The current images' cache is kept.
        podman("image", "prune", "--force", timeout=300)


def test_given_compose_up_then_every_service_is_healthy_and_the_migrations_ran(compose_stack):
    states = compose_stack.states()
    assert {s: states.get(s) for s in SERVICES} == dict.fromkeys(SERVICES, "healthy")
    assert {s: states.get(s) for s in ONE_SHOT} == dict.fromkeys(ONE_SHOT, "exited 0")


def test_given_compose_up_then_the_web_health_answers_on_the_loopback_port(compose_stack):
    url = f"http://127.0.0.1:{compose_stack.web_port}/health"
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200


def test_given_compose_up_when_a_call_is_placed_then_the_flow_runs_and_an_agent_answers(
    compose_stack,
):
    def asterisk_finds_agi() -> bool:
        lookup = compose_stack.compose("exec", "-T", "asterisk", "getent", "hosts", "agi")
        return lookup.returncode == 0

    # The dialplan's FastAGI URL names the agi container, found through podman's aardvark-dns
    # (1.4 here, which can drop queries while it reloads: docker/README.md).
    wait_for(asterisk_finds_agi, 60, "the asterisk container resolving agi", every=2)
    added = compose_stack.exec(
        "asterisk", "asterisk", "-rx", "queue add member Local/agent@sim-agents/n to repair"
    )
    assert "Added interface" in added, added
    # `ivr call` in the ami container, with the AMI actions account's secret given to this one
    # command only (docker/README.md): a Local channel into from-pstn, key 1 at the menu.
    output = compose_stack.exec(
        "ami", "ivr", "call", "--did", "95158", "--from", "13800138000", "--digits", "1",
        "--hold", "40", "--timeout", "90", "--json",
        env={"IVR_AMI__ACTIONS_SECRET": compose_stack.secrets["HOTLINE_AMI_ACTIONS_SECRET"]},
        timeout=150,
    )  # fmt: skip
    report = json.loads(output.strip().splitlines()[-1])
    assert report["agi_routes"] == ["inbound"], report  # FastAGI on the agi container
    assert report["agi_commands"][0] == "ANSWER", report
    assert "GET DATA /var/lib/hotline/prompts/zh/menu 3000 1" in report["agi_commands"], report
    assert report["queue"] == "repair", report
    assert report["variables"]["IVR_NEXT"] == "queue", report
    assert any(c.startswith("Local/agent@sim-agents") for c in report["channels"]), report

    def repair_answered() -> bool:
        doc = json.loads(compose_stack.exec("web", "ivr", "metrics", "--period", "today", "--json"))
        return bool(doc["queues"]["repair"]["answered"] >= 1)

    # The ami container saw the call's events and counted it into Redis, where web reads it.
    wait_for(repair_answered, 60, "the answered call in the metrics the web role reads", every=2)

    def catalogued() -> dict[str, object] | None:
        rows = json.loads(compose_stack.exec("recorder", "ivr", "recordings", "list", "--json"))
        return next((r for r in rows if r["linkedid"] == report["linkedid"]), None)

    # Asterisk's legs, in the monitor volume, catalogued by the recorder container into the
    # SQL store (PostgreSQL) and the recordings volume.
    row = wait_for(catalogued, 60, "the call's recording catalogued by the recorder", every=2)
    assert (row["status"], row["queue"]) == ("ok", "repair"), row
    assert row["agent"] == "Local/agent@sim-agents/n", row


def test_given_compose_up_when_a_sip_call_arrives_on_the_published_port_then_the_flow_answers(
    compose_stack,
):
    # From the host, through 127.0.0.1's published SIP port: the source Asterisk sees is the
    # compose network's gateway, which the pstn trunk admits (ASTERISK_PERMIT_SUBNET). The
    # call's audio does not flow (docker/README.md: a caller on 127.0.0.1 and the container's
    # address in the SDP cannot reach each other), so no key is pressed: the flow answers,
    # plays its greeting and menu, and the caller hangs up.
    result = run_caller(
        SID_ROOT, PurePosixPath(f"/tmp/{compose_stack.project}-sipp"),
        target=f"127.0.0.1:{compose_stack.sip_port}", did="95158", hold_s=14, timeout_s=60,
    )  # fmt: skip
    assert (result.total, result.successful) == (1, 1), result

    def sip_call_catalogued() -> dict[str, object] | None:
        rows = json.loads(compose_stack.exec("recorder", "ivr", "recordings", "list", "--json"))
        return next((r for r in rows if not str(r["linkedid"]).startswith("ivrcall-")), None)

    row = wait_for(sip_call_catalogued, 60, "the SIP call catalogued by the recorder", every=2)
    assert (row["status"], row["did"], row["queue"]) == ("ok", "95158", None), row
    messages = compose_stack.exec("asterisk", "cat", "/var/log/asterisk/messages.log")
    assert 'AGI("PJSIP/pstn-' in messages  # the trunk's channel ran the FastAGI flow
    assert "/var/lib/hotline/prompts/zh/menu" in messages
    shutil.rmtree(result.workdir)  # kept in the sid root when the test fails
