"""Container healthcheck of one app role: ``python /opt/hotline/healthcheck.py agi|ami|web``.

The readiness tests of ``ivr up`` (``Stack._checks`` in ivr/stack.py), minus side effects:
  agi  a socket listens on fastagi.port (read from /proc/net: a test connection would be
       logged and counted by the server as a bad FastAGI request)
  ami  the listener's heartbeat in Redis says it is logged in to AMI
  web  GET /health answers 200
Exit 0 when healthy, 1 otherwise (with one line saying why).
"""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import redis

from ivr import redis_keys
from ivr.settings import load_settings

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


def ami_ok(url: str) -> tuple[bool, str]:
    try:
        with redis.Redis.from_url(
            url, socket_timeout=2, socket_connect_timeout=2, decode_responses=True
        ) as client:
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


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[1] not in ("agi", "ami", "web"):
        sys.stderr.write("usage: healthcheck.py agi|ami|web\n")
        return 2
    settings = load_settings()
    role = argv[1]
    if role == "agi":
        ok, detail = agi_ok(settings.fastagi.port)
    elif role == "ami":
        ok, detail = ami_ok(settings.redis.url)
    else:
        ok, detail = web_ok(settings.web.host, settings.web.port)
    sys.stdout.write(f"{role}: {'ok' if ok else 'DOWN'}: {detail}\n")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
