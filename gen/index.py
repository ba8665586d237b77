"""The home page: what this site is, how to rebuild it, profiles and backends."""

from diffusion_lab.profiles import PROFILES
from diffusion_lab.report.page import NavEntry, NAV, render_template, write_file
from diffusion_lab.runcache.context import BuildContext
from diffusion_lab.runcache.provenance import git_commit

ctx = BuildContext.from_env()
write_file("index.md", render_template("home.md.j2", ctx=ctx, profiles=PROFILES, commit=git_commit()))
NAV.append(NavEntry("", "Home", "index.md"))
