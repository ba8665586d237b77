"""The Build page's record of the measurements the code cites for its choices (a profile's recipe,
which samplers a page scores): `measurements/<date>-<what>/measurement.json`, each with its date,
commit, machine, what was measured and its numbers as a table, laid out one section each. The code
keeps only why it chose what it did and names the folder. Nothing here is measured by the build
that shows it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from diffusion_lab.experiments.parta_inputs import REPO_ROOT
from diffusion_lab.report.page import markdown_table

MEASUREMENTS = REPO_ROOT / "measurements"

RECORD_FILE = "measurement.json"


@dataclass(frozen=True)
class CitedMeasurement:
    """One dated measurement: what, when, at which commit, on which machine, its table, and the code
    that cites it."""

    folder: str
    what: str
    date: str
    commit: str
    machine: str
    cited_by: str
    headers: list[str]
    rows: list[list]
    machine_note: str | None = None  # how the machine is known, where the record did not say


def load_measurements(root: Path = MEASUREMENTS) -> list[CitedMeasurement]:
    """Every measurement.json under `root`, oldest first."""
    if not root.is_dir():
        return []
    return [CitedMeasurement(folder=folder.name, **json.loads((folder / RECORD_FILE).read_text()))
            for folder in sorted(root.iterdir()) if (folder / RECORD_FILE).is_file()]


def _cell(value) -> str:
    if value is None:
        return "—"
    return f"{value:,}" if isinstance(value, int) else str(value)


def cited_measurements_markdown(records: list[CitedMeasurement]) -> str:
    """A section with one sub-section per record; "" when there is none."""
    if not records:
        return ""
    parts = ["## Measurements the code cites (measured, not by this build)", "",
             "The numbers behind choices the code makes (a profile's recipe, the samplers a page scores), each "
             "kept with its date, the commit that recorded it and the machine, under `measurements/`; the code "
             "says why it chose and names the folder.", ""]
    for record in records:
        machine = record.machine + (f" ({record.machine_note})" if record.machine_note else "")
        parts += [f"### {record.date}: `{record.folder}`", "",
                  f"{record.what}. Recorded at `{record.commit}`, on {machine}. Cited by {record.cited_by}.", "",
                  markdown_table(record.headers, [[_cell(value) for value in row] for row in record.rows]), ""]
    return "\n".join(parts)
