"""Cache entries on disk: scratch folders, manifests, and publishing a finished run atomically.

A cache folder holds:

    tmp/<owner>@<label>-<random>/   a run being computed (or a folder being deleted), named by its owner
    owners/<owner>.lock             locked by its process while it has folders in tmp/, then deleted
    versions/<entry>/<random>/      one finished copy of an entry: its files and its manifest
    versions/<entry>/.lock          locked by whoever publishes that entry
    runs/<entry>                    the published copy: a pointer, a one-line file naming <random>

An owner is one process, `<pid>@<host>@<random>`. The locks are `filelock`'s (flock on POSIX,
LockFileEx on Windows), which the system releases when their process ends; nothing here needs
symbolic links, signals or any other POSIX-only call, so a cache works on Linux, macOS and Windows.

A run writes its files into a scratch folder in tmp/; when it has finished, a manifest holding the
sha256 of every file and of the manifest's own contents is written. Publishing happens under the
entry's lock: the scratch folder is renamed into versions/, and a new pointer naming it, written
beside it, replaces runs/<entry> with os.replace, which is atomic (on Windows too), so a reader sees
the old copy or the new one, never none. Without FORCE, a writer that finds a valid copy already
published discards its own and uses that one. Still under the lock, every other copy of the entry
is moved into tmp/ (as the lock holder's own folder) and deleted after it: no writer can be between
its rename and its switch while the lock is held, so those copies are unreachable. Readers take no
lock: a reader resolves the pointer and checks the copy it names; one whose copy was replaced while
it read it reads the entry again. A RunRecord's `dir` is the copy it read (`RunRecord.path` follows
the entry to its new copy where a concurrent FORCE deleted that one).

An entry whose manifest or files do not check out is treated as absent, said once on stderr, and
rebuilt; so is an entry written before manifests held their own checksum, or before entries were
links (its folder becomes one of its copies). An entry that is a symbolic link (written before
pointers) is read through its link, and becomes a pointer when it is next published. The scratch
folders of an owner whose lock can be taken (its process has ended: a killed build) are deleted by
the next `cached_run` on the same host; folders named `<pid>@<host>@...` by earlier versions, which
took no lock, are judged by their pid (POSIX only: those versions never ran on Windows). Folders
and files are created with the process's umask, so a group can share a cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import threading
import time
import uuid
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from filelock import FileLock, Timeout

from diffusion_lab.hashing import file_sha256
from diffusion_lab.runcache.provenance import canonical_json

MANIFEST = "manifest.json"
CHECKSUM = "manifest_sha256"  # the manifest's field holding the sha256 of its other fields
REQUIRED_FIELDS = ("name", "key", "params", "seed", "files", "compute_s", "device", "versions", "commit", "created")
_LOCK = ".lock"
_OWNERS = "owners"
_POINTER = ".pointer-"  # a pointer being written, beside the copies; renamed onto runs/<entry>
_NO_COPY = ".no-such-copy"  # what a pointer that names no copy resolves to: a copy that is missing
# A reader retries this often when the copy it reads is replaced under it, then computes instead.
_READ_ATTEMPTS = 20
# On Windows, replacing a pointer fails while a reader has it open (for the instant of one read).
_REPLACE_ATTEMPTS = 50


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


# --- Owners: a process holds its owner lock while it has scratch folders ----------------------------


@dataclass
class _Hold:
    owner: str
    lock: FileLock
    count: int = 0


_TOKEN: tuple[int, str] | None = None  # (pid, random part of this process's owner name)
_TOKEN_GUARD = threading.Lock()
_HOLDS: dict[tuple[int, Path], _Hold] = {}  # (pid, cache folder) -> the owner lock held there
_HOLDS_GUARD = threading.Lock()


def _owner() -> str:
    """This process's owner name, `<pid>@<host>@<random>`: one for all its threads (a forked child
    gets its own)."""
    global _TOKEN
    with _TOKEN_GUARD:
        if _TOKEN is None or _TOKEN[0] != os.getpid():
            _TOKEN = (os.getpid(), uuid.uuid4().hex[:8])
        pid, token = _TOKEN
    return f"{pid}@{socket.gethostname()}@{token}"


def _owner_lock(cache_dir: Path, owner: str) -> FileLock:
    return FileLock(cache_dir / _OWNERS / f"{owner}.lock", thread_local=False)


def _hold(cache_dir: Path) -> str:
    """Take this process's owner lock in `cache_dir` (or count one more use of it) and return the
    owner name to give folders in tmp/. Threads and nested uses share one lock."""
    key = (os.getpid(), cache_dir)
    with _HOLDS_GUARD:
        hold = _HOLDS.get(key)
        if hold is None:
            (cache_dir / _OWNERS).mkdir(parents=True, exist_ok=True)
            owner = _owner()
            lock = _owner_lock(cache_dir, owner)
            lock.acquire()  # waits only while a cleaner probes it
            hold = _HOLDS[key] = _Hold(owner, lock)
        hold.count += 1
        return hold.owner


def _drop(cache_dir: Path) -> None:
    """One use of the owner lock fewer; the last releases it and deletes its file, so a process
    that computes nothing leaves nothing in owners/."""
    key = (os.getpid(), cache_dir)
    with _HOLDS_GUARD:
        hold = _HOLDS[key]
        hold.count -= 1
        if hold.count == 0:
            del _HOLDS[key]
            _release_deleting(hold.lock)


@contextmanager
def _owning(cache_dir: Path) -> Iterator[str]:
    """Hold this process's owner lock in `cache_dir` for the block (see `_hold`)."""
    owner = _hold(cache_dir)
    try:
        yield owner
    finally:
        _drop(cache_dir)


def _release_deleting(lock: FileLock) -> None:
    """Delete a held lock's file, then release it. A prober that opened the file before it went
    locks a deleted file, which filelock notices and replaces; on Windows, where an open file cannot
    be deleted, filelock deletes it on release."""
    with suppress(OSError):
        os.unlink(lock.lock_file)
    lock.release()


# --- Scratch folders ---------------------------------------------------------------------------------


def new_scratch(cache_dir: Path, label: str, run_name: str) -> Path:
    """A fresh folder in <cache>/tmp, this process's until `end_scratch` (its owner lock is held
    till then). os.mkdir, unlike tempfile.mkdtemp (mode 0700), follows the umask. A cache that
    cannot take it raises CacheNotWritable."""
    try:
        owner = _hold(cache_dir)
    except OSError as error:
        raise _not_writable(error, cache_dir, run_name, cache_dir / _OWNERS) from None
    folder = cache_dir / "tmp" / f"{owner}@{label}-{uuid.uuid4().hex[:12]}"
    try:
        _make_folder(folder, cache_dir, run_name)
    except BaseException:
        _drop(cache_dir)
        raise
    return folder


def end_scratch(folder: Path) -> None:
    """Delete a scratch folder unless it was published (renamed away), and let go of it."""
    shutil.rmtree(folder, ignore_errors=True)
    _drop(folder.parent.parent)


def _make_folder(folder: Path, cache_dir: Path, run_name: str) -> None:
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        folder.mkdir()
    except OSError as error:
        raise _not_writable(error, cache_dir, run_name, folder.parent) from None


def _not_writable(error: OSError, cache_dir: Path, run_name: str, where: Path | None = None) -> CacheNotWritable:
    reason = error.strerror or type(error).__name__
    return CacheNotWritable(error.errno, reason, error.filename or where or cache_dir, cache_dir, run_name)


def clean_dead_scratch(cache_dir: Path) -> None:
    """Delete the scratch folders of this host's processes that ended without cleaning up (killed,
    power loss). Each owner is asked through its lock, never judged from a listing alone: an owner
    that is starting takes its lock before it makes a folder."""
    for owner in sorted(_owners_of(cache_dir)):
        parts = owner.split("@")
        if parts[1] != socket.gethostname() or owner == _owner():
            continue  # another host's processes cannot be asked; this process is alive
        if len(parts) == 2:
            if _pid_has_ended(parts[0]):
                _delete_folders_of(cache_dir / "tmp", owner)
        else:
            _clean_if_ended(cache_dir, owner)


def _owners_of(cache_dir: Path) -> set[str]:
    """The owners named by folders in tmp/ and by lock files in owners/: `pid@host@random`, or
    `pid@host` for folders written by earlier versions."""
    owners = set()
    for name in _listdir(cache_dir / "tmp"):
        parts = name.split("@")
        if len(parts) in (3, 4):
            owners.add("@".join(parts[:-1]))
    for name in _listdir(cache_dir / _OWNERS):
        if name.endswith(".lock") and name.count("@") == 2:
            owners.add(name[: -len(".lock")])
    return owners


def _listdir(folder: Path) -> list[str]:
    try:
        return os.listdir(folder)
    except FileNotFoundError:
        return []


def _clean_if_ended(cache_dir: Path, owner: str) -> None:
    """Where `owner`'s lock can be taken, its process has ended (or holds no folder now): delete its
    folders, then its lock file (kept if a folder could not be deleted, for the next cleaner)."""
    lock = _owner_lock(cache_dir, owner)
    try:
        lock.acquire(timeout=0)
    except (Timeout, OSError):  # held: alive; OSError: cannot tell (a read-only cache), so keep
        return
    try:
        left = _delete_folders_of(cache_dir / "tmp", owner)
    except BaseException:
        lock.release()
        raise
    if left:
        lock.release()
    else:
        _release_deleting(lock)


def _delete_folders_of(tmp_root: Path, owner: str) -> list[str]:
    """Delete the owner's folders in tmp/; returns those still there (a file held open on Windows)."""
    depth = owner.count("@") + 1  # `pid@host@...` of earlier versions is not `pid@host@random@...`
    mine = [name for name in _listdir(tmp_root) if name.startswith(f"{owner}@") and name.count("@") == depth]
    for name in mine:
        shutil.rmtree(tmp_root / name, ignore_errors=True)
    return [name for name in mine if os.path.lexists(tmp_root / name)]


def _pid_has_ended(pid: str) -> bool:
    """Whether the process of a folder named `pid@host@...` by an earlier version has ended. Asked
    with os.kill(pid, 0) on POSIX only (it sends nothing there); on Windows signal 0 is CTRL_C_EVENT,
    and no such folder is ever there (those versions never ran on Windows): kept."""
    if os.name != "posix" or not pid.isdigit() or int(pid) <= 0:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (OSError, OverflowError):  # PermissionError: alive, another user's
        return False
    return False


def _move_to_trash(path: Path, cache_dir: Path) -> Path | None:
    """Rename a folder into tmp/ as this process's own (its owner lock is held), so that it is
    deleted by the next build if this process dies before deleting it; returns where it went. On
    Windows a folder whose file a reader holds open cannot be renamed: it stays (None), for the
    entry's next publisher."""
    trash = cache_dir / "tmp" / f"{_owner()}@trash-{uuid.uuid4().hex[:12]}"
    try:
        os.rename(path, trash)
    except OSError:
        return None
    return trash


# --- Manifests --------------------------------------------------------------------------------------


def manifest_checksum(manifest: dict) -> str:
    """sha256 of the manifest's fields but its checksum, in canonical JSON."""
    body = {name: value for name, value in manifest.items() if name != CHECKSUM}
    return hashlib.sha256(canonical_json(body).encode()).hexdigest()


def write_manifest(folder: Path, manifest: dict) -> dict:
    """Write the manifest, with its own checksum, into a finished run's folder; returns it as written."""
    manifest = dict(manifest, **{CHECKSUM: manifest_checksum(manifest)})
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return manifest


def check_copy(folder: Path, key: str) -> tuple[dict | None, str | None]:
    """(manifest, None) when `folder` holds a complete, unchanged run of `key`, else (None, why not)."""
    if not folder.is_dir():
        return None, "the copy it names is missing"
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except FileNotFoundError:
        return None, "it has no manifest"
    except (OSError, ValueError) as error:
        return None, f"its manifest cannot be read ({error})"
    if not isinstance(manifest, dict) or CHECKSUM not in manifest:
        return None, "its manifest has no checksum of its own"
    if manifest[CHECKSUM] != manifest_checksum(manifest):
        return None, "its manifest was changed after it was written (its checksum does not match)"
    if manifest.get("key") != key or any(name not in manifest for name in REQUIRED_FIELDS):
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


# --- Reading entries ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Published:
    """A valid copy of an entry: its manifest, and the folder that holds its files."""

    manifest: dict
    folder: Path


def current_copy(entry: Path) -> Path | None:
    """The folder an entry names now (see `_resolve`); None where there is no entry. An entry that
    changes kind while it is read (a link replaced by a pointer), or, on Windows, a pointer being
    replaced, is read again."""
    for _ in range(_READ_ATTEMPTS):
        try:
            return _resolve(entry)
        except FileNotFoundError:
            return None
        except OSError:
            continue
    return None


def _resolve(entry: Path) -> Path:
    """The copy a pointer names; a link's target (caches written before pointers); the entry itself
    where it is a folder (caches written before links)."""
    if os.path.islink(entry):
        return Path(os.path.normpath(entry.parent / os.readlink(entry)))
    if entry.is_dir():
        return entry
    return versions_dir(entry) / _copy_name(entry.read_text(encoding="utf-8"))


def _copy_name(pointer_text: str) -> str:
    """The copy a pointer's text names: one plain folder name, else a copy that does not exist."""
    name = pointer_text.strip()
    plain = name and "/" not in name and "\\" not in name and not name.startswith(".")
    return name if plain else _NO_COPY


def read_entry(entry: Path, key: str) -> tuple[Published | None, str | None]:
    """(the copy, None) for a valid published entry, (None, why) for an invalid one, (None, None)
    where there is none. A copy replaced while it was being read is read again."""
    for _ in range(_READ_ATTEMPTS):
        copy = current_copy(entry)
        if copy is None:
            return None, None
        manifest, why = check_copy(copy, key)
        if manifest is not None:
            return Published(manifest, copy), None
        if current_copy(entry) == copy:
            return None, why
    return None, None  # replaced faster than it could be read: computing it again is never wrong


def published_copies(cache_dir: Path) -> list[Path]:
    """The folder of every entry published in the cache (whatever its layout), by entry name: for
    tools that list a cache's runs (their manifests are `<folder>/manifest.json`)."""
    copies = (current_copy(cache_dir / "runs" / name) for name in sorted(_listdir(cache_dir / "runs")))
    return [copy for copy in copies if copy is not None and copy.is_dir()]


# --- Publishing ---------------------------------------------------------------------------------------


@contextmanager
def _entry_lock(versions: Path) -> Iterator[None]:
    """Hold the entry's publishing lock (released when the block ends or the process dies)."""
    versions.mkdir(parents=True, exist_ok=True)
    with FileLock(versions / _LOCK, poll_interval=0.005):
        yield


def _point(entry: Path, versions: Path, copy_name: str) -> None:
    """Make runs/<entry> a pointer to versions/<entry>/<copy_name>: written whole beside the copies,
    then renamed onto the entry in one os.replace."""
    pointer = versions / f"{_POINTER}{uuid.uuid4().hex[:12]}"
    pointer.write_text(copy_name + "\n", encoding="utf-8")
    _replace(pointer, entry)


def _replace(source: Path, target: Path) -> None:
    """os.replace, tried again while Windows refuses it (a reader has the pointer open); a link left
    by an older version that cannot be replaced by a file there is deleted first."""
    for attempt in range(_REPLACE_ATTEMPTS):
        try:
            os.replace(source, target)
            return
        except OSError as error:
            if os.path.islink(target) and not isinstance(error, FileNotFoundError):
                os.unlink(target)  # a reader finding none for this instant computes it: never wrong
            elif not isinstance(error, PermissionError) or attempt == _REPLACE_ATTEMPTS - 1:
                raise
            else:
                time.sleep(0.001 * (attempt + 1))


def _switch_to(scratch_dir: Path, entry: Path, versions: Path) -> Path:
    """Make a finished scratch folder the entry's published copy: one os.replace of the pointer."""
    copy = versions / uuid.uuid4().hex[:16]
    os.rename(scratch_dir, copy)
    if entry.is_dir() and not entry.is_symlink():
        # An entry written before entries were links: a copy like the others from now on (a
        # reader finding no entry for this instant computes it, which is never wrong).
        os.rename(entry, versions / f"folder-{uuid.uuid4().hex[:12]}")
    _point(entry, versions, copy.name)
    return copy


def publish(scratch_dir: Path, manifest: dict, entry: Path, force: bool) -> Published:
    """Publish a finished scratch folder as the entry and return the copy now published: ours, or,
    without force, a valid copy another writer published first (ours is then discarded)."""
    versions = versions_dir(entry)
    cache_dir = entry.parent.parent
    entry.parent.mkdir(parents=True, exist_ok=True)
    with _owning(cache_dir):  # the copies set aside become this process's folders in tmp/
        with _entry_lock(versions):
            current = current_copy(entry)
            kept = None if force or current is None else check_copy(current, manifest["key"])[0]
            if kept is None:
                current = _switch_to(scratch_dir, entry, versions)
            elif os.path.islink(entry) and current.parent == versions:
                _point(entry, versions, current.name)  # an older version's link becomes a pointer
            trash = _set_aside_unreachable(versions, current)
        for folder in trash + ([scratch_dir] if kept is not None else []):
            shutil.rmtree(folder, ignore_errors=True)
    _remove_stale_folders(entry.parent)
    return Published(manifest if kept is None else kept, current)


def _remove_stale_folders(runs_dir: Path) -> None:
    """Delete the `.<entry>.stale-*` folders that replacing an entry left in runs/ before entries
    were links: nothing refers to them."""
    for name in os.listdir(runs_dir):
        if name.startswith(".") and ".stale-" in name:
            shutil.rmtree(runs_dir / name, ignore_errors=True)


def _set_aside_unreachable(versions: Path, current: Path) -> list[Path]:
    """Under the entry's lock, where no writer is between its rename and its switch: move every copy
    but the current one into tmp/ (returned, to delete once the lock is released) and delete the
    pointers and links left by writers killed while publishing. Other files are the lock's own."""
    trash = []
    for path in versions.iterdir():
        if path.name == current.name and current.parent == versions:
            continue
        if path.is_symlink() or path.name.startswith(_POINTER):
            with suppress(OSError):
                path.unlink()
        elif path.is_dir() and (moved := _move_to_trash(path, versions.parent.parent)) is not None:
            trash.append(moved)
    return trash
