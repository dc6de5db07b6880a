#!/bin/sh
# Installs Asterisk 22 and sipp from Debian sid into the system this runs in, and the Python
# that runs the process-AGI entry points (agi_scripts/) beside Asterisk.
# Shared by scripts/provision (inside a debootstrap'ed sid root) and docker/asterisk.Dockerfile,
# so the tested Asterisk and the image's Asterisk come from the same steps.
set -eu
export DEBIAN_FRONTEND=noninteractive
# The mirror may serve a snapshot whose Release file is past its Valid-Until date.
echo 'Acquire::Check-Valid-Until "false";' > /etc/apt/apt.conf.d/99hotline-no-valid-until
# No service may start while packages install.
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
chmod 0755 /usr/sbin/policy-rc.d
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
    asterisk asterisk-modules asterisk-core-sounds-en-wav sip-tester procps ca-certificates \
    python3 python3-pydantic python3-six python3-yaml tzdata
apt-get clean
rm -rf /var/lib/apt/lists/* /usr/share/doc/* /usr/share/man/* /usr/share/locale/*
asterisk -V
