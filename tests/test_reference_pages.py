"""Reference pages (mkdocstrings), the provenance links to them, and the Build page's runs: one row
each, with the figures that show it, and no path of the builder's machine. The built site's side of
these (anchors that resolve, no stray SUMMARY page) is checked in test_site_build.py."""

import re
from pathlib import Path

import pytest
import torch
import yaml
from mkdocs.utils import yaml_load
from sitebuild import REPO

from diffusion_lab.report import page as page_module
from diffusion_lab.report.code_graph import code_pages, top_level_definitions, module_file
from diffusion_lab.report.page import (
    Page,
    build_page_markdown,
    cache_dir_text,
    computed_by_markdown,
    distinguishing_params,
)
from diffusion_lab.report.reference_pages import (
    reference_link,
    reference_modules,
    reference_page_markdown,
    reference_page_path,
)
from diffusion_lab.runcache.code_fingerprint import PACKAGE_ROOT
from diffusion_lab.runcache.context import BuildContext
from diffusion_lab.runcache.provenance import LockReport
from diffusion_lab.runcache.runs import RunRecord

ALGORITHMS = ["schedule", "forward_process", "sampling", "matched_start", "editing", "illusions", "blur", "metrics", "stock_sampling"]


def _run(name="partb/guidance-sweep", key="0" * 64, params=None,
         function="diffusion_lab.experiments.partb.guidance_sweep") -> RunRecord:
    return RunRecord(
        name=name, key=key, params=params or {}, seed=0, dir=Path("."), hit=True, wall_s=0.0,
        compute_s=0.0, device="cpu", profile="tiny", backend=None, function=function, versions={},
        commit="x", created="now",
    )


def test_every_algorithm_backend_mnist_and_experiment_module_has_a_reference_page():
    modules = reference_modules()
    expected = [f"diffusion_lab.{name}" for name in ALGORITHMS]
    for package in ("experiments", "backends", "mnist"):
        expected += [f"diffusion_lab.{package}.{path.stem}" for path in (PACKAGE_ROOT / package).glob("*.py")
                     if path.stem != "__init__"]
    assert set(expected) <= set(modules) and len(modules) == len(set(modules))
    assert "diffusion_lab.__main__" not in modules
    # The experiments come first: they are what a figure's provenance names.
    assert all(module.startswith("diffusion_lab.experiments.") for module in modules[:3])


def test_a_run_module_outside_those_packages_gets_a_page_too():
    assert "diffusion_lab.runcache.runs" in reference_modules(["diffusion_lab.runcache.runs"])


def _directive_options(markdown: str) -> dict:
    """The options block under the page's `::: module` line, as mkdocstrings reads it (YAML)."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(":::"))
    block = yaml.safe_load("\n".join(line[4:] for line in lines[start + 1:]))
    return block["options"] if block else {}


def test_a_reference_page_links_each_entry_to_its_source_page():
    module = "diffusion_lab.sampling"
    markdown = reference_page_markdown(module, code_pages([module]))
    assert markdown.startswith("# sampling\n") and f"::: {module}\n" in markdown
    extra = _directive_options(markdown)["extra"]
    # reference/diffusion_lab.sampling/ -> code/diffusion_lab.sampling/ under use_directory_urls
    assert extra["code_page"] == "../../code/diffusion_lab.sampling/"
    assert set(extra["code_anchors"]) == top_level_definitions(module_file(module).read_text())
    assert reference_page_path(module) == "reference/diffusion_lab.sampling.md"


def test_a_module_without_a_source_page_gets_no_source_links():
    assert "extra" not in _directive_options(reference_page_markdown("diffusion_lab.blur", code_pages([])))


def test_experiment_pages_show_private_functions_which_often_compute_runs():
    experiments = _directive_options(reference_page_markdown("diffusion_lab.experiments.parta"))
    algorithms = _directive_options(reference_page_markdown("diffusion_lab.sampling"))
    assert experiments["filters"] == ["!^__"] and "filters" not in algorithms


def test_computed_by_links_the_reference_entry_by_its_dotted_path_then_the_source():
    assert computed_by_markdown(_run(), "part-b/class-conditioned-ddpm.md") == (
        "[`experiments.partb.guidance_sweep`][diffusion_lab.experiments.partb.guidance_sweep] "
        "([source](../code/diffusion_lab.experiments.partb.md#guidance_sweep))")
    assert reference_link("diffusion_lab.sampling.sample") == "[`sampling.sample`][diffusion_lab.sampling.sample]"


# --- the Build page ------------------------------------------------------------------------------

NO_LOCK = LockReport(None, 0, ())


@pytest.fixture
def uses(monkeypatch):
    """Page writes kept in memory, and the run-use registry fresh for each test."""
    monkeypatch.setattr(page_module, "write_file", lambda path, data: None)
    monkeypatch.setattr(page_module, "RUN_USES", {})
    return page_module.RUN_USES


def _run_rows(markdown: str) -> list[str]:
    """The rows of the Build page's table of this build's runs (not of the GPU measurements after it)."""
    runs_table = markdown.split("\n## Measured on a GPU")[0]
    return [line for line in runs_table.splitlines() if line.startswith("| `")]


def test_each_run_is_one_row_with_every_figure_and_table_that_shows_it(ctx, uses):
    shared, other = _run("parta/samples", "a" * 64), _run("partb/judge-training", "b" * 64)
    page = Page("part-a/sampling-loops.md", "Sampling loops", ctx)
    page.figure(b"\x89PNG", "first", shared).figure(b"\x89PNG", "second", [shared, other])
    page.table(["x"], [[1]], "a table", shared)
    Page("index.md", "Home", ctx).figure(b"\x89PNG", "headline", shared)
    markdown = build_page_markdown(ctx, [shared, other, shared], environment=NO_LOCK)
    rows = _run_rows(markdown)
    assert len(rows) == 2
    assert ('| Sampling loops: <a href="../part-a/sampling-loops/#__figure-caption_1">figure 1</a>, '
            '<a href="../part-a/sampling-loops/#__figure-caption_2">figure 2</a>, '
            '<a href="../part-a/sampling-loops/#__table-caption_1">table 1</a>; '
            'Home: <a href="../#__figure-caption_1">figure 1</a> |') in rows[0]
    assert "| Sampling loops: <a href=\"../part-a/sampling-loops/#__figure-caption_2\">figure 2</a> |" in rows[1]


def test_a_run_no_figure_shows_says_so(ctx, uses):
    row, = _run_rows(build_page_markdown(ctx, [_run()], environment=NO_LOCK))
    assert "no figure of its own" in row


def test_runs_that_share_a_name_say_what_tells_them_apart():
    image = {"id": "mnist-test-1", "ref": "1", "sha256": "f" * 64}
    runs = [_run("parta/sdedit", "a" * 64, {"image": image, "model": {"T": 20}, "training": "c" * 64}),
            _run("parta/sdedit", "b" * 64, {"image": dict(image, id="hand-drawn-4"), "model": {"T": 20},
                                            "training": "d" * 64}),
            _run("parta/other", "e" * 64, {"image": image})]
    labels = distinguishing_params(runs)
    assert labels == {"a" * 64: "image=mnist-test-1, training=cccccccccccc",
                      "b" * 64: "image=hand-drawn-4, training=dddddddddddd"}
    long = distinguishing_params([_run("x", "a" * 64, {"p": list(range(50))}), _run("x", "b" * 64, {"p": []})])
    assert len(long["a" * 64]) == len("p=") + 40 and long["a" * 64].endswith("…")


def test_the_cache_folder_is_shown_relative_to_the_checkout_or_by_its_variable(tmp_path):
    checkout = tmp_path / "repo"
    assert cache_dir_text(checkout / ".cache", checkout) == ".cache"
    assert cache_dir_text(tmp_path / "elsewhere", checkout) == "$DIFFUSION_LAB_CACHE (outside the checkout)"


def test_the_build_page_names_no_absolute_path(ctx, uses):
    markdown = build_page_markdown(ctx, [_run()], environment=NO_LOCK)
    assert str(ctx.cache_dir) not in markdown and str(Path(ctx.cache_dir).parent) not in markdown
    assert "| cache | `$DIFFUSION_LAB_CACHE (outside the checkout)` |" in markdown
    assert str(page_module.CHECKOUT) not in markdown


def test_each_run_row_shows_its_device_precision_threads_and_lanes(ctx, uses):
    """The manifest's device line, precision, threads and lanes per run; a run made before manifests
    kept them shows a dash there, and still its device."""
    new = _run("partb/time-ddpm", "a" * 64)
    new.device, new.precision, new.threads, new.lanes = "cpu (AMD EPYC 9654, AVX-512 BF16; fp32; 1 thread)", "fp32", 1, 2
    gpu = _run("partb/class-ddpm", "b" * 64)
    gpu.device, gpu.precision, gpu.threads, gpu.lanes = "cuda (NVIDIA H200; bf16 autocast)", "bf16", 16, 1
    old = _run("partb/judge", "c" * 64)
    old.device = "cpu (2 threads)"
    markdown = build_page_markdown(ctx, [new, gpu, old], environment=NO_LOCK)
    assert "| device | precision | threads | lanes | seed | key |" in markdown
    rows = _run_rows(markdown)
    assert "| cpu (AMD EPYC 9654, AVX-512 BF16; fp32; 1 thread) | fp32 | 1 | 2 | 0 | `aaaaaaaaaaaa` |" in rows[0]
    assert "| cuda (NVIDIA H200; bf16 autocast) | bf16 autocast | 16 | 1 | 0 | `bbbbbbbbbbbb` |" in rows[1]
    assert "| cpu (2 threads) | — | — | — | 0 | `cccccccccccc` |" in rows[2]


@pytest.mark.parametrize("device, native, rule, here", [
    ("cpu", True, "oneDNN reports native bf16", "bf16 autocast"),
    ("cpu", False, "oneDNN reports native bf16", "fp32"),
    ("mps", False, "fp32 (bf16 autocast on MPS is partial", "fp32"),
])
def test_the_build_page_opens_with_the_device_and_its_precision_rule(tmp_path, uses, monkeypatch,
                                                                   device, native, rule, here):
    """Computed from the context and mnist.precision: the device line, the rule of its type, and
    what the rule gives on this machine."""
    from diffusion_lab.mnist import precision
    from diffusion_lab.runcache import machine

    monkeypatch.setattr(precision, "bf16_is_fast", lambda device: native)
    monkeypatch.setattr(machine, "cpu_description", lambda: "Some CPU, AVX2")
    monkeypatch.setattr(machine, "cpu_model", lambda: "Apple M2")
    ctx = BuildContext(profile="tiny", backend="mnist", device=torch.device(device), seed=0,
                       cache_dir=tmp_path / "cache", force=False)
    markdown = build_page_markdown(ctx, [], environment=NO_LOCK, gpu_measurements="")
    line = next(line for line in markdown.splitlines() if line.startswith("This build runs on "))
    assert line.startswith(f"This build runs on {ctx.device_description}. ")
    assert f"on {device}, " in line and rule in line.split(f"on {device}, ")[1] and f"; here {here}." in line
    assert markdown.index(line) < markdown.index("| profile |")  # at the top, before the settings
    if device == "mps":
        assert ctx.device_description == "mps (Apple M2; fp32)"


def test_the_build_page_says_when_the_build_computes_at_another_precision_than_the_rule(tmp_path, monkeypatch):
    from diffusion_lab.mnist import precision

    monkeypatch.setattr(precision, "bf16_is_fast", lambda device: True)
    ctx = BuildContext(profile="tiny", backend="mnist", device=torch.device("cpu"), seed=0,
                       cache_dir=tmp_path / "cache", force=False, precision_setting="fp32")
    markdown = build_page_markdown(ctx, [], environment=NO_LOCK)
    line = next(line for line in markdown.splitlines() if line.startswith("This build runs on "))
    assert "; here bf16 autocast, but this build computes at fp32, as its PRECISION setting says." in line
    assert "(" in ctx.device_description and "; fp32;" in ctx.device_description


def test_the_registries_start_empty_for_each_build():
    """gen/build.py clears what the pages registered, so that `mkdocs serve` rebuilds start afresh."""
    script = (PACKAGE_ROOT.parents[1] / "gen" / "build.py").read_text()
    for registry in ("NAV", "RUN_USES", "BUILD_LOG"):
        assert f"{registry}.clear()" in script


def test_mkdocs_builds_reference_pages_and_no_summary_page():
    # mkdocs' own loader: it knows the config's !ENV tags
    config = yaml_load((PACKAGE_ROOT.parents[1] / "mkdocs.yml").read_text().replace("!!python", "#"))
    plugins = {next(iter(p)) if isinstance(p, dict) else p: (p if isinstance(p, dict) else {}) for p in config["plugins"]}
    scripts = plugins["gen-files"]["gen-files"]["scripts"]
    assert scripts.index("gen/code.py") < scripts.index("gen/reference.py") < scripts.index("gen/build.py")
    python = plugins["mkdocstrings"]["mkdocstrings"]["handlers"]["python"]["options"]
    assert python["inherited_members"] is False and python["show_source"] is False


# --- the built tiny site (the session's `builds` fixture, conftest.py) ----------------------------

# The "computed by" cell: the reference entry of the function (mkdocs-autorefs' link), then its source.
COMPUTED_BY = re.compile(r'<td><a class="autorefs autorefs-internal" href="([^"]+)"><code>([^<]+)</code></a>'
                         r' \(<a href="([^"]+)">source</a>\)</td>')
PROVENANCE = re.compile(r'<details class="provenance">(.*?)</details>', flags=re.S)


def _target(page: Path, href: str) -> tuple[Path, str]:
    """(the built HTML file, the anchor) a relative link on `page` leads to."""
    address, _, anchor = href.partition("#")
    target = (page.parent / address).resolve()
    return (target / "index.html" if target.is_dir() else target), anchor


def _assert_computed_by_links(site: Path, page: Path, cells: list[tuple[str, str, str]]) -> None:
    """Each cell links the reference entry of the function it names (its id the dotted path, as
    mkdocstrings gives it) and the function's definition on its source page, both relative."""
    for reference, name, source in cells:
        target, anchor = _target(page, reference)
        assert "reference/" in reference and not reference.startswith(("/", "http")), f"{page}: {reference}"
        assert anchor == f"diffusion_lab.{name}", f"{page}: {reference} does not point at {name}"
        assert target.is_relative_to((site / "reference").resolve()) and target.is_file(), f"{page}: {reference}"
        assert f'id="{anchor}"' in target.read_text(), f"{page}: {target} lacks the reference entry #{anchor}"
        target, anchor = _target(page, source)
        assert target.is_relative_to((site / "code").resolve()) and target.is_file(), f"{page}: {source}"
        assert anchor and anchor in name.split("."), f"{page}: {source} does not point at {name}"
        assert f'id="{anchor}"' in target.read_text(), f"{page}: {target} lacks the anchor #{anchor}"


def _run_count(build_page: Path) -> int:
    return int(re.search(r"<td>runs</td>\s*<td>(\d+) \(", build_page.read_text()).group(1))


def _content_pages(site: Path) -> list[Path]:
    skip = {"reference", "code", "build", "search", "assets"}
    return [page for page in site.rglob("index.html") if page.relative_to(site).parts[0] not in skip]


def test_every_run_links_to_the_reference_entry_and_the_code_that_computed_it(builds):
    cold, _ = builds
    links = 0
    for page in _content_pages(cold):
        for block in PROVENANCE.findall(page.read_text()):
            found = COMPUTED_BY.findall(block)
            assert len(found) == block.count("<strong>Run <code>") >= 1, f"{page}: a run without its links"
            _assert_computed_by_links(cold, page, found)
            links += len(found)
    build_page = cold / "build/index.html"
    found = COMPUTED_BY.findall(build_page.read_text())
    assert len(found) == _run_count(build_page), "Build page: a run without its computed-by link"
    _assert_computed_by_links(cold, build_page, found)
    assert links >= 20


def test_the_site_has_a_reference_page_for_each_module(builds):
    cold, _ = builds
    modules = reference_modules()
    for module in modules:
        html = (cold / "reference" / module / "index.html").read_text()
        assert 'class="doc doc-object' in html, f"the reference page of {module} shows no entry"
    # the Reference tab's sidebar lists them (a report page's lists the report: test_site_nav.py)
    other = next(module for module in modules if module != "diffusion_lab.sampling")
    sidebar = (cold / "reference" / other / "index.html").read_text()
    assert 'href="../diffusion_lab.sampling/"' in sidebar, "the nav lists the reference pages"


def test_reference_entries_link_to_their_definition_on_the_source_pages(builds):
    cold, _ = builds
    links = 0
    for page in (cold / "reference").glob("*/index.html"):
        for href in re.findall(r'<p class="doc-source-link"><a href="([^"]+)">', page.read_text()):
            target, anchor = _target(page, href)
            assert target.is_file() and f'id="{anchor}"' in target.read_text(), f"{page}: {href} leads nowhere"
            links += 1
    assert links >= 50


def test_the_build_page_lists_each_run_once_with_the_figures_that_show_it(builds):
    cold, _ = builds
    build_page = cold / "build/index.html"
    html = build_page.read_text()
    # The summary's "git commit" row (a clean checkout's hash) ends a row like a run's key: not a run.
    commit = re.search(r"<td>git commit</td>\s*<td><code>([0-9a-f]{12})", html)
    keys = [key for key in re.findall(r"<td><code>([0-9a-f]{12})</code></td>\s*</tr>", html)
            if commit is None or key != commit.group(1)]
    assert len(keys) == _run_count(build_page) and len(keys) == len(set(keys)), "a run listed twice"
    shown = re.findall(r'<a href="([^"]+#__(?:figure|table)-caption_\d+)">', html)
    assert len(shown) >= len(keys) // 2
    for href in shown:
        target, anchor = _target(build_page, href)
        assert f'id="{anchor}"' in target.read_text(), f"Build page: {href} leads nowhere"


def test_no_page_shows_a_path_of_the_builders_machine(builds):
    cold, _ = builds
    paths = [str(REPO), str(cold.parent.resolve())]  # the checkout; the folder of the cache and sites
    for page in cold.rglob("*.html"):
        html = page.read_text()
        for path in paths:
            assert path not in html, f"{page.relative_to(cold)} shows the absolute path {path}"
    assert "$DIFFUSION_LAB_CACHE" in (cold / "build/index.html").read_text()


def test_the_nav_file_is_not_a_page(builds):
    cold, _ = builds
    assert (cold / "index.html").is_file()
    assert not (cold / "SUMMARY").exists() and not (cold / "SUMMARY.md").exists()
