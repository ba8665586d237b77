"""experiments.checks: each invariant check fails where its invariant is broken (a planted fault),
and the Checks page's rows and summary say which failed."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from diffusion_lab import illusions
from diffusion_lab.experiments import checks
from diffusion_lab.experiments.checks import CheckResult
from diffusion_lab.experiments.parta_plan import MNIST_PLAN
from diffusion_lab.report.checks_table import check_rows, checks_summary
from diffusion_lab.runcache.runs import RunRecord


def _result(measured: float, tolerance: float = 0.0) -> CheckResult:
    return CheckResult("x", "diffusion_lab.sampling.guide", measured, tolerance, "y")


def test_a_check_passes_at_its_tolerance_and_fails_past_it_or_on_nan():
    assert _result(0.0).passed and _result(1e-7, 1e-7).passed
    assert not _result(1e-300).passed  # an exact invariant tolerates nothing
    assert not _result(2e-7, 1e-7).passed and not _result(math.nan, 1.0).passed
    assert CheckResult.from_metrics(_result(0.5, 1.0).to_metrics()) == _result(0.5, 1.0)


def test_a_view_whose_inverse_is_wrong_fails_its_check(monkeypatch):
    broken = illusions.View("flip", illusions.FLIP.apply, illusions.ROT180.apply)
    monkeypatch.setitem(illusions.VIEWS, "flip", broken)

    class Handle:
        sample_shape = (1, 28, 28)

    results = {r.check: r for r in checks._view_checks(Handle, MNIST_PLAN, torch.Generator().manual_seed(0))}
    assert not results["the flip view applied and inverted returns its input"].passed
    assert results["the rot180 view applied and inverted returns its input"].passed


def _inpaint_run(directory: Path, result: torch.Tensor, original: torch.Tensor, mask: torch.Tensor) -> RunRecord:
    torch.save({"original": original, "mask": mask, "result": result}, directory / "inpaint.pt")
    return RunRecord(name="parta/inpaint", key="0" * 64, params={}, seed=0, dir=directory, hit=True, wall_s=0.0,
                     compute_s=0.0, device="cpu", profile="tiny", backend=None, function="x", versions={},
                     commit="x", created="now", metrics={})


def test_inpainting_that_touches_one_known_pixel_by_one_ulp_fails(tmp_path):
    original = torch.rand(1, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    mask = torch.zeros(1, 1, 28, 28)
    mask[..., 10:18, 10:18] = 1
    kept = original.clone()
    kept[..., 12, 12] = 0.5  # inside the mask: free to change
    touched = kept.clone()
    touched[..., 0, 0] = torch.nextafter(touched[..., 0, 0], torch.tensor(2.0))
    good, bad = checks._inpainting_checks([_inpaint_run(tmp_path, kept, original, mask)])[0], None
    (tmp_path / "b").mkdir()
    bad = checks._inpainting_checks([_inpaint_run(tmp_path / "b", touched, original, mask)])[0]
    assert good.passed and good.measured == 0.0
    assert not bad.passed and bad.measured == pytest.approx(float(torch.finfo(torch.float32).eps) / 2, rel=1.0)


def test_cfg_checks_fail_for_a_wrong_guidance_formula(monkeypatch):
    """guide() with the roles of the two estimates swapped: g = 0 gives the conditional one."""
    from diffusion_lab.backends.mnist import MnistBackend
    from diffusion_lab.mnist.unet import ClassConditionalUNet

    torch.manual_seed(0)
    unet = ClassConditionalUNet(1, 10, 8)
    model = MnistBackend(unet, torch.linspace(0.99, 0.01, 20, dtype=torch.float64))

    class Handle:
        sample_shape = (1, 28, 28)
        timesteps = model.strided_timesteps()

    Handle.model = model
    honest = checks._cfg_checks(Handle, MNIST_PLAN, torch.Generator().manual_seed(0))
    assert all(check.passed for check in honest)
    monkeypatch.setattr(checks.sampling, "guide", lambda c, u, g: c + g * (u - c))
    swapped = checks._cfg_checks(Handle, MNIST_PLAN, torch.Generator().manual_seed(0))
    assert [check.passed for check in swapped][:2] == [False, False]


def test_the_page_marks_failures_and_names_them():
    results = [CheckResult("keeps pixels", "diffusion_lab.editing.inpaint", 0.25, 0.0, "max"),
               CheckResult("repeats", "diffusion_lab.sampling.sample", 0.0, 0.0, "max")]
    rows = check_rows(results, "checks.md")
    assert [row[3] for row in rows] == ["**fail**", "pass"]
    assert rows[0][5] == "[`editing.inpaint`](code/diffusion_lab.editing.md#inpaint)"
    assert checks_summary(results) == "**1 of 2 checks fail** on this build: keeps pixels."
    assert checks_summary(results[1:] * 2) == "All 2 checks pass on this build."
