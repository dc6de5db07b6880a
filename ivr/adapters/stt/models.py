"""Installing vosk models: unpack an official zip safely and check it against known checksums.

The checksums live in ``models/checksums/`` (where each comes from: models/SOURCES.md):

- ``zips.sha256``: ``sha256  size  NAME.zip`` of each official zip;
- ``NAME.expected.sha256``: ``sha256  size  path`` of every file in the model (sha256);
- ``NAME.expected.gitblob``: ``blob-id  size|?  path`` (git blob ids, as ``git hash-object``).

:func:`install_model` does, in order, and leaves nothing half-installed:

1. names the model (the zip's single top folder, else the zip's file name) and refuses an
   unknown name unless ``unverified=True``, and an installed one unless ``force=True``;
2. hashes the zip: the official zip's sha256 is reported as matching or not (a re-packed
   zip can differ and still hold the very same files, so step 4 decides);
3. unpacks into a staging folder inside ``models_dir``, refusing the whole zip when a member
   would land outside it (``../``, absolute paths, symlinks) or it unpacks to too much;
4. checks every file against the per-file manifest: each listed file present with its size
   and hash, no file that the manifest does not list; any difference is a
   :class:`ChecksumMismatch` listing every file that differs, is missing or is extra;
5. checks that the folder has what vosk needs, then renames it into place (atomic on one
   file system); a model it replaces (``force``) is removed only after that.

Steps 3-5 run under a lock on ``models_dir`` (one install at a time), which first cleans up
after an install that was killed (:func:`recover_interrupted`): staging folders are removed
and a model set aside for a replacement that never arrived gets its name back.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Literal

from ivr.adapters.stt.engine import model_problems
from ivr.errors import HotlineError
from ivr.settings import REPO_DIR

CHECKSUMS_DIR = REPO_DIR / "models" / "checksums"
ZIPS_FILE = "zips.sha256"
MAX_UNPACKED_BYTES = 8 * 1024**3  # the large Mandarin model is about 2 GB unpacked
STAGING_PREFIX = ".install-"
# _move_into_place's name for a model being replaced: .install-old-NAME-.install-NAME-xxxx
_SET_ASIDE = re.compile(
    rf"^{re.escape(STAGING_PREFIX)}old-(?P<name>.+?)-{re.escape(STAGING_PREFIX)}"
)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,119}$")
_HASH_CHUNK = 1024 * 1024
# vosk model names carry the language: vosk-model-small-cn-0.22, vosk-model-en-us-0.22, ...
_LANGUAGE_TOKENS = {"cn": "zh", "zh": "zh", "en": "en", "ko": "ko", "ru": "ru", "de": "de",
                    "fr": "fr", "es": "es", "ja": "ja", "vn": "vi"}  # fmt: skip


# --- errors ------------------------------------------------------------------------------
class ModelInstallError(HotlineError):
    """A model zip could not be installed (``ivr stt install-model``); nothing was installed."""

    slug = "stt-model-install-failed"
    status = 400


class UnknownModel(ModelInstallError):
    """The zip holds a model that has no checksums here (install it with ``--unverified``)."""

    slug = "stt-model-unknown"


class AlreadyInstalled(ModelInstallError):
    """A model of that name is installed already (replace it with ``--force``)."""

    slug = "stt-model-installed"


class UnsafeZip(ModelInstallError):
    """The zip is unsafe to unpack: a member outside the folder, a member twice, or too big."""

    slug = "stt-model-zip-unsafe"


class ChecksumMismatch(ModelInstallError):
    """Files of the zip differ from the model's checksums; ``problems`` lists every one."""

    slug = "stt-model-checksum-mismatch"

    def __init__(self, message: str, problems: list[str]) -> None:
        super().__init__(message, problems=problems)
        self.problems = problems


# --- the catalog of known models ----------------------------------------------------------
HashKind = Literal["sha256", "gitblob"]


@dataclass(frozen=True, slots=True)
class ExpectedFile:
    path: str  # relative, with /
    digest: str  # hex
    size: int | None  # None: not known


@dataclass(frozen=True, slots=True)
class KnownModel:
    name: str
    kind: HashKind
    manifest: Path
    files: tuple[ExpectedFile, ...]
    zip_sha256: str | None = None
    zip_size: int | None = None


def load_catalog(checksums_dir: Path = CHECKSUMS_DIR) -> dict[str, KnownModel]:
    """Every model with a per-file manifest in ``checksums_dir``, with its zip checksum."""
    zips: dict[str, tuple[str, int | None]] = {}
    zips_file = checksums_dir / ZIPS_FILE
    if zips_file.is_file():
        for digest, size, name in _manifest_rows(zips_file):
            zips[name.removesuffix(".zip")] = (digest, size)
    catalog: dict[str, KnownModel] = {}
    for manifest in sorted(checksums_dir.glob("*.expected.*")):
        name, _, kind = manifest.name.rpartition(".expected.")
        if kind not in ("sha256", "gitblob"):
            continue
        files = tuple(ExpectedFile(path, digest, size)
                      for digest, size, path in _manifest_rows(manifest))  # fmt: skip
        zip_sha, zip_size = zips.get(name, (None, None))
        catalog[name] = KnownModel(
            name=name, kind="sha256" if kind == "sha256" else "gitblob", manifest=manifest,
            files=files, zip_sha256=zip_sha, zip_size=zip_size,
        )  # fmt: skip
    return catalog


def _manifest_rows(path: Path) -> Iterator[tuple[str, int | None, str]]:
    """``digest size path`` lines; ``#`` starts a comment, ``?`` is an unknown size."""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split(None, 2)
        if len(parts) != 3 or not re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", parts[0]):
            raise ModelInstallError(f"{path.name} line {number} is not 'digest size path'")
        digest, size, name = parts
        yield digest, None if size == "?" else int(size), name


# --- hashing -----------------------------------------------------------------------------
def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def git_blob_id(path: Path) -> str:
    """What ``git hash-object FILE`` prints: sha1 of ``blob <size>\\0`` and the content."""
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode(), usedforsecurity=False)
    with path.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify_folder(folder: Path, known: KnownModel) -> list[str]:
    """Every difference between ``folder`` and the manifest (empty: it matches)."""
    hasher = sha256_file if known.kind == "sha256" else git_blob_id
    problems: list[str] = []
    listed = {expected.path for expected in known.files}
    for expected in known.files:
        path = folder / expected.path
        if not path.is_file():
            problems.append(f"{expected.path}: missing")
            continue
        size = path.stat().st_size
        if expected.size is not None and size != expected.size:
            problems.append(f"{expected.path}: {size} bytes, expected {expected.size}")
            continue
        actual = hasher(path)
        if actual != expected.digest:
            problems.append(
                f"{expected.path}: {known.kind} {actual[:16]}…, expected {expected.digest[:16]}…"
            )
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        if path.is_file() and relative not in listed:
            problems.append(f"{relative}: not in the manifest")
    return problems


# --- unpacking ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Member:
    info: zipfile.ZipInfo
    target: PurePosixPath  # relative to the model folder


def _plan(archive: zipfile.ZipFile, zip_path: Path) -> tuple[str, list[_Member]]:
    """The model's name and where each member goes; UnsafeZip for any dangerous member."""
    unsafe: list[str] = []
    entries: list[tuple[zipfile.ZipInfo, PurePosixPath]] = []
    for info in archive.infolist():
        raw = info.filename
        path = PurePosixPath(raw)
        mode = info.external_attr >> 16
        if (raw.startswith("/") or "\\" in raw or ".." in path.parts
                or re.match(r"^[A-Za-z]:", raw) or "\0" in raw):  # fmt: skip
            unsafe.append(f"{raw!r}: outside the model folder")
        elif stat.S_ISLNK(mode):
            unsafe.append(f"{raw!r}: a symbolic link")
        elif not info.is_dir():
            entries.append((info, path))
    if unsafe:
        raise UnsafeZip(f"{zip_path.name} is not safe to unpack: " + "; ".join(unsafe))
    if not entries:
        raise ModelInstallError(f"{zip_path.name} holds no files")
    tops = {path.parts[0] for _, path in entries}
    nested = len(tops) == 1 and all(len(path.parts) > 1 for _, path in entries)
    name = next(iter(tops)) if nested else zip_path.stem
    members = [_Member(info, PurePosixPath(*path.parts[1:]) if nested else path)
               for info, path in entries]  # fmt: skip
    seen: set[PurePosixPath] = set()
    for member in members:
        if member.target in seen:
            raise UnsafeZip(f"{zip_path.name} holds {member.target} twice")
        seen.add(member.target)
    total = sum(member.info.file_size for member in members)
    if total > MAX_UNPACKED_BYTES:
        raise UnsafeZip(f"{zip_path.name} would unpack to {total} bytes, more than allowed")
    return name, members


def _unpack(archive: zipfile.ZipFile, members: list[_Member], folder: Path) -> None:
    """Stream each member out, counting bytes: a header that lies about sizes is caught."""
    written = 0
    root = folder.resolve()
    for member in members:
        target = (root / member.target).resolve()
        if not target.is_relative_to(root):  # _plan already refused it; belt and braces
            raise UnsafeZip(f"{member.info.filename!r}: outside the model folder")
        target.parent.mkdir(parents=True, exist_ok=True)
        with archive.open(member.info) as source, target.open("wb") as sink:
            while chunk := source.read(_HASH_CHUNK):
                written += len(chunk)
                if written > MAX_UNPACKED_BYTES:
                    raise UnsafeZip("the zip unpacks to more than allowed")
                sink.write(chunk)


# --- install -----------------------------------------------------------------------------
@dataclass(slots=True)
class InstallReport:
    name: str
    path: Path
    verified: bool  # every file checked against a manifest
    files: int  # files installed
    official_zip: bool | None  # the zip's sha256 is the official one; None: not known
    language: str | None  # the IVR_STT__LANGUAGE this model wants, when its name says
    notes: list[str] = field(default_factory=list)


def model_language(name: str) -> str | None:
    for token in re.split(r"[-_./]", name.lower()):
        if token in _LANGUAGE_TOKENS:
            return _LANGUAGE_TOKENS[token]
    return None


def install_model(
    zip_path: Path,
    models_dir: Path,
    *,
    catalog: dict[str, KnownModel] | None = None,
    force: bool = False,
    unverified: bool = False,
) -> InstallReport:
    """Unpack ``zip_path`` into ``models_dir/NAME`` after checking it (see the module doc)."""
    if catalog is None:
        catalog = load_catalog()
    if not zip_path.is_file():
        raise ModelInstallError(f"no such file: {zip_path}")
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ModelInstallError(f"{zip_path.name} is not a zip file: {exc}") from exc
    with archive:
        name, members = _plan(archive, zip_path)
        if not _NAME.match(name):
            raise ModelInstallError(f"{name!r} is not a usable model folder name")
        known = catalog.get(name)
        if known is None and not unverified:
            raise UnknownModel(
                f"no checksums for {name!r} in {CHECKSUMS_DIR} (known: "
                f"{', '.join(sorted(catalog)) or 'none'}); install it unchecked with "
                "--unverified"
            )
        final = models_dir / name
        if final.exists() and not force:
            raise AlreadyInstalled(f"{final} exists already; replace it with --force")
        notes: list[str] = []
        official: bool | None = None
        if known is not None and known.zip_sha256 is not None:
            official = sha256_file(zip_path) == known.zip_sha256
            if not official:
                notes.append(
                    f"{zip_path.name} is not the official zip byte for byte (sha256 "
                    f"{known.zip_sha256[:16]}…); every file is checked instead"
                )
        if known is None:
            notes.append(f"{name} is not a known model: its files were NOT verified")
        models_dir.mkdir(parents=True, exist_ok=True)
        with _install_lock(models_dir):
            notes += recover_interrupted(models_dir)
            _install(archive, members, final, known, zip_path)
    return InstallReport(
        name=name, path=final, verified=known is not None, files=len(members),
        official_zip=official, language=model_language(name), notes=notes,
    )  # fmt: skip


@contextmanager
def _install_lock(models_dir: Path) -> Iterator[None]:
    """One install at a time per models folder (a second one waits for the first): a lock
    on the folder itself, so nothing is left in it."""
    folder = os.open(models_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)
        yield
    finally:
        os.close(folder)  # releases the lock


def recover_interrupted(models_dir: Path) -> list[str]:
    """Clean up after an install that was killed; call with the install lock held.

    A model set aside for its replacement (``.install-old-NAME-*``) goes back to its name
    if the replacement never arrived, and is removed otherwise; unpacked staging folders
    are removed. Returns what was done, one line each.
    """
    done: list[str] = []
    for path in sorted(models_dir.glob(f"{STAGING_PREFIX}*")):
        if not path.is_dir() or path.is_symlink():
            continue
        old = _SET_ASIDE.match(path.name)
        if old is not None and not (models_dir / old["name"]).exists():
            path.rename(models_dir / old["name"])
            done.append(f"{old['name']}: restored after an interrupted replacement")
            continue
        shutil.rmtree(path)
        done.append(f"{path.name}: left by an interrupted install, removed")
    return done


def _install(
    archive: zipfile.ZipFile,
    members: list[_Member],
    final: Path,
    known: KnownModel | None,
    zip_path: Path,
) -> None:
    """Steps 3-5 of the module doc into ``final`` (``models_dir/NAME``), lock held."""
    staging = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{final.name}-", dir=final.parent))
    try:
        _unpack(archive, members, staging)
        if known is not None:
            problems = verify_folder(staging, known)
            if problems:
                raise ChecksumMismatch(
                    f"{zip_path.name} does not match {known.manifest.name}: "
                    f"{len(problems)} file(s) differ, are missing or extra",
                    problems,
                )
        missing = model_problems(staging)
        if missing:
            raise ModelInstallError(f"{zip_path.name} is not a vosk model: {'; '.join(missing)}")
        _move_into_place(staging, final)
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def _move_into_place(staging: Path, final: Path) -> None:
    """Rename the checked folder to its name; an old one is set aside first, then removed."""
    old: Path | None = None
    if final.exists():
        old = final.with_name(f"{STAGING_PREFIX}old-{final.name}-{staging.name}")
        final.rename(old)
    try:
        staging.rename(final)
    except OSError:
        if old is not None:
            old.rename(final)
        raise
    if old is not None:
        shutil.rmtree(old)


def installed_models(models_dir: Path) -> list[Path]:
    """Folders in ``models_dir`` that look like models (checksums and staging left out)."""
    if not models_dir.is_dir():
        return []
    return sorted(
        path for path in models_dir.iterdir()
        if path.is_dir() and not path.name.startswith(".") and path.name != "checksums"
    )  # fmt: skip
