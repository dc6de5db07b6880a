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
# Only Asterisk 22 is tested here (its AMI events, queue_log and PJSIP options): refuse another
# major version, clearly, before installing anything.
want_major=22
candidate=$(apt-cache show --no-all-versions asterisk 2>/dev/null | sed -n 's/^Version: //p' | head -n1)
[ -n "$candidate" ] || { echo "asterisk-packages: ERROR: this mirror offers no 'asterisk' package (is it Debian sid?)" >&2; exit 1; }
major=$(printf '%s' "${candidate#*:}" | cut -d. -f1)
if [ "$major" != "$want_major" ]; then
    echo "asterisk-packages: ERROR: the mirror offers Asterisk $candidate; hotline is tested with Asterisk $want_major.x only. Use a sid snapshot that still has $want_major (IVR_DEBIAN_MIRROR), or port and test hotline on the new version first." >&2
    exit 1
fi
apt-get install -y -qq --no-install-recommends \
    "asterisk=$candidate" asterisk-modules asterisk-core-sounds-en-wav sip-tester procps ca-certificates \
    python3 python3-pydantic python3-six python3-yaml tzdata
apt-get clean
rm -rf /var/lib/apt/lists/* /usr/share/doc/* /usr/share/man/* /usr/share/locale/*
asterisk -V | grep -q "^Asterisk $want_major\." || { echo "asterisk-packages: ERROR: installed $(asterisk -V), not $want_major.x" >&2; exit 1; }
asterisk -V
