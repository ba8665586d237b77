"""The Part B report modules and page scripts read results as records (`partb_records`,
`quality`), never a run's metrics dict by string keys."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REPORT = REPO / "src" / "diffusion_lab" / "report"
# gen/part_b_unet.py reads the traced architecture's metrics, which are not a Part B result record.
READERS = [REPORT / "partb_figures.py", REPORT / "flow_figures.py",
           *(REPO / "gen" / f"part_b_{name}.py" for name in ("denoiser", "time_ddpm", "class_ddpm", "flow", "compare"))]


def metrics_reads(source: str) -> list[int]:
    """Lines that read a `.metrics` attribute: `run.metrics["rows"]`, and aliases such as
    `m = run.metrics` (whose keys would be read next)."""
    return [node.lineno for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Attribute) and node.attr == "metrics"]


@pytest.mark.parametrize("path", READERS, ids=lambda path: path.name)
def test_no_metrics_dict_is_read(path):
    assert metrics_reads(path.read_text()) == [], f"{path.name} reads .metrics: read its record instead"


def test_the_check_catches_a_planted_read():
    planted = REPORT.joinpath("flow_figures.py").read_text() + (
        "\n\ndef planted(run):\n    return run.metrics[\"rows\"]\n")
    lines = metrics_reads(planted)
    assert len(lines) == 1 and planted.splitlines()[lines[0] - 1].strip() == 'return run.metrics["rows"]'
    assert metrics_reads("m = run.metrics\nm['frechet_floor']\n") == [1]
    assert metrics_reads("row.frechet_distance\nrun.params['count']\n") == []
