"""The Build page's measurements the code cites (report/cited_measurements.py): dated records under
measurements/, and every measurement folder the code names exists."""

import json
import re

from diffusion_lab.experiments.parta_inputs import REPO_ROOT
from diffusion_lab.report.cited_measurements import RECORD_FILE, cited_measurements_markdown, load_measurements

RECORD = dict(what="Images per second by width", date="2026-11-29", commit="630f0e6", machine="a 2-core CPU",
              cited_by="profiles.py: _QUICK", headers=["width", "images/s"], rows=[[32, 1554], [64, None]])


def test_a_record_becomes_a_section_with_its_date_commit_machine_and_table(tmp_path):
    (tmp_path / "2026-11-29-width").mkdir()
    (tmp_path / "2026-11-29-width" / RECORD_FILE).write_text(json.dumps(RECORD))
    (tmp_path / "2026-11-30-h200-full").mkdir()  # another kind of measurement: not read
    records = load_measurements(tmp_path)
    assert [record.folder for record in records] == ["2026-11-29-width"]
    markdown = cited_measurements_markdown(records)
    assert "### 2026-11-29: `2026-11-29-width`" in markdown
    assert "Images per second by width. Recorded at `630f0e6`, on a 2-core CPU. Cited by profiles.py: _QUICK." in markdown
    assert "| 32 | 1,554 |" in markdown and "| 64 | — |" in markdown


def test_no_record_no_section(tmp_path):
    assert cited_measurements_markdown(load_measurements(tmp_path)) == ""


def test_the_committed_records_hold_the_numbers_the_code_once_wrote():
    records = {record.folder: record for record in load_measurements()}
    samplers = records["2026-11-30-quick-score-samplers"]
    assert (samplers.date, samplers.commit) == ("2026-11-30", "dd7b43b")
    assert samplers.rows[0][1:] == ["100 steps", 100, "18.4x", "12.0x"]
    width = records["2026-11-29-quick-unet-width"]
    assert width.rows == [[32, 554], [48, 321], [64, 253]] and width.commit == "630f0e6"
    for record in records.values():
        assert re.fullmatch(r"\d{4}-\d\d-\d\d", record.date) and record.folder.startswith(record.date)
        assert all(len(row) == len(record.headers) for row in record.rows), record.folder


def test_every_measurement_folder_the_code_names_exists():
    named = set()
    for path in (REPO_ROOT / "src" / "diffusion_lab").rglob("*.py"):
        named |= set(re.findall(r"measurements/(\d{4}-\d\d-\d\d-[\w-]+)", path.read_text()))
    assert "2026-11-30-quick-score-samplers" in named
    assert not {folder for folder in named if not (REPO_ROOT / "measurements" / folder).is_dir()}
