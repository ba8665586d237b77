"""Cache entries on disk: scratch folders, manifests, and publishing a finished run atomically.

A cache folder holds:

    tmp/<pid>@<host>@<label>-<random>/   a run being computed (or a folder being deleted), named by its owner
    versions/<entry>/<random>/           one finished copy of an entry: its files and its manifest
    versions/<entry>/.lock               locked (flock) by whoever publishes that entry
    runs/<entry> -> ../versions/<entry>/<random>   the published copy: a symbolic link

A run writes its files into a scratch folder in tmp/; when it has finished, a manifest holding the
sha256 of every file and of the manifest's own contents is written. Publishing happens under the
entry's lock: the scratch folder is renamed into versions/, and a new link to it replaces
runs/<entry> with os.replace, which is atomic, so a reader sees the old copy or the new one, never
none. Without FORCE, a writer that finds a valid copy already published discards its own and uses
that one. Still under the lock, every other copy of the entry is moved into tmp/ (as the lock
holder's own folder) and deleted after it: no writer can be between its rename and its switch while
the lock is held, so those copies are unreachable. Readers take no lock; one whose copy was replaced
while it read it reads the entry again. A RunRecord's `dir` is the entry's link, so its files are
those of the copy published now.

An entry whose manifest or files do not check out is treated as absent, said once on stderr, and
rebuilt; so is an entry written before manifests held their own checksum, or before entries were
links (its folder becomes one of its copies). Scratch folders whose owner process has ended (a
SIGKILLed build, say) are deleted by the next `cached_run` on the same host. Folders and files are
created with the process's umask, so a group can share a cache.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import socket
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from diffusion_lab.hashing import file_sha256
from diffusion_lab.runcache.provenance import canonical_json

MANIFEST = "manifest.json"
CHECKSUM = "manifest_sha256"  # the manifest's field holding the sha256 of its other fields
_REQUIRED = ("name", "key", "params", "seed", "files", "compute_s", "device", "versions", "commit", "created")
_LOCK = ".lock"
# A reader retries this often when the copy it reads is replaced under it, then computes instead.
_READ_ATTEMPTS = 20


def entry_dir(cache_dir: Path, name: str, key: str) -> Path:
    return cache_dir / "runs" / f"{name.replace('/', '__')}-{key[:20]}"


def versions_dir(entry: Path) -> Path:
    """Where the copies of an entry live, beside runs/ in the same cache folder."""
    return entry.parent.parent / "versions" / entry.name


class CacheNotWritable(OSError):
    """A run must be stored in a cache that cannot take it (read-only, full): says where and why.
    Its `strerror` is the system's reason and its `filename` the place, as for any OSError."""

    def __init__(self, errno: int | None, reason: str, where: Path, cache_dir: Path, run_name: str):
        super().__init__(errno, reason, str(where))
        self.cache_dir, self.run_name = cache_dir, run_name

    def __str__(self) -> str:
        return (f"the run cache {self.cache_dir} cannot store the run {self.run_name}, which it lacks: "
                f"{self.strerror} at {self.filename}; make the cache writable, or point DIFFUSION_LAB_CACHE "
                "(make CACHE_DIR=..., --cache-dir) at a writable folder")


# --- Scratch folders and their owners -------------------------------------------------------------


def _owner() -> str:
    return f"{os.getpid()}@{socket.gethostname()}"


def new_scratch(cache_dir: Path, label: str, run_name: str) -> Path:
    """A fresh folder in <cache>/tmp named after this process; os.mkdir, unlike tempfile.mkdtemp
    (mode 0700), follows the umask. A cache that cannot take it raises CacheNotWritable."""
    tmp_root = cache_dir / "tmp"
    folder = tmp_root / f"{_owner()}@{label}-{uuid.uuid4().hex[:12]}"
    try:
        tmp_root.mkdir(parents=True, exist_ok=True)
        folder.mkdir()
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise CacheNotWritable(error.errno, reason, error.filename or tmp_root, cache_dir, run_name) from None
    return folder


def _owner_is_gone(folder_name: str) -> bool:
    """Whether the process that named a scratch folder `pid@host@...` has ended. A folder of another
    host, or one not named so, is never judged: its owner cannot be asked."""
    parts = folder_name.split("@", 2)
    if len(parts) != 3 or parts[1] != socket.gethostname() or not parts[0].isdigit() or int(parts[0]) <= 0:
        return False
    try:
        os.kill(int(parts[0]), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError):  # PermissionError: alive, another user's
        return False
    return False


def clean_dead_scratch(cache_dir: Path) -> None:
    """Delete the scratch folders of runs whose process ended without cleaning up (SIGKILL, power)."""
    tmp_root = cache_dir / "tmp"
    try:
        names = os.listdir(tmp_root)
    except FileNotFoundError:
        return
    for name in names:
        if _owner_is_gone(name):
            shutil.rmtree(tmp_root / name, ignore_errors=True)


def _move_to_trash(path: Path, cache_dir: Path) -> Path:
    """Rename a folder into tmp/ as this process's own, so that it is deleted by the next build if
    this process dies before deleting it."""
    trash = cache_dir / "tmp" / f"{_owner()}@trash-{uuid.uuid4().hex[:12]}"
    os.rename(path, trash)
    return trash


# --- Manifests --------------------------------------------------------------------------------------


def _manifest_checksum(manifest: dict) -> str:
    """sha256 of the manifest's fields but its checksum, in canonical JSON."""
    body = {name: value for name, value in manifest.items() if name != CHECKSUM}
    return hashlib.sha256(canonical_json(body).encode()).hexdigest()


def write_manifest(folder: Path, manifest: dict) -> dict:
    """Write the manifest, with its own checksum, into a finished run's folder; returns it as written."""
    manifest = dict(manifest, **{CHECKSUM: _manifest_checksum(manifest)})
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return manifest


def _check_manifest(folder: Path, key: str) -> tuple[dict | None, str | None]:
    """(manifest, None) when `folder` holds a complete, unchanged run of `key`, else (None, why not)."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except FileNotFoundError:
        return None, "it has no manifest"
    except (OSError, ValueError) as error:
        return None, f"its manifest cannot be read ({error})"
    if not isinstance(manifest, dict) or CHECKSUM not in manifest:
        return None, "its manifest has no checksum of its own"
    if manifest[CHECKSUM] != _manifest_checksum(manifest):
        return None, "its manifest was changed after it was written (its checksum does not match)"
    if manifest.get("key") != key or any(name not in manifest for name in _REQUIRED):
        return None, "its manifest is not one of this run"
    return _check_files(folder, manifest)


def _check_files(folder: Path, manifest: dict) -> tuple[dict | None, str | None]:
    """(manifest, None) when every file in the folder matches its checksum in the manifest."""
    for filename, expected in manifest["files"].items():
        try:
            actual = file_sha256(folder / filename)
        except OSError:
            return None, f"its file {filename} is missing"
        if actual != expected:
            return None, f"its file {filename} does not match its checksum"
    return manifest, None


# --- Reading and publishing entries -----------------------------------------------------------------


def _current_copy(entry: Path) -> Path | None:
    """The folder an entry names now: its link's target; the entry itself where it is a folder (as
    caches written before entries were links hold); None where there is no entry."""
    try:
        return entry.parent / os.readlink(entry)
    except OSError:
        return entry if entry.is_dir() else None


def read_entry(entry: Path, key: str) -> tuple[dict | None, str | None]:
    """(manifest, None) for a valid published entry, (None, why) for an invalid one, (None, None)
    where there is none. A copy replaced while it was being read is read again."""
    for _ in range(_READ_ATTEMPTS):
        copy = _current_copy(entry)
        if copy is None:
            return None, None
        manifest, why = _check_manifest(copy, key)
        if manifest is not None or _current_copy(entry) == copy:
            return manifest, why
    return None, None  # replaced faster than it could be read: computing it again is never wrong


@contextmanager
def _entry_lock(versions: Path) -> Iterator[None]:
    """Hold the entry's publishing lock (flock, released when the file closes or the process dies)."""
    versions.mkdir(parents=True, exist_ok=True)
    with open(versions / _LOCK, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _switch_to(scratch_dir: Path, entry: Path, versions: Path) -> Path:
    """Make a finished scratch folder the entry's published copy: one os.replace of the link."""
    copy = versions / uuid.uuid4().hex[:16]
    os.rename(scratch_dir, copy)
    link = versions / f".link-{uuid.uuid4().hex[:12]}"
    os.symlink(os.path.relpath(copy, entry.parent), link)
    if entry.is_dir() and not entry.is_symlink():
        # An entry written before entries were links: a copy like the others from now on (a
        # reader finding no entry for this instant computes it, which is never wrong).
        os.rename(entry, versions / f"folder-{uuid.uuid4().hex[:12]}")
    os.replace(link, entry)
    return copy


def publish(scratch_dir: Path, manifest: dict, entry: Path, force: bool) -> dict:
    """Publish a finished scratch folder as the entry and return the manifest now published: ours,
    or, without force, that of a valid copy another writer published first (ours is discarded)."""
    versions = versions_dir(entry)
    entry.parent.mkdir(parents=True, exist_ok=True)
    with _entry_lock(versions):
        current = _current_copy(entry)
        published = None if force or current is None else _check_manifest(current, manifest["key"])[0]
        if published is None:
            current = _switch_to(scratch_dir, entry, versions)
        trash = _set_aside_unreachable(versions, current)
    for folder in trash + ([scratch_dir] if published is not None else []):
        shutil.rmtree(folder, ignore_errors=True)
    _remove_stale_folders(entry.parent)
    return manifest if published is None else published


def _remove_stale_folders(runs_dir: Path) -> None:
    """Delete the `.<entry>.stale-*` folders that replacing an entry left in runs/ before entries
    were links: nothing refers to them."""
    for name in os.listdir(runs_dir):
        if name.startswith(".") and ".stale-" in name:
            shutil.rmtree(runs_dir / name, ignore_errors=True)


def _set_aside_unreachable(versions: Path, current: Path) -> list[Path]:
    """Under the entry's lock, where no writer is between its rename and its switch: move every copy
    but the current one into tmp/ (returned, to delete once the lock is released) and delete the
    links left by writers killed while publishing."""
    trash = []
    for path in versions.iterdir():
        if path.name in (_LOCK, current.name):
            continue
        if path.is_symlink():
            path.unlink()
        else:
            trash.append(_move_to_trash(path, versions.parent.parent))
    return trash
