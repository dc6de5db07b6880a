# syntax=docker/dockerfile:1
# Asterisk 22 from Debian sid, installed by scripts/asterisk-packages.sh: the same script that
# builds the tested sid root (scripts/build-asterisk-root), so both run the same Asterisk.
# Config: dialplan/*.conf as is, plus the files docker/asterisk-entrypoint.sh generates at
# start (asterisk.conf, *_generated.conf), as AsteriskInstance.render() does for `ivr up`.
# Build context: the repository root (docker compose -f docker/compose.yaml build).
FROM debian:sid-slim

COPY scripts/asterisk-packages.sh /tmp/asterisk-packages.sh
RUN sh /tmp/asterisk-packages.sh && rm -f /tmp/asterisk-packages.sh

# Runs as the unprivileged `asterisk` user (the package creates it; created here if not):
# every port it binds is above 1024. /etc/asterisk holds only dialplan/*.conf and the generated
# files, like the instance directory render() builds; Debian's sample configs are dropped.
# The spools shared with the app containers (compose.yaml: monitor, voicemessages) belong to
# the group hotline, GID 10001 as in docker/app.Dockerfile, set-group-ID and 2770: Asterisk
# (a member) writes there, the recorder removes the legs it catalogued, the stt-worker reads.
RUN set -eu; \
    getent group asterisk >/dev/null || groupadd --system asterisk; \
    getent passwd asterisk >/dev/null || useradd --system --gid asterisk \
        --home-dir /var/lib/asterisk --no-create-home --shell /usr/sbin/nologin asterisk; \
    groupadd --system --gid 10001 hotline; \
    usermod --append --groups hotline asterisk; \
    rm -rf /etc/asterisk; \
    mkdir -p /etc/asterisk /var/lib/asterisk /var/spool/asterisk/monitor \
        /var/spool/asterisk/voicemessages /var/log/asterisk /var/cache/asterisk /run/asterisk; \
    chown -R asterisk:asterisk /etc/asterisk /var/lib/asterisk /var/spool/asterisk \
        /var/log/asterisk /var/cache/asterisk /run/asterisk; \
    chown asterisk:hotline /var/spool/asterisk/monitor /var/spool/asterisk/voicemessages; \
    chmod 2770 /var/spool/asterisk/monitor /var/spool/asterisk/voicemessages

COPY --chown=asterisk:asterisk dialplan/*.conf /etc/asterisk/
COPY --chmod=0755 docker/asterisk-entrypoint.sh /usr/local/bin/asterisk-entrypoint

USER asterisk
WORKDIR /var/lib/asterisk
# SIP/UDP, AMI, RTP (dialplan/rtp.conf; compose narrows it with ASTERISK_RTP_START/END).
EXPOSE 5060/udp 5038/tcp 10000-20000/udp

# The same readiness test as `ivr up` (AsteriskInstance.wait_booted): an Asterisk that is
# still booting or exiting answers without "fully booted".
HEALTHCHECK --interval=10s --timeout=10s --start-period=30s --retries=3 \
    CMD asterisk -rx 'core waitfullybooted' | grep -q 'fully booted'

ENTRYPOINT ["/usr/local/bin/asterisk-entrypoint"]
CMD []
