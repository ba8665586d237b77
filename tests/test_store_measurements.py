"""The Build page's table of builds served by a shared store (report/store_measurements.py), from
records as benchmarks/store_served_build.py writes them."""

import json

from diffusion_lab.report.store_measurements import RECORD_FILE, load_records, store_measurements_markdown

RECORD = dict(date="2026-12-07", commit="abc123def456", producer_commit="0123456789ab", machine="AMD EPYC, AVX-512 BF16, 2 cores", profile="quick",
              store="S3 API (moto server on 127.0.0.1)", runs=52, computed=0, from_store=52, producer_s=1419.0,
              push_s=12.25, pushed_mb=145.0, served_s=101.4, served_mkdocs_s=88.2, warm_s=15.0, warm_mkdocs_s=12.1,
              files_compared=300, files_differing=["part-b/x.png"])


def test_a_record_becomes_one_row_with_its_numbers(tmp_path):
    (tmp_path / "2026-12-07-store-served").mkdir()
    (tmp_path / "2026-12-07-store-served" / RECORD_FILE).write_text(json.dumps(RECORD))
    (tmp_path / "2026-11-30-h200-full").mkdir()  # another kind of measurement: not read
    records = load_records(tmp_path)
    assert [record.folder for record in records] == ["2026-12-07-store-served"]
    markdown = store_measurements_markdown(records)
    row = next(line for line in markdown.splitlines() if line.startswith("| 2026-12-07"))
    assert "`abc123def456`" in row and "AMD EPYC, AVX-512 BF16, 2 cores" in row
    assert "1,419.0 s at `0123456789ab`" in row and "12.2 s (145 MB)" in row and "**101.4 s** (mkdocs 88.2 s)" in row
    assert "52 of 52 read, 0 computed" in row and "299 of 300 identical" in row and "15.0 s (mkdocs 12.1 s)" in row


def test_no_record_no_section(tmp_path):
    assert store_measurements_markdown(load_records(tmp_path)) == ""
    assert load_records(tmp_path / "absent") == []
