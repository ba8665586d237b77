"""Every published run of a cache as one JSON list: name, compute seconds, device, seed, params and
metrics (the judge tables live in the metrics), for a session on a machine whose cache stays there.

    python benchmarks/gpu_summary.py CACHE_DIR OUT.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

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


def main() -> None:
    cache_dir, out = Path(sys.argv[1]), Path(sys.argv[2])
    rows = manifests(cache_dir)
    out.write_text(json.dumps(rows, indent=1))
    total = sum(row["compute_s"] or 0 for row in rows)
    print(f"{len(rows)} runs, {total:.0f} s of compute in all")
    for row in rows:
        print(f"  {row['compute_s']:8.1f} s  {row['name']}")


if __name__ == "__main__":
    main()
