"""`cache-push`: upload the runs of the local cache that a shared store lacks (what `make cache-push` runs).

Every valid entry of the local run cache (its manifest and files checked) is uploaded to the store
at --to (default: $DIFFUSION_LAB_CACHE_URL) unless the store has it; an entry whose files no longer
match its manifest is listed and left out. Credentials come from the store library's standard places
(for S3: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL or ~/.aws/). A store that fails
stops the push with one line (exit 1); what was uploaded before stays valid (an entry's manifest is
written after its files).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from diffusion_lab.cli.arguments import UsageError
from diffusion_lab.runcache import remote


def add_command(commands) -> None:
    parser = commands.add_parser("cache-push", help="upload the local cache's runs that a shared store lacks",
                                 description=__doc__.splitlines()[0])
    parser.add_argument("--to", dest="url",
                        help="the store: s3://bucket/prefix, gs://bucket/prefix or file:///path "
                             "(default: $DIFFUSION_LAB_CACHE_URL)")
    parser.add_argument("--cache-dir", type=Path,
                        help="the local run cache (default: $DIFFUSION_LAB_CACHE, else .cache)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    url = args.url or os.environ.get("DIFFUSION_LAB_CACHE_URL", "")
    if not url:
        raise UsageError("cache-push needs a store: --to s3://bucket/prefix (or make cache-push CACHE_URL=...)")
    problem = remote.check_url(url)
    if problem:
        raise UsageError(f"--to {url}: {problem}")
    if url.split("://", 1)[0] in remote.READ_ONLY_SCHEMES:
        raise UsageError(f"--to {url}: an http(s):// store is read-only; push to its s3://, gs:// or file:// location")
    cache = (args.cache_dir or Path(os.environ.get("DIFFUSION_LAB_CACHE") or ".cache")).expanduser().resolve()
    if not (cache / "runs").is_dir():
        raise UsageError(f"the run cache {cache} holds no runs (--cache-dir or $DIFFUSION_LAB_CACHE)")
    try:
        report = remote.push(cache, remote.Store(url), say=lambda line: print(line, flush=True))
    except remote.StoreDown as error:
        print(f"cache-push: the store {url} failed: {error}; entries uploaded before it stay valid", file=sys.stderr)
        return 1
    print(f"cache-push: {len(report.uploaded)} uploaded ({report.bytes_sent / 1e6:.1f} MB), "
          f"{len(report.present)} already in {url}, {len(report.skipped)} invalid locally and left out")
    return 0
