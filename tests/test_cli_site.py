"""`python -m diffusion_lab site`: the make-free build. It must set what the Makefile exports, and
the README's make-free steps must be the ones the Makefile runs.

The build itself is the session's tiny build (conftest's `builds`), which `sitebuild.build_site`
runs through this command."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys

import pytest
from sitebuild import REPO, SITE_COMMAND

from diffusion_lab.cli import build_parser, main
from diffusion_lab.cli import site as site_cli

MAKEFILE = (REPO / "Makefile").read_text()
README = (REPO / "README.md").read_text()
PYTHONS = {"bash": ".venv/bin/python", "powershell": r".venv\Scripts\python"}


# --- what the Makefile says --------------------------------------------------------------------------

def make_variables() -> dict[str, str]:
    """The Makefile's `NAME := value` and `NAME ?= value` definitions (the defaults)."""
    return {name: value.strip() for name, value in re.findall(r"^(\w+)\s*[:?]?=[ \t]*(.*)$", MAKEFILE, re.M)}


def expand(value: str, variables: dict[str, str]) -> str:
    """A Makefile value with $(NAME) and $(abspath X) expanded, as make run in the checkout does."""
    value = re.sub(r"\$\((\w+)\)", lambda match: expand(variables[match.group(1)], variables), value)
    return re.sub(r"\$\(abspath ([^)]*)\)", lambda match: str(REPO / match.group(1)), value)


def make_exports() -> dict[str, str]:
    """What `make site` exports to mkdocs, with no variable given on make's command line."""
    variables = make_variables()
    exported = re.findall(r"^export (\w+)\s*:=(.*)$", MAKEFILE, re.M)
    return {name: expand(value.strip(), variables) for name, value in exported}


def make_installs() -> list[str]:
    """The arguments of each `pip install` of the Makefile's install recipe, in order, expanded,
    without --quiet."""
    recipe = re.search(r"^\$\(STAMP\):.*\n((?:\t.*\n)+)", MAKEFILE, re.M).group(1)
    lines = [line.split("-m pip install", 1)[1] for line in recipe.splitlines() if "-m pip install" in line]
    return [_arguments(expand(line, make_variables())) for line in lines]


def _arguments(text: str) -> str:
    return " ".join(word for word in text.split("#")[0].split() if word != "--quiet")


# --- what the README says ----------------------------------------------------------------------------

def readme_blocks() -> dict[str, list[str]]:
    """The command lines of the README's "Without make" section, by the language of their block."""
    section = README.split("\n## Without make", 1)[1].split("\n## ", 1)[0]
    return {language: [line.strip() for line in body.splitlines() if line.strip()]
            for language, body in re.findall(r"```(\w+)\n(.*?)```", section, re.S)}


@pytest.mark.parametrize("shell", sorted(PYTHONS))
def test_the_readme_installs_what_the_makefile_installs(shell):
    lines = readme_blocks()[shell]
    python = PYTHONS[shell]
    assert re.fullmatch(r"python3? -m venv \.venv", lines[0]), lines[0]
    assert all(line.startswith(f"{python} -m ") for line in lines[1:]), "every later step runs the venv's python"
    installs = [_arguments(line.split("-m pip install", 1)[1]) for line in lines if "-m pip install" in line]
    assert installs == make_installs(), "the README's install steps drift from the Makefile's $(STAMP) recipe"
    assert lines[-1] == f"{python} -m diffusion_lab site"


def test_the_readme_names_the_site_commands_options():
    section = README.split("\n## Without make", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`(--[a-z-]+)", section))
    parser_options = {option for action in _site_parser()._actions for option in action.option_strings}
    assert documented and documented <= parser_options
    assert parser_options - {"-h", "--help"} <= documented, "every option of `site` is in the README"
    example = re.search(r"`(\.venv\\Scripts\\python -m diffusion_lab site [^`]*)`", section.replace("\n", " ")).group(1)
    args = build_parser().parse_args(shlex.split(example.split(" -m diffusion_lab ", 1)[1], posix=False))
    assert args.profile == "tiny" and args.site_dir is not None


def _site_parser():
    commands = next(action for action in build_parser()._actions if action.choices and "site" in action.choices)
    return commands.choices["site"]


# --- the command -------------------------------------------------------------------------------------

@pytest.fixture
def builds_run(monkeypatch):
    """Record the mkdocs subprocess the command would start instead of starting it, with no
    DIFFUSION_LAB_* variable set around it."""
    for name in [name for name in os.environ if name.startswith("DIFFUSION_LAB_")]:
        monkeypatch.delenv(name)
    started = []

    def run(command, cwd, env):
        started.append({"command": command, "cwd": cwd, "env": env})
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(site_cli.subprocess, "run", run)
    return started


def test_site_sets_what_make_site_exports(builds_run, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the checkout is found from the package, not the current folder
    assert main(["site"]) == 0
    [build] = builds_run
    exports = make_exports()
    assert {"DIFFUSION_LAB_PROFILE", "DIFFUSION_LAB_CACHE", "DISABLE_MKDOCS_2_WARNING"} <= set(exports)
    assert {name: build["env"].get(name) for name in exports} == exports
    assert build["cwd"] == REPO
    assert build["command"] == [sys.executable, "-m", "mkdocs", "build", "--strict",
                                "-f", str(REPO / "mkdocs.yml"), "-d", str(REPO / "site")]
    assert f"site built in {REPO / 'site'} (profile default, backend mnist)" in capsys.readouterr().out


def test_site_options_set_the_build(builds_run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main(["site", "--profile", "tiny", "--backend", "deepfloyd", "--seed", "7", "--force",
                 "--cache-dir", "cache", "--site-dir", "out"])
    assert code == 0
    env = builds_run[0]["env"]
    assert (env["DIFFUSION_LAB_PROFILE"], env["DIFFUSION_LAB_BACKEND"], env["DIFFUSION_LAB_SEED"],
            env["DIFFUSION_LAB_FORCE"], env["DIFFUSION_LAB_CACHE"]) == (
        "tiny", "deepfloyd", "7", "1", str(tmp_path / "cache"))
    assert builds_run[0]["command"][-2:] == ["-d", str(tmp_path / "out")]


def test_an_option_left_out_takes_its_variable(builds_run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DIFFUSION_LAB_PROFILE", "quick")
    monkeypatch.setenv("DIFFUSION_LAB_SEED", "3")
    monkeypatch.setenv("DIFFUSION_LAB_CACHE", "relative-cache")
    assert main(["site", "--seed", "4"]) == 0
    env = builds_run[0]["env"]
    assert (env["DIFFUSION_LAB_PROFILE"], env["DIFFUSION_LAB_SEED"], env["DIFFUSION_LAB_CACHE"]) == (
        "quick", "4", str(tmp_path / "relative-cache"))


def test_mkdocs_failing_is_the_commands_exit_code(builds_run, monkeypatch, capsys):
    monkeypatch.setattr(site_cli.subprocess, "run", lambda command, cwd, env: subprocess.CompletedProcess(command, 1))
    assert main(["site"]) == 1
    assert "site built" not in capsys.readouterr().out


@pytest.mark.parametrize("problem", ["profile", "seed", "cache file", "site file", "no checkout"])
def test_bad_input_is_one_line_and_exit_2_before_any_build(builds_run, tmp_path, monkeypatch, capsys, problem):
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    argv, expected = {
        "profile": (["--profile", "huge"], "argument --profile: invalid choice: 'huge'"),
        "seed": (["--seed", "-1"], "argument --seed: must lie in 0..2**63-1"),
        "cache file": (["--cache-dir", str(a_file)],
                       f"the run cache {a_file} (--cache-dir or $DIFFUSION_LAB_CACHE) is a file"),
        "site file": (["--site-dir", str(a_file)], f"--site-dir {a_file} is a file; give a folder"),
        "no checkout": ([], f"no mkdocs.yml in {tmp_path}, where diffusion_lab is installed from"),
    }[problem]
    if problem == "no checkout":
        monkeypatch.setattr(site_cli, "checkout_root", lambda: tmp_path)
    assert main(["site", *argv]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and expected in err, err
    assert not builds_run


def test_the_session_build_runs_the_site_command(builds):
    """conftest's tiny builds (cold, then a reader served by the store) go through `python -m diffusion_lab site`."""
    assert SITE_COMMAND == [sys.executable, "-m", "diffusion_lab", "site"]
    for site in builds:
        assert (site / "index.html").is_file() and (site / "part-b" / "unet" / "index.html").is_file()
