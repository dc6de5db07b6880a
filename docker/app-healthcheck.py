"""Container healthcheck of one app role: ``python /opt/hotline/healthcheck.py ROLE``.

The readiness tests of ``ivr up`` (``role_check`` in ivr/devstack/stack.py), minus side effects:
  agi         a socket listens on fastagi.port (read from /proc/net: a test connection would
              be logged and counted by the server as a bad FastAGI request)
  ami         the listener's heartbeat in Redis says it is logged in to AMI
  web         GET /health answers 200
  recorder    its heartbeat file (in the run dir) says the process swept lately, without error
  stt-worker  a worker process keeps its status in Redis
Exit 0 when healthy, 1 otherwise (with one line saying why).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx
import redis

from ivr import redis_keys
from ivr.settings import Settings, load_settings

LISTEN = "0A"  # TCP state in /proc/net/tcp*


def agi_ok(port: int) -> tuple[bool, str]:
    suffix = f":{port:04X}"
    for table in (Path("/proc/net/tcp"), Path("/proc/net/tcp6")):
        if not table.exists():
            continue
        for line in table.read_text().splitlines()[1:]:
            fields = line.split()
            if len(fields) > 3 and fields[1].endswith(suffix) and fields[3] == LISTEN:
                return True, f"listening on port {port}"
    return False, f"nothing listens on port {port}"


def ami_ok(settings: Settings) -> tuple[bool, str]:
    try:
        with redis.Redis.from_url(
            settings.redis.url, **settings.redis_auth(), socket_timeout=2,
            socket_connect_timeout=2, decode_responses=True,
        ) as client:  # fmt: skip
            status = client.hgetall(redis_keys.AMI_STATUS)
    except redis.RedisError as exc:
        return False, f"Redis unreachable: {exc}"
    if status.get("connected") != "1":
        return False, "not logged in to AMI" if status else "no heartbeat in Redis"
    return True, "logged in to AMI"


def web_ok(host: str, port: int) -> tuple[bool, str]:
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    try:
        response = httpx.get(f"http://{host}:{port}/health", timeout=3)
    except httpx.HTTPError as exc:
        return False, str(exc)
    return response.status_code == 200, f"/health: HTTP {response.status_code}"


def recorder_ok(settings: Settings) -> tuple[bool, str]:
    """The heartbeat names the process that wrote it: that one must still be alive."""
    from ivr.adapters.recordings.recorder import heartbeat_path
    from ivr.devstack.stack import role_check

    try:
        pid = int(json.loads(heartbeat_path(settings).read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return False, "no sweep yet"
    if not Path(f"/proc/{pid}").exists():
        return False, f"the recorder (pid {pid}) is gone"
    return role_check(settings, "recorder", pid)


def main(argv: list[str]) -> int:
    roles = ("agi", "ami", "web", "recorder", "stt-worker")
    if len(argv) != 2 or argv[1] not in roles:
        sys.stderr.write(f"usage: healthcheck.py {'|'.join(roles)}\n")
        return 2
    settings = load_settings()
    role = argv[1]
    if role == "agi":
        ok, detail = agi_ok(settings.fastagi.port)
    elif role == "ami":
        ok, detail = ami_ok(settings)
    elif role == "recorder":
        ok, detail = recorder_ok(settings)
    elif role == "stt-worker":
        from ivr.devstack.stack import role_check

        ok, detail = role_check(settings, "stt-worker", 0)
    else:
        ok, detail = web_ok(settings.web.host, settings.web.port)
    sys.stdout.write(f"{role}: {'ok' if ok else 'DOWN'}: {detail}\n")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
