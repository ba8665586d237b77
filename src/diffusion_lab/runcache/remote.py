"""A shared run cache: runs read from, and pushed to, a store that many builds share.

A store is any fsspec filesystem under a URL: `s3://bucket/prefix` (s3fs: AWS or any S3-compatible
server), `gs://bucket/prefix` (gcsfs), `file:///path`, or `https://host/path` (read-only: any static
web server). Credentials come from each library's standard places (AWS_* variables and
~/.aws/ for S3, including AWS_ENDPOINT_URL for a non-AWS server; Google's application default
credentials for gs://), never from this repository. Under its URL a store holds:

    runs/<entry>.json                 an entry's manifest, exactly as the local cache wrote it
    objects/<sha256[:2]>/<sha256>     a file of some entry, named by its checksum
    store.json                        the keys it holds per profile and precision (a hint for readers)

An entry is uploaded files first, manifest last, each in one PUT, so a reader sees a whole entry or
none; two builds pushing the same key at once both upload complete sets of files before their
manifests, so whichever manifest lands last names files that are all there: one valid entry.

What a store serves is untrusted input. Before a run from it is used, its manifest must be small,
well-formed, carry its own checksum, name this run's key and experiment, and list only plain
relative file names (no `..`, no absolute path, no backslash); every file must be no larger than
`MAX_FILE_BYTES` (all of them together no larger than `MAX_ENTRY_BYTES`) and match its checksum.
The files are written into a scratch folder of the local cache and published there as any computed
run is (`entries.publish`), then read as local files (tensors with `weights_only=True`). A store that refuses an entry costs one line naming it, and the
run is computed here; a store that is down or slow (a connection error, or no answer within the
timeouts) is said once and not asked again by this process.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable

from diffusion_lab.runcache.entries import (
    CHECKSUM,
    MANIFEST,
    REQUIRED_FIELDS,
    Published,
    end_scratch,
    manifest_checksum,
    new_scratch,
    publish,
    check_copy,
    published_copies,
)

SCHEMES = ("s3", "gs", "gcs", "file", "http", "https")
READ_ONLY_SCHEMES = ("http", "https")
MAX_MANIFEST_BYTES = 1 << 20
MAX_FILE_BYTES = 1 << 30
MAX_ENTRY_BYTES = 8 << 30
MAX_FILES = 10_000
# Seconds to connect, and to wait for the next bytes of an answer: a store slower than that is down.
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 30.0
STORE_INDEX = "store.json"
_SHA256 = re.compile(r"[0-9a-f]{64}")


class RefusedEntry(ValueError):
    """A store's entry that must not be used: its message says why, in a few words."""


class StoreDown(OSError):
    """The store did not answer, or failed while answering."""


def check_url(url: str) -> str | None:
    """Why `url` cannot be a store (one phrase), or None when it can."""
    scheme, sep, rest = url.partition("://")
    if not sep or not rest.strip("/"):
        return "a store is a URL such as s3://bucket/prefix, gs://bucket/prefix, file:///path or https://host/path"
    if scheme not in SCHEMES:
        return f"a store's URL starts with {', '.join(s + '://' for s in SCHEMES)}; not {scheme}://"
    return None


def entry_name(name: str, key: str) -> str:
    """The entry's file name in a store's runs/: the experiment's name and the whole key."""
    return f"{name.replace('/', '__')}-{key}"


def safe_file_name(filename: str) -> bool:
    """A manifest's file name that stays inside its entry on every platform: relative, forward
    slashes, no empty, `.` or `..` part, no drive or stream colon, not the manifest itself."""
    if not isinstance(filename, str) or not filename or len(filename) > 255:
        return False
    if "\\" in filename or ":" in filename or "\0" in filename or filename.startswith("/"):
        return False
    if any(part in ("", ".", "..") for part in filename.split("/")):
        return False
    return filename != MANIFEST


def manifest_problem(manifest, name: str, key: str) -> str | None:
    """Why a store's manifest must not be used for the run (name, key), or None when it may."""
    if not isinstance(manifest, dict):
        return "its manifest is not a JSON object"
    if CHECKSUM not in manifest or manifest[CHECKSUM] != manifest_checksum(manifest):
        return "its manifest's checksum does not match its contents"
    missing = [field_name for field_name in REQUIRED_FIELDS if field_name not in manifest]
    if missing:
        return f"its manifest lacks {', '.join(missing)}"
    if manifest["key"] != key or manifest["name"] != name:
        return "its manifest is not one of this run (another key or experiment)"
    files = manifest["files"]
    if not isinstance(files, dict) or len(files) > MAX_FILES:
        return "its manifest's file list is malformed"
    for filename, checksum in files.items():
        if not safe_file_name(filename):
            return f"its file name {filename!r} would escape the entry"
        if not isinstance(checksum, str) or not _SHA256.fullmatch(checksum):
            return f"its file {filename!r} has no valid sha256"
    return None


def _storage_options(scheme: str) -> dict:
    """Timeouts for each kind of store, so that a store that stops answering fails the read."""
    if scheme == "s3":
        return {"config_kwargs": {"connect_timeout": CONNECT_TIMEOUT_S, "read_timeout": READ_TIMEOUT_S,
                                  "retries": {"max_attempts": 2, "mode": "standard"}}}
    if scheme in READ_ONLY_SCHEMES:
        import aiohttp

        return {"client_kwargs": {"timeout": aiohttp.ClientTimeout(
            total=None, sock_connect=CONNECT_TIMEOUT_S, sock_read=READ_TIMEOUT_S)}}
    if scheme in ("gs", "gcs"):
        # gcsfs limits a whole request (aiohttp's total), not the wait between bytes: ten times longer.
        return {"requests_timeout": 10 * READ_TIMEOUT_S}
    return {}


@dataclass
class Store:
    """One store, opened lazily; `down` says why it is not asked any more (None while it is)."""

    url: str
    max_file_bytes: int = MAX_FILE_BYTES
    say: Callable[[str], None] = field(default=lambda line: print(line, file=sys.stderr))
    down: str | None = None

    def __post_init__(self):
        problem = check_url(self.url)
        if problem:
            raise ValueError(f"{self.url}: {problem}")
        self.scheme = self.url.split("://", 1)[0]
        self._fs = None
        self._root = ""
        self._guard = threading.Lock()

    @property
    def writable(self) -> bool:
        return self.scheme not in READ_ONLY_SCHEMES

    def _open(self):
        with self._guard:
            if self._fs is None:
                import fsspec

                try:
                    self._fs, root = fsspec.core.url_to_fs(
                        self.url, skip_instance_cache=True, **_storage_options(self.scheme))
                except Exception as error:  # a missing library, unusable credentials
                    raise StoreDown(_reason(error)) from None
                self._root = root.rstrip("/")
        return self._fs

    def _path(self, *parts: str) -> str:
        self._open()  # sets the root
        return "/".join((self._root, *parts)) if self._root else "/".join(parts)

    def _object_path(self, checksum: str) -> str:
        return self._path("objects", checksum[:2], checksum)

    # --- reading ---------------------------------------------------------------------------------

    def _read(self, path: str, limit: int) -> bytes:
        """The bytes of one object, at most `limit` of them (RefusedEntry above that); FileNotFoundError
        where there is none; StoreDown where the store fails to answer."""
        fs = self._open()
        try:
            if self.scheme in READ_ONLY_SCHEMES:
                return _read_stream(fs, path, limit)
            size = fs.size(path)
            if size is not None and size > limit:
                raise RefusedEntry(_too_large(path, size, limit))
            data = fs.cat_file(path)
        except RefusedEntry:
            raise
        except FileNotFoundError as error:
            # fsspec's HTTP filesystem reports a refused connection as a missing file; a real
            # answer (404) carries its status.
            cause = error.__cause__
            if self.scheme in READ_ONLY_SCHEMES and cause is not None and getattr(cause, "status", None) is None:
                raise StoreDown(_reason(cause)) from None
            raise
        except Exception as error:  # each filesystem raises its own kinds: all mean the store failed
            raise StoreDown(_reason(error)) from None
        if len(data) > limit:
            raise RefusedEntry(_too_large(path, len(data), limit))
        return data

    def fetch(self, name: str, key: str, entry: Path, cache_dir: Path) -> Published | None:
        """The run (name, key) read from the store and published as `entry` of the local cache at
        `cache_dir`; None where the store lacks it, refuses it (said in one line) or is down."""
        if self.down is not None:
            return None
        label = entry_name(name, key)
        try:
            try:
                raw = self._read(self._path("runs", f"{label}.json"), MAX_MANIFEST_BYTES)
            except FileNotFoundError:
                return None
            return self._download(raw, name, key, entry, cache_dir)
        except RefusedEntry as refused:
            self.say(f"run cache: refused {label} from {self.url}: {refused}; computing it here")
        except StoreDown as error:
            self._went_down(str(error))
        return None

    def _download(self, raw: bytes, name: str, key: str, entry: Path, cache_dir: Path) -> Published:
        try:
            manifest = json.loads(raw)
        except (ValueError, RecursionError):
            raise RefusedEntry("its manifest is not JSON") from None
        try:
            problem = manifest_problem(manifest, name, key)
        except Exception as error:  # values no manifest of ours holds (NaN, deep nesting...)
            problem = f"its manifest cannot be checked ({type(error).__name__})"
        if problem:
            raise RefusedEntry(problem)
        started = time.perf_counter()
        scratch = new_scratch(cache_dir, key[:12], name)
        try:
            total = 0
            for filename, checksum in sorted(manifest["files"].items()):
                try:
                    data = self._read(self._object_path(checksum), self.max_file_bytes)
                except FileNotFoundError:
                    raise RefusedEntry(f"its file {filename} is missing from the store") from None
                if hashlib.sha256(data).hexdigest() != checksum:
                    raise RefusedEntry(f"its file {filename} does not match its checksum")
                target = scratch / filename
                if scratch.resolve() not in target.resolve().parents:
                    raise RefusedEntry(f"its file name {filename!r} would escape the entry")
                total += len(data)
                if total > MAX_ENTRY_BYTES:
                    raise RefusedEntry(f"its files pass {MAX_ENTRY_BYTES:,} bytes in all")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            (scratch / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
            published = publish(scratch, manifest, entry, force=False)
        finally:
            end_scratch(scratch)
        self.say(f"run cache: read {name} ({total / 1e6:.1f} MB, {len(manifest['files'])} files) from "
                 f"{self.url} in {time.perf_counter() - started:.1f} s")
        return published

    def _went_down(self, why: str) -> None:
        if self.down is None:
            self.down = why
            self.say(f"run cache: the store {self.url} failed ({why}); this build computes here what it "
                     "lacks locally and asks the store nothing more")

    def index(self) -> dict:
        """store.json: {"runs": {profile: {precision: [key, ...]}}}; empty where there is none or it is
        unreadable (it is a hint, never trusted for a run's contents)."""
        try:
            index = json.loads(self._read(self._path(STORE_INDEX), MAX_MANIFEST_BYTES))
        except (FileNotFoundError, RefusedEntry, ValueError, RecursionError):
            return {}
        except StoreDown as error:
            self._went_down(str(error))
            return {}
        return index if isinstance(index, dict) and isinstance(index.get("runs"), dict) else {}

    # --- writing ---------------------------------------------------------------------------------

    def _exists(self, path: str) -> bool:
        try:
            return self._open().exists(path)
        except Exception as error:
            raise StoreDown(_reason(error)) from None

    def _put(self, path: str, data: bytes) -> None:
        """One object, whole or not at all: one PUT on object stores; a rename on a local folder."""
        fs = self._open()
        try:
            if self.scheme == "file":
                local = Path(path)
                local.parent.mkdir(parents=True, exist_ok=True)
                temporary = local.with_name(f".{local.name}.{uuid.uuid4().hex[:12]}")
                temporary.write_bytes(data)
                os.replace(temporary, local)
            else:
                fs.pipe_file(path, data)
        except Exception as error:
            raise StoreDown(_reason(error)) from None

    def push_copy(self, copy: Path, manifest: dict) -> int | None:
        """Upload one valid local copy unless the store has its entry (None); returns the bytes of
        the files uploaded (those the store lacked)."""
        label = entry_name(manifest["name"], manifest["key"])
        manifest_path = self._path("runs", f"{label}.json")
        if self._exists(manifest_path):
            return None
        sent = 0
        for filename, checksum in sorted(manifest["files"].items()):
            path = self._object_path(checksum)
            if not self._exists(path):
                data = (copy / filename).read_bytes()
                if hashlib.sha256(data).hexdigest() != checksum:
                    raise RefusedEntry(f"the local file {filename} of {label} changed after it was written")
                self._put(path, data)
                sent += len(data)
        self._put(manifest_path, json.dumps(manifest, indent=2, sort_keys=True).encode())
        return sent

    def add_to_index(self, runs: dict[str, dict[str, set[str]]]) -> None:
        """Merge {profile: {precision: keys}} into store.json (a hint: a concurrent push may lose
        its part of it, never an entry)."""
        index = self.index()
        merged = {profile: {precision: set(keys) for precision, keys in by_precision.items()}
                  for profile, by_precision in index.get("runs", {}).items() if isinstance(by_precision, dict)}
        for profile, by_precision in runs.items():
            for precision, keys in by_precision.items():
                merged.setdefault(profile, {}).setdefault(precision, set()).update(keys)
        body = {"format": 1, "runs": {profile: {precision: sorted(keys) for precision, keys in by.items()}
                                      for profile, by in sorted(merged.items())}}
        self._put(self._path(STORE_INDEX), json.dumps(body, indent=1, sort_keys=True).encode())


def _read_stream(fs, path: str, limit: int) -> bytes:
    """An object read as a stream (a web server may not say its size, nor serve ranges), refused as
    soon as it passes `limit` bytes."""
    chunks, total = [], 0
    with fs.open(path, "rb", block_size=0) as handle:
        while chunk := handle.read(1 << 20):
            total += len(chunk)
            if total > limit:
                raise RefusedEntry(_too_large(path, total, limit, "over"))
            chunks.append(chunk)
    return b"".join(chunks)


def _too_large(path: str, size: int, limit: int, prefix: str = "") -> str:
    name = path.rsplit("/", 1)[-1]
    return f"{name} is {prefix + ' ' if prefix else ''}{size:,} bytes, over the limit of {limit:,}"


def _reason(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:200]}" if text else type(error).__name__


@lru_cache(maxsize=None)
def store_for(url: str) -> Store:
    """The process's one Store for `url` (so that a store found down is asked nothing more)."""
    return Store(url)


def adopted_precision(store: Store, profile: str, own: str) -> str:
    """The precision a build of `profile` computes at with this store: its device's own (`own`) where
    the store holds runs of the profile at it or at none, else the precision the store holds most of."""
    held = {precision: len(keys) for precision, keys in store.index().get("runs", {}).get(profile, {}).items()
            if isinstance(keys, list) and keys}
    if not held or own in held:
        return own
    return max(sorted(held), key=held.get)


@dataclass
class PushReport:
    uploaded: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # invalid local copies, with why
    bytes_sent: int = 0


def push(cache_dir: Path, store: Store, say: Callable[[str], None] = print) -> PushReport:
    """Upload every valid entry of the local cache that the store lacks, then note them in store.json."""
    if not store.writable:
        raise StoreDown(f"{store.url} is read-only ({store.scheme}:// serves runs, it cannot take them)")
    report = PushReport()
    index: dict[str, dict[str, set[str]]] = {}
    copies = published_copies(cache_dir)
    for number, copy in enumerate(copies, 1):
        label = copy.parent.name
        try:
            key = json.loads((copy / MANIFEST).read_text())["key"]
            manifest, why = check_copy(copy, key)
        except (OSError, ValueError, KeyError, TypeError) as error:
            manifest, why = None, f"its manifest cannot be read ({error})"
        if manifest is None:
            report.skipped.append(f"{label}: {why}")
            say(f"cache-push: {number}/{len(copies)} {label}: not pushed, {why}")
            continue
        sent = store.push_copy(copy, manifest)
        (report.present if sent is None else report.uploaded).append(label)
        report.bytes_sent += sent or 0
        profile, precision = manifest.get("profile"), manifest.get("precision")
        if profile and precision:
            index.setdefault(profile, {}).setdefault(precision, set()).add(manifest["key"])
        say(f"cache-push: {number}/{len(copies)} {label}: "
            + ("already in the store" if sent is None else f"uploaded ({sent / 1e6:.1f} MB of new files)"))
    store.add_to_index(index)
    return report
