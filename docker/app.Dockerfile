# syntax=docker/dockerfile:1
# The ivr package: one image for the migrations and every role (chosen by the compose `command:`),
# with the prompts rendered at build time (`ivr prompts build`, espeak-ng + ffmpeg from Debian,
# as scripts/provision installs them on the host).
# Build context: the repository root (docker compose -f docker/compose.yaml build).
FROM python:3.11-slim-bookworm

RUN apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        ffmpeg espeak-ng \
    && rm -rf /var/lib/apt/lists/*

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# Exactly uv.lock's versions, with their hashes, as scripts/provision installs them on a host:
# the runtime dependencies plus the PostgreSQL driver (the `postgresql` extra), no dev tools.
# uv itself is pinned by scripts/uv-bootstrap.txt, used to export the lock, then removed.
# Installed, not editable: ivr/ lands in site-packages, so the settings' defaults that are
# relative to the repository (routing/, prompts/, dialplan/, build/prompts, run/) would point
# into site-packages. Each is set explicitly here, to where the files are copied.
COPY scripts/uv-bootstrap.txt /tmp/uv-bootstrap.txt
COPY pyproject.toml uv.lock README.md /tmp/src/
COPY ivr /tmp/src/ivr
RUN pip install --no-deps --require-hashes -r /tmp/uv-bootstrap.txt \
    && cd /tmp/src \
    && uv export --frozen --extra postgresql --no-emit-project --quiet -o /tmp/requirements.txt \
    && pip install --require-hashes -r /tmp/requirements.txt \
    && pip install --no-deps /tmp/src \
    && pip uninstall -y uv \
    && cd / && rm -rf /tmp/src /tmp/requirements.txt /tmp/uv-bootstrap.txt

ENV IVR_ROUTING_DIR=/opt/hotline/routing \
    IVR_PROMPTS_DIR=/opt/hotline/prompts \
    IVR_PROMPTS_BUILD_DIR=/opt/hotline/prompts-build \
    IVR_DIALPLAN_DIR=/opt/hotline/dialplan \
    IVR_RUN_DIR=/var/lib/hotline/run

# WORKDIR holds no .env, so the settings read only the environment (docker/ivr.env).
WORKDIR /opt/hotline
COPY routing /opt/hotline/routing
COPY prompts /opt/hotline/prompts
COPY dialplan /opt/hotline/dialplan
COPY docker/app-healthcheck.py /opt/hotline/healthcheck.py

# Validates routing/ and the catalog, then renders <lang>/<key>.wav (8 kHz mono); the compose
# `prompts` service copies them into the volume Asterisk plays them from.
RUN ivr check-routing \
    && ivr prompts build \
    && test -f /opt/hotline/prompts-build/zh/apology.wav \
    && chmod -R a+rX /opt/hotline

# Non-root. The mount points of compose.yaml's volumes are owned by this user, so that a new
# volume mounted there is writable by it: prompts, recordings and models; the spools Asterisk
# shares (monitor: the recorder removes catalogued legs; voice messages: the stt-worker reads
# them) are group hotline, set-group-ID, 2770, as docker/asterisk.Dockerfile makes them too
# (whichever container mounts a new volume first gives it its owner and mode).
RUN groupadd --system --gid 10001 hotline \
    && useradd --system --uid 10001 --gid hotline --home-dir /var/lib/hotline \
        --no-create-home --shell /usr/sbin/nologin hotline \
    && install -d -o hotline -g hotline /var/lib/hotline /var/lib/hotline/run \
        /var/lib/hotline/prompts /var/lib/hotline/recordings /var/lib/hotline/models \
    && install -d -o hotline -g hotline -m 2770 /var/spool/asterisk/monitor \
        /var/lib/hotline/sid-root/srv/hotline-hotline/spool/voicemessages
USER hotline

# FastAGI (ivr agi), web (ivr web); the ami role only connects out.
EXPOSE 4573 8080
CMD ["ivr", "--help"]
