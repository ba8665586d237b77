"""A reader's build served by a shared store, measured: push a producer's run cache to an S3 store,
build a fresh clone against it with an empty cache, compare the two sites byte for byte.

    python benchmarks/store_served_build.py --producer /path/to/built/checkout --out measurements/<date>-store-served

The producer is a checkout where `make site PROFILE=...` has run (its site/ and .cache/). The store
is moto's S3 server on 127.0.0.1 (tests/s3server.py), the S3 API that s3fs speaks to any server.
The fresh clone (of this repository's HEAD) gets its venv first, untimed; then `make site
CACHE_URL=s3://...` is timed, and a second `make site` (warm). Writes store_served.json (the
Build page shows it: report/store_measurements.py) and the builds' logs into --out. Run it with
nothing else on the machine: the times are the point.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from s3server import s3_server  # noqa: E402

from diffusion_lab.runcache import machine  # noqa: E402

DATA_SUFFIXES = {".png", ".gif", ".svg", ".onnx", ".json", ".npz", ".csv"}


def data_files(site: Path) -> dict[str, bytes]:
    """Every figure, animation, model and data file of a built site but the search index (page text)."""
    return {str(path.relative_to(site)): path.read_bytes() for path in sorted(site.rglob("*"))
            if path.suffix in DATA_SUFFIXES and path.relative_to(site).parts[0] != "search"}


def build_counts(site: Path) -> tuple[int, int, int, int]:
    """(runs, read locally, read from the store, computed) from the Build page's summary row."""
    found = re.search(r"<td>runs</td>\s*<td>(\d+) \((\d+) read from the local cache, (\d+) read from the shared "
                      r"store, (\d+) computed\)", (site / "build/index.html").read_text())
    return tuple(int(group) for group in found.groups())


def mkdocs_seconds(log: str) -> float | None:
    found = re.findall(r"Documentation built in ([\d.]+) seconds", log)
    return float(found[-1]) if found else None


def timed(command: list[str], cwd: Path, env: dict, log: Path) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    log.write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed in {cwd} (exit {done.returncode}); see {log}")
    return seconds, done.stdout + done.stderr


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--producer", type=Path, required=True, help="a checkout built with make site")
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--producer-seconds", type=float, help="the producer's cold build, if it was timed")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    producer_site = args.producer / "site"
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DIFFUSION_LAB_", "MAKE"))}
    with s3_server() as server, tempfile.TemporaryDirectory() as scratch:
        env.update(server.env)
        url = f"s3://{server.new_bucket()}/runs"
        cache = args.producer / ".cache"
        push_s, push_log = timed([sys.executable, "-m", "diffusion_lab", "cache-push", "--to", url,
                                  "--cache-dir", str(cache)], REPO, env, args.out / "push.log")
        pushed_mb = sum(float(mb) for mb in re.findall(r"uploaded \(([\d.]+) MB", push_log))
        clone = Path(scratch) / "clone"
        subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
        timed(["make", "setup", "node_modules/.installed"], clone, env, args.out / "setup.log")
        served_s, served_log = timed(["make", "site", f"PROFILE={args.profile}", f"CACHE_URL={url}"], clone, env,
                                     args.out / "served.log")
        runs, _, remote, computed = build_counts(clone / "site")
        served_files = data_files(clone / "site")
        warm_s, warm_log = timed(["make", "site", f"PROFILE={args.profile}", f"CACHE_URL={url}"], clone, env,
                                 args.out / "warm.log")
    producer_files = data_files(producer_site)
    differing = sorted(name for name in producer_files.keys() | served_files.keys()
                       if producer_files.get(name) != served_files.get(name))
    def commit(checkout: Path) -> str:
        return subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=checkout, capture_output=True,
                              text=True).stdout.strip()

    record = dict(
        date=time.strftime("%Y-%m-%d"), commit=commit(REPO), producer_commit=commit(args.producer), machine=f"{machine.cpu_description()}, "
        f"{machine.usable_cores()} cores", profile=args.profile, store="S3 API (moto server on 127.0.0.1)",
        runs=runs, computed=computed, from_store=remote, producer_s=args.producer_seconds,
        push_s=round(push_s, 1), pushed_mb=round(pushed_mb, 1), served_s=round(served_s, 1),
        served_mkdocs_s=mkdocs_seconds(served_log), warm_s=round(warm_s, 1), warm_mkdocs_s=mkdocs_seconds(warm_log),
        files_compared=len(producer_files.keys() | served_files.keys()), files_differing=differing,
    )
    (args.out / "store_served.json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))
    return 0 if computed == 0 and not differing else 1


if __name__ == "__main__":
    raise SystemExit(main())
