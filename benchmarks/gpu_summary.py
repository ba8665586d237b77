"""Every published run of a cache as one JSON list: name, compute seconds, device, seed, params and
metrics (the judge tables live in the metrics), for a session on a machine whose cache stays there;
and, into session.json beside it, the quality bar the session's samples are judged by (this tree's
`profiles.QUALITY_BAR` and commit), which the Build page reads back (experiments/gpu_session.py).
Whoever keeps the session adds what ran where to that file.

    python benchmarks/gpu_summary.py CACHE_DIR OUT.json
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

from diffusion_lab.experiments.gpu_session import SESSION_FILE
from diffusion_lab.profiles import QUALITY_BAR
from diffusion_lab.runcache.entries import published_copies

KEPT = ("name", "compute_s", "device", "precision", "threads", "lanes", "seed", "created", "commit", "params",
        "metrics")


def manifests(cache_dir: Path) -> list[dict]:
    """The manifest fields in KEPT of every run published in cache_dir, by creation time."""
    rows = []
    for copy in published_copies(cache_dir):
        data = json.loads((copy / "manifest.json").read_text())
        rows.append({key: data.get(key) for key in KEPT})
    return sorted(rows, key=lambda row: row["created"] or "")


def store_bar(session_file: Path, commit: str) -> None:
    """Write the bar this tree judges by, and `commit`, into session_file (keeping what it holds)."""
    info = json.loads(session_file.read_text()) if session_file.is_file() else {}
    info.update(quality_bar=dataclasses.asdict(QUALITY_BAR), quality_bar_commit=commit)
    session_file.write_text(json.dumps(info, indent=2) + "\n")


def _commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def main() -> None:
    cache_dir, out = Path(sys.argv[1]), Path(sys.argv[2])
    rows = manifests(cache_dir)
    out.write_text(json.dumps(rows, indent=1))
    store_bar(out.with_name(SESSION_FILE), _commit())
    total = sum(row["compute_s"] or 0 for row in rows)
    print(f"{len(rows)} runs, {total:.0f} s of compute in all")
    for row in rows:
        print(f"  {row['compute_s']:8.1f} s  {row['name']}")


if __name__ == "__main__":
    main()
