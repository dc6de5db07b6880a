#!/bin/sh
# docker-entrypoint.sh of the local redis:7-bookworm stand-in (scripts/build-container-bases):
# what compose.yaml relies on from the official image's. Arguments that start with '-' or name
# a .conf file go to redis-server; redis-server started as root drops to the redis user
# (owning /data first); anything else runs as given.
set -eu
case ${1:-} in -* | *.conf) set -- redis-server "$@" ;; esac
if [ "${1:-}" = redis-server ] && [ "$(id -u)" = 0 ]; then
    find . \! -user redis -exec chown redis '{}' +
    exec setpriv --reuid=redis --regid=redis --init-groups "$0" "$@"
fi
exec "$@"
