"""The Build page's record of builds served by a shared store: measurements the repository keeps
(`measurements/<date>-store-served/store_served.json`, written by benchmarks/store_served_build.py),
each with its date, commit and machine, laid out as a table. Nothing here is measured by the build
that shows it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from diffusion_lab.experiments.parta_inputs import REPO_ROOT

MEASUREMENTS = REPO_ROOT / "measurements"

RECORD_FILE = "store_served.json"


@dataclass(frozen=True)
class StoreServedBuild:
    """One measured pair: a producer's cold build pushed to a store, and a fresh clone's build served by it."""

    folder: str
    date: str
    commit: str  # the reader's clone
    producer_commit: str
    machine: str
    profile: str
    store: str  # the kind of store and server: "S3 API (moto server on 127.0.0.1)"
    runs: int
    computed: int
    from_store: int
    producer_s: float | None
    push_s: float
    pushed_mb: float
    served_s: float
    served_mkdocs_s: float | None
    warm_s: float | None
    warm_mkdocs_s: float | None
    files_compared: int
    files_differing: list[str]


def load_records(root: Path = MEASUREMENTS) -> list[StoreServedBuild]:
    """Every record under `root`, oldest first."""
    if not root.is_dir():
        return []
    records = []
    for folder in sorted(root.iterdir()):
        path = folder / RECORD_FILE
        if path.is_file():
            records.append(StoreServedBuild(folder=folder.name, **json.loads(path.read_text())))
    return records


def _s(value: float | None) -> str:
    return "—" if value is None else f"{value:,.1f} s"


def store_measurements_markdown(records: list[StoreServedBuild]) -> str:
    """A section with one row per record; "" when there is none."""
    if not records:
        return ""
    rows = [
        f"| {r.date} | `{r.commit}` | {r.machine} | `{r.profile}` | {r.store} | {_s(r.producer_s)} at "
        f"`{r.producer_commit}` | "
        f"{_s(r.push_s)} ({r.pushed_mb:,.0f} MB) | **{_s(r.served_s)}** (mkdocs {_s(r.served_mkdocs_s)}) | "
        f"{r.from_store} of {r.runs} read, {r.computed} computed | "
        f"{r.files_compared - len(r.files_differing)} of {r.files_compared} identical | "
        f"{_s(r.warm_s)} (mkdocs {_s(r.warm_mkdocs_s)}) |"
        for r in records
    ]
    return "\n".join([
        "## Builds served by a shared store (measured, not by this build)",
        "",
        "A producer builds the site cold and pushes its runs (`make cache-push CACHE_URL=...`); a fresh clone "
        "then builds with `make site CACHE_URL=...` and an empty run cache, its venv installed beforehand "
        "(`benchmarks/store_served_build.py`, kept under `measurements/`). \"Identical\" compares every figure, "
        "animation, model and data file of the two sites byte for byte.",
        "",
        "| date | commit | machine | profile | store | producer's cold build | push | reader's build, empty cache | "
        "runs | files | reader's warm rebuild |",
        "|---|---|---|---|---|---:|---:|---:|---|---|---:|",
        *rows,
        "",
    ])
