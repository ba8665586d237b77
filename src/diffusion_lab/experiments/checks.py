"""The invariants every implementation of the course's algorithms should hold, checked at build time
on this build's own model and runs (the fall 2026 draft's validation list, and more this code keeps).

Each check measures one number (a largest difference, a relative error) and compares it with its
tolerance here, on the experiments side: 0 where the invariant is exact arithmetic (an interpolation's
end point, a view and its inverse, the pixels inpainting keeps), a bound on float32 rounding where the
formula rounds, and a bound on sampling error where the check is statistical. A check names the
function that computes what it checks, so the page can link to its code.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from diffusion_lab import forward_process, illusions, sampling
from diffusion_lab.experiments import parta
from diffusion_lab.experiments.parta_backend import PartABackend
from diffusion_lab.experiments.parta_plan import PartAPlan
from diffusion_lab.mnist import flow_matching
from diffusion_lab.runcache.context import BuildContext
from diffusion_lab.runcache.runs import RunRecord, Scratch, cached_run

FLOAT32_EPS = torch.finfo(torch.float32).eps
CHECK_IMAGES = 16  # images per check on the model (noisy inputs, samples)
FORWARD_DRAWS = 64  # noise draws of the test image behind the forward-process check
# A statistical check passes within this many standard errors of its estimate.
STANDARD_ERRORS = 5.0


@dataclass(frozen=True)
class CheckResult:
    """One invariant: what it says, the function that computes it (dotted path), the measured value,
    the tolerance it must not exceed, and whether it did not."""

    check: str
    code: str
    measured: float
    tolerance: float
    what_is_measured: str

    @property
    def passed(self) -> bool:
        return math.isfinite(self.measured) and self.measured <= self.tolerance

    def to_metrics(self) -> dict:
        return asdict(self)

    @classmethod
    def from_metrics(cls, row: dict) -> "CheckResult":
        return cls(**row)


def check_results(run: RunRecord) -> list[CheckResult]:
    """The checks of an `invariant_checks` run, in the order they ran."""
    return [CheckResult.from_metrics(row) for row in run.metrics["checks"]]


def _max_abs(first: torch.Tensor, second: torch.Tensor) -> float:
    return (first.double() - second.double()).abs().max().item()


def _noisy_inputs(handle: PartABackend, generator: torch.Generator) -> tuple[torch.Tensor, int]:
    """(CHECK_IMAGES, *sample_shape) pure-noise-ish inputs at the loop's middle timestep, and that t."""
    t = handle.timesteps[len(handle.timesteps) // 2]
    shape = (CHECK_IMAGES, *handle.sample_shape)
    x_t = sampling.draw_noise(shape, generator, handle.model.device, handle.model.dtype)
    return x_t, t


def _interpolation_checks(generator: torch.Generator, shape) -> list[CheckResult]:
    x_0 = torch.randn((CHECK_IMAGES, *shape), generator=generator)
    x_1 = torch.rand((CHECK_IMAGES, *shape), generator=generator)
    code = "diffusion_lab.mnist.flow_matching.interpolate"
    return [
        CheckResult("flow matching's interpolation at t = 0 is the noise x₀", code,
                    _max_abs(flow_matching.interpolate(x_0, x_1, torch.zeros(CHECK_IMAGES)), x_0), 0.0,
                    "max |x_t − x₀| at t = 0"),
        CheckResult("flow matching's interpolation at t = 1 is the image x₁", code,
                    _max_abs(flow_matching.interpolate(x_0, x_1, torch.ones(CHECK_IMAGES)), x_1), 0.0,
                    "max |x_t − x₁| at t = 1"),
    ]


def _cfg_checks(handle: PartABackend, plan: PartAPlan, generator: torch.Generator) -> list[CheckResult]:
    model = handle.model
    x_t, t = _noisy_inputs(handle, generator)
    condition, uncond = model.encode(plan.cfg_prompts[0] or plan.anagrams[0].prompt_1), model.encode("")
    conditional = model.predict(x_t, t, condition).eps.double()
    unconditional = model.predict(x_t, t, uncond).eps.double()
    largest = max(conditional.abs().max().item(), unconditional.abs().max().item())
    code = "diffusion_lab.sampling.guide"
    # u + g (c - u) rounds twice in float32: within 3 eps of the largest magnitude; 4 leaves room.
    c32, u32 = conditional.float(), unconditional.float()
    return [
        CheckResult("CFG at g = 1 (w = 0 in the (1 + w) c − w u form) is the conditional estimate", code,
                    _max_abs(sampling.guide(c32, u32, 1.0), c32), 4 * FLOAT32_EPS * largest,
                    "max |ε_cfg − ε_c| on this build's model, t in the loop's middle"),
        CheckResult("CFG at g = 0 is the unconditional estimate", code,
                    _max_abs(sampling.guide(c32, u32, 0.0), u32), 0.0,
                    "max |ε_cfg − ε_u| on this build's model"),
        CheckResult("the sampler's g = 1 is one conditional pass of the network", "diffusion_lab.sampling.guided_estimate",
                    _max_abs(sampling.guided_estimate(model, condition, uncond, 1.0)(x_t, t).eps, conditional), 0.0,
                    "max |ε_guided − ε_c| on this build's model"),
    ]


def _view_checks(handle: PartABackend, plan: PartAPlan, generator: torch.Generator) -> list[CheckResult]:
    x = torch.randn((CHECK_IMAGES, *handle.sample_shape), generator=generator)
    rows = []
    for name in dict.fromkeys(spec.view for spec in plan.anagrams):
        view = illusions.VIEWS[name]
        rows.append(CheckResult(f"the {name} view applied and inverted returns its input", "diffusion_lab.illusions.View",
                                _max_abs(view.invert(view.apply(x)), x), 0.0, "max |v⁻¹(v(x)) − x|"))
    return rows


def _inpainting_checks(inpaintings: list[RunRecord]) -> list[CheckResult]:
    rows = []
    for number, run in enumerate(inpaintings, 1):
        stored = run.load("inpaint.pt")
        known = stored["mask"].expand_as(stored["original"]) == 0
        difference = (stored["result"].double() - stored["original"].double()).abs()[known].max().item()
        rows.append(CheckResult(f"inpainting {number} of this build keeps the known pixels to the last bit",
                                "diffusion_lab.editing.inpaint", difference, 0.0,
                                "max |result − input| where the mask keeps the input"))
    return rows


def _forward_check(handle: PartABackend, plan: PartAPlan, generator: torch.Generator) -> CheckResult:
    x0, _ = parta.model_image(plan.test_image, handle.sample_shape, handle.data_range, plan.photo_size)
    t = handle.timesteps[len(handle.timesteps) // 2]
    eps = torch.randn((FORWARD_DRAWS, *x0.shape[1:]), generator=generator, dtype=torch.float64)
    x_t = forward_process.add_noise(x0.double().expand_as(eps), eps, t, handle.alphas_cumprod)
    abar = float(handle.alphas_cumprod[t])
    residual = x_t - abar**0.5 * x0.double()
    expected = (1 - abar) ** 0.5
    # the std of n normal draws has a standard error of about std / sqrt(2 n)
    return CheckResult(f"the forward process at t = {t} adds noise of std √(1 − ᾱ_t)",
                       "diffusion_lab.forward_process.add_noise", abs(residual.std().item() / expected - 1),
                       STANDARD_ERRORS / math.sqrt(2 * residual.numel()),
                       f"relative error of the noise's std over {residual.numel():,} pixels")


def _repeat_check(handle: PartABackend, plan: PartAPlan, scratch: Scratch) -> CheckResult:
    model = handle.model
    condition = model.encode(plan.cfg_prompts[0])
    timesteps = handle.timesteps[:: max(1, len(handle.timesteps) // 5)]
    first, second = (sampling.sample(model, 2, condition, scratch.generator("repeat"), timesteps=timesteps,
                                     guidance=plan.guidance) for _ in range(2))
    return CheckResult("sampling twice from one seed gives the same bits", "diffusion_lab.sampling.sample",
                       _max_abs(first, second), 0.0, "max |first − second|, two fresh generators of one seed")


def invariant_checks(ctx: BuildContext, plan: PartAPlan, handle: PartABackend) -> RunRecord:
    """Every check on this build's Part A model and its inpainting runs."""
    inpaintings = [parta.inpaint(ctx, plan, handle, pair) for pair in plan.inpaintings]
    params = {"model": handle.identity, "inpaintings": [run.key for run in inpaintings],
              "views": list(dict.fromkeys(spec.view for spec in plan.anagrams)), "images": CHECK_IMAGES,
              "forward_draws": FORWARD_DRAWS, "standard_errors": STANDARD_ERRORS}

    def compute(scratch: Scratch):
        checks = [
            *_interpolation_checks(scratch.generator("interpolation"), handle.sample_shape),
            *_cfg_checks(handle, plan, scratch.generator("cfg")),
            *_view_checks(handle, plan, scratch.generator("views")),
            *_inpainting_checks(inpaintings),
            _forward_check(handle, plan, scratch.generator("forward")),
            _repeat_check(handle, plan, scratch),
        ]
        return {"checks": [check.to_metrics() for check in checks]}

    return cached_run(ctx, "checks/invariants", params, compute, backend=handle.name)
