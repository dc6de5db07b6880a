"""The systemd units (ivr/units.py), rendered from an Install without touching the machine."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from ivr.cli import ROLES
from ivr.devstack.stack import APP_ROLES, Stack
from ivr.units import ASTERISK_UNIT, MIGRATE_UNIT, ROLE_UNITS, TARGET, render, role_unit
from tests.units_support import EXAMPLE_INSTALL as INSTALL


def test_every_role_of_the_stack_has_a_unit():
    assert set(ROLE_UNITS) == set(ROLES) == set(APP_ROLES)
    units = render(INSTALL)
    assert set(units) == {*map(role_unit, ROLES), MIGRATE_UNIT, ASTERISK_UNIT, TARGET}


def test_role_units_run_ivr_role_as_the_service_user_after_the_migrations():
    units = render(INSTALL)
    for role in ROLES:
        text = units[role_unit(role)]
        assert f"\nExecStart=/opt/hotline/.venv/bin/ivr {role}\n" in text
        assert "\nUser=hotline\nGroup=hotline\n" in text
        assert f"\nRequires={MIGRATE_UNIT}\n" in text
        assert "\nRestart=on-failure\n" in text
        assert "\nEnvironmentFile=/etc/hotline/ivr.env\n" in text
        assert "\nEnvironment=IVR_ASTERISK__ROOT=/var/lib/hotline/sid-root\n" in text
    assert "\nTimeoutStopSec=130\n" in units[role_unit("agi")]  # calls may finish
    assert "IVR_METRICS__QUEUE_LOG_PATH=/var/lib/hotline/sid-root/" in units[role_unit("ami")]
    assert "IVR_RECORDINGS__MONITOR_DIR=/var/lib/hotline/sid-root/" in units[role_unit("recorder")]
    assert "redis-server.service" not in units[role_unit("agi")]  # no Redis there


def test_every_service_creates_files_with_no_bits_for_others():
    units = render(INSTALL)
    services = [name for name in units if name != TARGET]
    assert all("\nUMask=0027\n" in units[name] for name in services), services


def test_each_unit_reads_only_its_own_secrets_file_after_the_settings():
    units = render(INSTALL)
    for role in ROLES:
        lines = units[role_unit(role)].splitlines()
        files = [x.removeprefix("EnvironmentFile=") for x in lines if x.startswith("Environment")]
        files = [x for x in files if not x.startswith("Environment=")]
        own = [] if role == "agi" else [f"/etc/hotline/secrets/{role}.env"]
        assert files == ["/etc/hotline/ivr.env", *own], role
    assert "\nEnvironmentFile=/etc/hotline/secrets/asterisk.env\n" in units[ASTERISK_UNIT]
    assert "secrets" not in units[MIGRATE_UNIT]


def test_without_a_local_redis_unit_no_role_waits_for_one():
    units = render(replace(INSTALL, redis_unit=None))
    assert not any("redis-server" in text for text in units.values())


def test_asterisk_drops_to_the_named_user_of_its_root():
    text = render(replace(INSTALL, asterisk_user="pbx", asterisk_group="pbx-group"))[ASTERISK_UNIT]
    assert (
        "\nExecStart=/usr/sbin/chroot /var/lib/hotline/sid-root /usr/sbin/asterisk -f -n "
        "-U pbx -G pbx-group -C /srv/hotline-hotline/etc/asterisk.conf\n"
    ) in text
    assert "ivr asterisk prepare --user pbx --group pbx-group --share-group hotline" in text
    assert "\nExecStartPost=/opt/hotline/.venv/bin/ivr asterisk wait --pid ${MAINPID}\n" in text
    assert "\nUser=" not in text


@pytest.mark.parametrize(
    ("field", "value", "said"),
    [
        ("ivr", Path("/opt/my hotline/ivr"), "' '"),
        ("run_dir", Path("/var/lib/50%"), "'%'"),
        ("env_file", Path("ivr.env"), "is not absolute"),
    ],
)
def test_a_path_systemd_would_split_or_expand_is_refused_naming_it(field, value, said):
    with pytest.raises(ValueError, match=field) as err:
        render(replace(INSTALL, **{field: value}))
    assert said in str(err.value)


def test_a_user_name_that_is_no_name_is_refused():
    with pytest.raises(ValueError, match="user"):
        render(replace(INSTALL, user="-hotline"))


def test_given_no_stack_then_status_says_to_run_up(tmp_path):
    from ivr.settings import Settings

    statuses = Stack(Settings(run_dir=tmp_path / "run")).status()
    assert all(not s.ok and s.fix and s.fix.endswith(" up") for s in statuses)
