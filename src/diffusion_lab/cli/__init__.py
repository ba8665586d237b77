"""`python -m diffusion_lab ...`: the experiments of the site on people's own inputs.

Bad input is one line on stderr and exit code 2, and no output file: every number is checked
for finiteness and range by its argparse type, pictures, the output folder and the run cache
before any model is trained or sampled. Outputs are written to a temporary file first and renamed
into place, so a crash never leaves half a file behind.

One module a command: `sample_digits`, `part_a` (edit, illusion), `site` (the whole website, as
`make site` builds it, without make), `cache_push` (upload runs to a shared store); `arguments`
holds the checks.
"""

from __future__ import annotations

import argparse
import sys

from diffusion_lab.cli import cache_push, part_a, sample_digits, site
from diffusion_lab.cli.arguments import EXIT_USAGE, Parser, UsageError

COMMANDS = [sample_digits.add_command, part_a.add_edit_command, part_a.add_illusion_command, site.add_command,
            cache_push.add_command]


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="diffusion_lab", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for add in COMMANDS:
        add(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        code = args.run(args)  # None, or the exit code of what the command ran (`site`: mkdocs')
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    return code or 0
