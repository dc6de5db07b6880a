"""The dev stack's service user reaching its files (ivr/devstack/access.py), on real
directories with a real unprivileged user (`nobody`), as root: the ACL entries it adds, what
it checks as that user, the run dir it hands over."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from ivr.adapters.service_user import account
from ivr.devstack.access import check_reach, hand_over_run_dir, open_the_way
from ivr.errors import StackError

NOBODY = account("nobody", "nogroup")


def _can(flag: str, path: Path) -> bool:
    done = subprocess.run(["test", flag, str(path)], user=NOBODY.uid, group=NOBODY.gid,
                          extra_groups=[], check=False)  # fmt: skip
    return done.returncode == 0


@pytest.fixture
def closed(tmp_path: Path) -> Path:
    """``a/b/file`` under folders closed to others (0700), the way pytest makes them."""
    inner = tmp_path / "a" / "b"
    inner.mkdir(parents=True)
    for folder in (tmp_path / "a", inner):
        folder.chmod(0o700)
    (inner / "file").write_text("data")
    (inner / "file").chmod(0o644)
    return inner / "file"


def test_only_the_closed_folders_on_the_way_are_opened_and_only_to_search(closed: Path):
    assert not _can("-r", closed)
    opened = open_the_way(NOBODY, [closed])
    assert closed.parent in opened and closed.parent.parent in opened
    assert all(not folder.stat().st_mode & stat.S_IXOTH for folder in opened)  # others: still no
    assert Path("/") not in opened and Path("/tmp") not in opened  # open already
    assert _can("-r", closed)
    assert not _can("-r", closed.parent)  # search only: it cannot list the folder
    assert open_the_way(NOBODY, [closed]) == []  # what it can pass is left alone


def test_what_stays_closed_is_named_by_check_reach(closed: Path):
    open_the_way(NOBODY, [closed])
    secret = closed.with_name("secret")
    secret.write_text("x")
    secret.chmod(0o600)
    check_reach(NOBODY, [("-r", closed, "the data")])
    with pytest.raises(StackError, match=f"{secret} \\(the secret, test -r\\)"):
        check_reach(NOBODY, [("-r", closed, "the data"), ("-r", secret, "the secret")])


def test_the_run_dir_becomes_the_users_without_bits_for_others_but_secrets_stay_roots(
    tmp_path: Path,
):
    run = tmp_path / "run"
    (run / "recordings").mkdir(parents=True)
    (run / "recordings" / "call.wav").write_bytes(b"RIFF")
    (run / "recordings" / "call.wav").chmod(0o644)
    (run / "hotline.db").write_bytes(b"")
    (run / "ami.secret").write_text("s")
    hand_over_run_dir(run, NOBODY, [run / "ami.secret"])
    assert stat.S_IMODE(run.stat().st_mode) == 0o750
    for path in (run, run / "recordings", run / "recordings" / "call.wav", run / "hotline.db"):
        st = path.stat()
        assert (st.st_uid, st.st_gid) == (NOBODY.uid, NOBODY.gid), path
        assert st.st_mode & 0o007 == 0, path
    assert stat.S_IMODE((run / "recordings" / "call.wav").stat().st_mode) == 0o640
    secret = (run / "ami.secret").stat()
    assert (secret.st_uid, stat.S_IMODE(secret.st_mode)) == (0, 0o600)
    assert os.access(run / "ami.secret", os.R_OK)  # root still reads it
