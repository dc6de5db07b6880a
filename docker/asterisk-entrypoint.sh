#!/bin/sh
# Entrypoint of docker/asterisk.Dockerfile. Writes the per-instance files that
# ivr/adapters/telephony/asterisk.py (AsteriskInstance.render) writes for `ivr up`, from the environment,
# then runs Asterisk in the foreground. The files have the same content and format; the only
# differences are container-only and marked below:
#   - asterisk.conf: Debian's standard directories instead of /srv/hotline-<instance>;
#   - SIP and AMI bind the container's address (0.0.0.0) instead of 127.0.0.1;
#   - the AMI account and the SIP trunk also admit ASTERISK_PERMIT_SUBNET (the compose network:
#     the other containers, and the host through the loopback-only published ports);
#   - rtp.conf is rewritten only when ASTERISK_RTP_START and ASTERISK_RTP_END are both set.
# Variables (docker/ivr.env.example lists them all):
#   IVR_AMI__SECRET           the AMI listener's secret (ami role), REQUIRED (no default; the
#                             placeholder is refused)
#   IVR_AMI__USERNAME         the listener's account      (hotline-listener)
#   IVR_AMI__ACTIONS_SECRET   the AMI actions account's secret (ivr call); unset: no such account
#   IVR_AMI__ACTIONS_USERNAME the actions account         (hotline-actions)
#   IVR_AMI__PORT             AMI port                    (5038)
#   IVR_ASTERISK__SIP_PORT    SIP/UDP port                (5060)
#   IVR_ASTERISK__INSTANCE    systemname                  (hotline)
#   IVR_FASTAGI__PORT         port of the default ASTERISK_AGI_URL (4573)
#   ASTERISK_AGI_URL          FastAGI base URL, the dialplan's IVR_AGI_URL (agi://agi:$IVR_FASTAGI__PORT)
#   ASTERISK_PROMPTS          built prompts (<lang>/<key>.wav), the dialplan's IVR_PROMPTS
#                             (/var/lib/hotline/prompts)
#   ASTERISK_SIP_BINDADDR     SIP bind address            (0.0.0.0)
#   ASTERISK_AMI_BINDADDR     AMI bind address            (0.0.0.0)
#   ASTERISK_PERMIT_SUBNET    CIDR admitted to AMI and the trunk besides 127.0.0.1 (none)
#   ASTERISK_SIP_TRUNK_MATCH  sources identified as the pstn trunk, besides 127.0.0.1
#                             (ASTERISK_PERMIT_SUBNET)
#   IVR_ASTERISK__TRUNK_MAX_CALLS, IVR_ASTERISK__TRUNK_EMERGENCY_RESERVE
#                             calls from the trunk at once, and those kept for the
#                             emergency numbers (300, 20), as the settings of that name
#   ASTERISK_RTP_START, ASTERISK_RTP_END   RTP port range (unset: dialplan/rtp.conf, 10000-20000)
#   ASTERISK_EMERGENCY_DIDS   comma-separated emergency numbers (routing/hotline.yaml emergency_dids)
# Process AGI (IVR_AGI_MODE=process) is not available in this image: keep the default fastagi.
set -eu

etc=/etc/asterisk

say() { printf 'asterisk-entrypoint: %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 64; }

is_port() { # value
    case $1 in '' | *[!0-9]*) return 1 ;; esac
    [ "${#1}" -le 5 ] && [ "$1" -ge 1 ] && [ "$1" -le 65535 ]
}

is_ipv4() { # value
    case $1 in '' | *[!0-9.]* | .* | *. | *..*) return 1 ;; esac
    old_ifs=$IFS
    IFS=.
    # shellcheck disable=SC2086 # split on dots on purpose
    set -- $1
    IFS=$old_ifs
    [ "$#" -eq 4 ] || return 1
    for octet in "$@"; do
        [ "${#octet}" -le 3 ] && [ "$octet" -le 255 ] || return 1
    done
}

cidr_netmask() { # prefix length (0-32) -> dotted netmask, the form render() writes
    bits=$1 mask='' i=0
    while [ "$i" -lt 4 ]; do
        if [ "$bits" -ge 8 ]; then
            octet=255 bits=$((bits - 8))
        else
            octet=$((256 - (1 << (8 - bits)))) bits=0
        fi
        mask=${mask:+$mask.}$octet i=$((i + 1))
    done
    printf '%s\n' "$mask"
}

# --- the environment ----------------------------------------------------------------------
check_secret() { # variable value
    [ "$2" != change-me ] || die "$1 is still the placeholder 'change-me': set a real secret in docker/ivr.env."
    case $2 in
        *[!A-Za-z0-9._~+/=@%:,-]*) die "$1 may hold only A-Z a-z 0-9 . _ ~ + / = @ % : , - (';' starts a comment in Asterisk's config)" ;;
    esac
    [ "${#2}" -ge 8 ] || die "$1 is shorter than 8 characters"
}
check_account() { # variable value
    case $2 in
        '' | *[!A-Za-z0-9._-]*) die "$1=$2: only A-Z a-z 0-9 . _ - allowed" ;;
    esac
}

secret=${IVR_AMI__SECRET:-}
[ -n "$secret" ] || die "IVR_AMI__SECRET is not set. There is no default AMI secret: put one in
docker/ivr.env (e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(24))')."
check_secret IVR_AMI__SECRET "$secret"
username=${IVR_AMI__USERNAME:-hotline-listener}
check_account IVR_AMI__USERNAME "$username"

actions_secret=${IVR_AMI__ACTIONS_SECRET:-}
actions_username=${IVR_AMI__ACTIONS_USERNAME:-hotline-actions}
if [ -n "$actions_secret" ]; then
    check_secret IVR_AMI__ACTIONS_SECRET "$actions_secret"
    check_account IVR_AMI__ACTIONS_USERNAME "$actions_username"
    [ "$actions_username" != "$username" ] || die "IVR_AMI__USERNAME and IVR_AMI__ACTIONS_USERNAME are both $username: two accounts"
else
    say "IVR_AMI__ACTIONS_SECRET is not set: no AMI actions account (ivr call cannot place calls)"
fi

ami_port=${IVR_AMI__PORT:-5038}
sip_port=${IVR_ASTERISK__SIP_PORT:-5060}
agi_port=${IVR_FASTAGI__PORT:-4573}
for pair in "IVR_AMI__PORT=$ami_port" "IVR_ASTERISK__SIP_PORT=$sip_port" "IVR_FASTAGI__PORT=$agi_port"; do
    is_port "${pair#*=}" || die "$pair is not a port number (1-65535)"
done

instance=${IVR_ASTERISK__INSTANCE:-hotline}
printf '%s\n' "$instance" | grep -Eqx '[a-z][a-z0-9-]{0,30}' \
    || die "IVR_ASTERISK__INSTANCE=$instance: lower-case letters, digits and '-', starting with a letter"

agi_url=${ASTERISK_AGI_URL:-agi://agi:$agi_port}
case $agi_url in
    *[!A-Za-z0-9.:/_-]*) die "ASTERISK_AGI_URL=$agi_url: unexpected characters" ;;
    agi://?*) ;;
    *) die "ASTERISK_AGI_URL=$agi_url must be agi://<host>[:<port>]" ;;
esac

prompts=${ASTERISK_PROMPTS:-/var/lib/hotline/prompts}
case $prompts in
    *[!A-Za-z0-9._/-]*) die "ASTERISK_PROMPTS=$prompts: unexpected characters" ;;
    /*) ;;
    *) die "ASTERISK_PROMPTS=$prompts must be an absolute path" ;;
esac

sip_bind=${ASTERISK_SIP_BINDADDR:-0.0.0.0}
ami_bind=${ASTERISK_AMI_BINDADDR:-0.0.0.0}
is_ipv4 "$sip_bind" || die "ASTERISK_SIP_BINDADDR=$sip_bind is not an IPv4 address"
is_ipv4 "$ami_bind" || die "ASTERISK_AMI_BINDADDR=$ami_bind is not an IPv4 address"

subnet=${ASTERISK_PERMIT_SUBNET:-}
permit_extra=''
if [ -n "$subnet" ]; then
    net=${subnet%/*} prefix=${subnet#*/}
    case $subnet in */*) ;; *) prefix='' ;; esac
    case $prefix in '' | *[!0-9]*) prefix=99 ;; esac
    { is_ipv4 "$net" && [ "$prefix" -le 32 ]; } \
        || die "ASTERISK_PERMIT_SUBNET=$subnet must be an IPv4 network in CIDR form, e.g. 10.213.57.0/24"
    permit_extra="permit = $net/$(cidr_netmask "$prefix")
"
else
    say "ASTERISK_PERMIT_SUBNET is not set: AMI admits 127.0.0.1 only, so the ami role (another container) cannot log in"
fi
trunk_match=${ASTERISK_SIP_TRUNK_MATCH-$subnet}
case $trunk_match in
    *[!0-9./,]*) die "ASTERISK_SIP_TRUNK_MATCH=$trunk_match: IPv4 addresses or networks, comma-separated" ;;
esac

trunk_max=${IVR_ASTERISK__TRUNK_MAX_CALLS:-300}
trunk_reserve=${IVR_ASTERISK__TRUNK_EMERGENCY_RESERVE:-20}
case "$trunk_max$trunk_reserve" in
    *[!0-9]*) die "IVR_ASTERISK__TRUNK_MAX_CALLS and IVR_ASTERISK__TRUNK_EMERGENCY_RESERVE are whole numbers" ;;
esac
[ "$trunk_reserve" -lt "$trunk_max" ] || die "IVR_ASTERISK__TRUNK_EMERGENCY_RESERVE must be below IVR_ASTERISK__TRUNK_MAX_CALLS"

moddir=''
for dir in /usr/lib/*/asterisk/modules /usr/lib/asterisk/modules; do
    if [ -f "$dir/chan_pjsip.so" ]; then moddir=$dir; break; fi
done
[ -n "$moddir" ] || die "no Asterisk modules directory (chan_pjsip.so) under /usr/lib"

# --- the generated files (AsteriskInstance.render) -----------------------------------------
umask 022
cat > "$etc/asterisk.conf" <<EOF
[directories]
astcachedir => /var/cache/asterisk
astetcdir => $etc
astmoddir => $moddir
astvarlibdir => /var/lib/asterisk
astdbdir => /var/lib/asterisk
astkeydir => /usr/share/asterisk
astdatadir => /usr/share/asterisk
astagidir => /usr/share/asterisk/agi-bin
astspooldir => /var/spool/asterisk
astrundir => /var/run/asterisk
astlogdir => /var/log/asterisk
astsbindir => /usr/sbin

[options]
hideconnect = yes
systemname = $instance
EOF

cat > "$etc/extensions_globals_generated.conf" <<EOF
IVR_AGI_URL = $agi_url
IVR_PROMPTS = $prompts
IVR_MESSAGES = /var/spool/asterisk/voicemessages
IVR_PROCESS_AGI = /nonexistent/process-agi-is-not-in-this-image
IVR_TRUNK_MAX_CALLS = $trunk_max
IVR_TRUNK_ORDINARY_CALLS = $((trunk_max - trunk_reserve))
EOF
mkdir -p /var/spool/asterisk/voicemessages

# The emergency DIDs (routing/hotline.yaml emergency_dids), straight to [emergency].
{
    echo "; Emergency DIDs from routing/: straight to [emergency], no AGI."
    echo "[from-pstn](+)"
    for did in $(printf '%s' "${ASTERISK_EMERGENCY_DIDS:-}" | tr ',' ' '); do
        case $did in '' | *[!0-9]*) die "ASTERISK_EMERGENCY_DIDS: '$did' is not all digits" ;; esac
        echo "exten = $did,1,Set(__IVR_DID=\${EXTEN})"
        echo "same = n,Gosub(trunk-admit,s,1(\${GLOBAL(IVR_TRUNK_MAX_CALLS)}))"
        echo "same = n,Goto(emergency,s,1)"
    done
} > "$etc/extensions_generated.conf"

# The emergency queues' periodic announcement: the safety advice in short parts, zh then en.
advice=''
for lang in zh en; do
    for part in 1 2 3 4; do
        advice="${advice:+$advice,}$prompts/$lang/safety-$part"
    done
done
cat > "$etc/queues_generated.conf" <<EOF
[emergency-announce](!)
periodic-announce = $advice
periodic-announce-startdelay = 1
periodic-announce-frequency = 1
relative-periodic-announce = yes
EOF

# Each queue's strategy, ring time and wrap-up (routing/, section ringing): rendered by the
# prompts one-shot (`ivr ringing-conf`) into the prompts volume, as `ivr up` renders it.
[ -f "$prompts/queues_ringing_generated.conf" ] ||
    die "$prompts/queues_ringing_generated.conf is missing: did the prompts service run?"
cp "$prompts/queues_ringing_generated.conf" "$etc/queues_ringing_generated.conf"

cat > "$etc/pjsip_generated.conf" <<EOF
[transport-udp]
type = transport
protocol = udp
bind = $sip_bind:$sip_port

; the carrier trunk [pstn] is identified by these source addresses only. In a container,
; SIP from the host arrives from the compose network's gateway (ASTERISK_SIP_TRUNK_MATCH).
[pstn-identify]
type = identify
endpoint = pstn
match = 127.0.0.1
EOF
for source in $(printf '%s' "$trunk_match" | tr ',' ' '); do
    echo "match = $source" >> "$etc/pjsip_generated.conf"
done

# The outbound trunk of routing/ (hotline.yaml followup.trunk: the 回访 calls and the agents'
# click-to-calls), rendered by the prompts one-shot (`ivr outbound-trunk-conf`) as `ivr up`
# renders it; empty without a followup section.
[ -f "$prompts/pjsip_outbound_generated.conf" ] ||
    die "$prompts/pjsip_outbound_generated.conf is missing: did the prompts service run?"
cat "$prompts/pjsip_outbound_generated.conf" >> "$etc/pjsip_generated.conf"

# Agents' phones are not set up in the container yet (no SIP directory schema, no TCP or
# WebSocket transport): the HTTP server stays on the container's loopback and the realtime
# file is named only so that res_config_sqlite3 loads (docker/README.md, known limits).
printf 'bindaddr = 127.0.0.1\nbindport = 8088\n' > "$etc/http_generated.conf"
printf 'dbfile = /var/lib/asterisk/sip-directory.sqlite3\n' > "$etc/res_config_sqlite3_generated.conf"

# The AMI accounts, with the classes render() gives them (ivr/adapters/telephony/asterisk.py LISTENER
# and ACTIONS): none may write system, command or config. Created with mode 0600 (umask 077)
# under a temporary name, then renamed: never readable by others, never half-written.
rm -f "$etc/manager_generated.conf.tmp"
(
    umask 077
    {
        cat <<EOF
port = $ami_port
bindaddr = $ami_bind

; the AMI listener (ami role): events; Ping, CoreShowChannels, QueueStatus
[$username]
secret = $secret
deny = 0.0.0.0/0.0.0.0
permit = 127.0.0.1/255.255.255.255
${permit_extra}read = system,call,agent,dialplan,agi,dtmf,reporting,security
write = reporting,agent
EOF
        if [ -n "$actions_secret" ]; then
            cat <<EOF

; actions (ivr call, queue members): Originate, PlayDTMF, QueueAdd, QueuePause
[$actions_username]
secret = $actions_secret
deny = 0.0.0.0/0.0.0.0
permit = 127.0.0.1/255.255.255.255
${permit_extra}read = call,agent,dialplan,agi,dtmf
write = call,agent,originate
EOF
        fi
    } > "$etc/manager_generated.conf.tmp"
    mv -f "$etc/manager_generated.conf.tmp" "$etc/manager_generated.conf"
)

rtp_start=${ASTERISK_RTP_START:-} rtp_end=${ASTERISK_RTP_END:-}
if [ -n "$rtp_start" ] || [ -n "$rtp_end" ]; then
    { is_port "$rtp_start" && is_port "$rtp_end" && [ "$rtp_start" -lt "$rtp_end" ]; } \
        || die "ASTERISK_RTP_START=$rtp_start / ASTERISK_RTP_END=$rtp_end: set both, start < end"
    cat > "$etc/rtp.conf" <<EOF
[general]
rtpstart = $rtp_start
rtpend = $rtp_end
EOF
fi

if [ ! -f "$prompts/zh/apology.wav" ]; then
    say "WARNING: $prompts/zh/apology.wav is missing: the prompts volume is empty (did the prompts service run?)"
fi
mkdir -p /var/run/asterisk

say "SIP udp $sip_bind:$sip_port, AMI $ami_bind:$ami_port (accounts $username${actions_secret:+ and $actions_username}), FastAGI $agi_url, prompts $prompts"
exec asterisk -f -n "$@"
