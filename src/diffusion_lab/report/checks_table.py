"""The Checks page's table: each invariant check of `experiments.checks`, laid out with a link to
the code it checks. The verdicts come from the checks; nothing is judged here."""

from __future__ import annotations

from collections.abc import Sequence

from diffusion_lab.experiments.checks import CheckResult
from diffusion_lab.report.source_pages import code_link, display_name

CHECK_HEADERS = ["check", "measured", "tolerance", "result", "what is measured", "code"]


def _number(value: float) -> str:
    return "0" if value == 0 else f"{value:.3g}"


def check_rows(checks: Sequence[CheckResult], page_path: str) -> list[list[str]]:
    """One row per check: what it says, measured value, tolerance, pass or **fail**, and its code."""
    return [[check.check, _number(check.measured), _number(check.tolerance),
             "pass" if check.passed else "**fail**", check.what_is_measured,
             f"[`{display_name(check.code)}`]({code_link(check.code, page_path)})"]
            for check in checks]


def checks_summary(checks: Sequence[CheckResult]) -> str:
    """"All 12 checks pass." or "2 of 12 checks fail: ...", naming the failing ones."""
    failing = [check.check for check in checks if not check.passed]
    if not failing:
        return f"All {len(checks)} checks pass on this build."
    return f"**{len(failing)} of {len(checks)} checks fail** on this build: {'; '.join(failing)}."
