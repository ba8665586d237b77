"""A GPU session the repository keeps, read: what `benchmarks/gpu_session.sh` brought back from a
lent GPU machine, unedited, in `measurements/<date>-<device>-<what>/`.

The folder holds the runs' manifests (runs.json), the training-speed benchmark (train_speed.json),
the IF fp16 check (if_fp16.json), nvidia-smi's samples (gpu_usage.csv), the logs, and a session.json
saying what ran where: the code version (`tree`) and the quality bar the session's samples are
judged by (`quality_bar`, as `profiles.QualityBar` was at `quality_bar_commit`), kept with it so
that a later change of the bar does not change the verdict of a past session. This module turns
those files into numbers (`load_session`); report/gpu_measurements.py lays them out.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field, fields
from pathlib import Path

from diffusion_lab.experiments.parta_inputs import REPO_ROOT
from diffusion_lab.profiles import QualityBar

MEASUREMENTS = REPO_ROOT / "measurements"
SESSION_FILE = "session.json"
# gpu_session.sh's log lines around the site build: "[27 s] site build (...), at most 423 s" and
# "[450 s] site build exit 124 ...".
_BUILD_START = re.compile(r"^\[(\d+) s\] site build \(")
_BUILD_END = re.compile(r"^\[(\d+) s\] site build exit (\d+)")


@dataclass(frozen=True)
class MeasuredRun:
    """One run of the session's cache, as its manifest recorded it; the report's score functions
    read only `params` and `metrics`, as they do of a RunRecord."""

    name: str
    compute_s: float
    device: str
    params: dict
    metrics: dict


@dataclass(frozen=True)
class BuildPart:
    """One call's site build: its seconds and exit status (124: cut at the call's time limit)."""

    seconds: int
    exit_status: int


@dataclass
class GpuSession:
    """A session folder, read. `bar`: the quality bar its samples are judged by, stored with it;
    `bar_commit`: the commit whose `profiles.QualityBar` that is."""

    folder: Path
    info: dict
    runs: list[MeasuredRun]
    bar: QualityBar
    bar_commit: str
    train_speed: dict | None = None
    if_fp16: dict | None = None
    build_parts: list[BuildPart] = field(default_factory=list)
    memory_peak_mib: float | None = None
    mean_utilization: float | None = None

    def run(self, name: str) -> MeasuredRun | None:
        """The session's run of that name (the first, where several share it)."""
        return next((run for run in self.runs if run.name == name), None)


class MeasurementError(ValueError):
    """A session folder that cannot be read: says which file and why."""


def _json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise MeasurementError(f"{path}: {error}; restore it from git or remove the session folder") from error


def build_parts(log: str) -> list[BuildPart]:
    """The site builds a gpu_session.sh log records, from its start and exit lines."""
    parts, started = [], None
    for line in log.splitlines():
        if (start := _BUILD_START.match(line)) is not None:
            started = int(start.group(1))
        elif (end := _BUILD_END.match(line)) is not None and started is not None:
            parts.append(BuildPart(int(end.group(1)) - started, int(end.group(2))))
            started = None
    return parts


def gpu_usage(path: Path) -> tuple[float | None, float | None]:
    """(peak memory used in MiB, mean utilization in %) of nvidia-smi's CSV samples
    ("timestamp, 7203 MiB, 43 %"); (None, None) without samples."""
    memory, load = [], []
    with path.open(newline="") as handle:
        for row in csv.reader(handle):
            if len(row) == 3:
                memory.append(float(row[1].split()[0]))
                load.append(float(row[2].split()[0]))
    if not memory:
        return None, None
    return max(memory), sum(load) / len(load)


def stored_bar(info: dict, path: Path) -> tuple[QualityBar, str]:
    """(the bar, its commit) that session.json at `path` stores: every field of `QualityBar`, no other."""
    bar, commit = info.get("quality_bar"), info.get("quality_bar_commit")
    expected = {f.name for f in fields(QualityBar)}
    if not isinstance(bar, dict) or set(bar) != expected or not commit:
        raise MeasurementError(f"{path}: a session stores the quality bar its samples are judged by: "
                               f"quality_bar with the fields {', '.join(sorted(expected))} (profiles.QualityBar at "
                               "the session's tree) and quality_bar_commit")
    return QualityBar(**bar), commit


def load_session(folder: Path) -> GpuSession:
    info = _json(folder / SESSION_FILE)
    bar, bar_commit = stored_bar(info, folder / SESSION_FILE)
    runs = [MeasuredRun(row["name"], row["compute_s"], row["device"], row["params"], row["metrics"] or {})
            for row in _json(folder / "runs.json")]
    session = GpuSession(folder, info, runs, bar, bar_commit)
    if (folder / "train_speed.json").is_file():
        session.train_speed = _json(folder / "train_speed.json")
    if (folder / "if_fp16.json").is_file():
        session.if_fp16 = _json(folder / "if_fp16.json")
    for call in info.get("calls", []):
        session.build_parts += build_parts((folder / call["log"]).read_text())
    if (folder / "gpu_usage.csv").is_file():
        session.memory_peak_mib, session.mean_utilization = gpu_usage(folder / "gpu_usage.csv")
    return session


def load_sessions(root: Path = MEASUREMENTS) -> list[GpuSession]:
    """Every session folder under `root`, oldest first; none when there is no such folder."""
    if not root.is_dir():
        return []
    return [load_session(folder) for folder in sorted(root.iterdir()) if (folder / SESSION_FILE).is_file()]
