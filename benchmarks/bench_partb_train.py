"""Part B training speed of the course's exact recipe (profile `full`), one row per model and variant.

    python benchmarks/bench_partb_train.py [--device cuda] [--steps 200] [--row-seconds 2] [--time-limit 90]
        [--models time_ddpm ...] [--variants eager_fp32 ...] [--width 8] [--json out.json]

    CPU smoke test (seconds): --device cpu --steps 2 --models time_ddpm --width 8

Every row times real optimizer steps (forward, the model's training loss, backward, fused Adam) on
random digits of MNIST's shape held on the device, at the recipe's width and batch size, and
projects the wall time of that model's whole recipe: epochs x ceil(60,000 / batch) steps. The
variants change how a step runs, never what it computes (batch, epochs, optimizer, schedule):

    eager_fp32   fp32, contiguous memory
    eager_bf16   bf16 autocast + channels_last: what `training.fit` runs (precision "auto") on a
                 bf16-capable device
    cuda_graph   eager_bf16 with the whole step (forward, loss, backward, capturable fused Adam)
                 captured once per batch shape (the full batch and each epoch's short last one) and
                 replayed; the step's random draws come from the same CPU generator, in the same
                 order, as in the package's losses and are copied into static buffers before each
                 replay (CUDA only)
    compile      eager_bf16 with torch.compile(model) (default mode, static shapes); the first
                 step's compile time is reported apart (setup s) and added to the projection

Rows run variant by variant, compile last (on a CPU compile runs only when named). Each row times
--steps steps or --row-seconds, whichever ends first. The time limit counts from the script's
start: a row that the last row of its variant says would not finish in the time left is skipped,
with a message, and --json is rewritten after every row.
"""

from __future__ import annotations

import time

_STARTED = time.perf_counter()  # the time limit counts the imports too

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import datetime  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from diffusion_lab import seeding  # noqa: E402
from diffusion_lab.mnist import flow_matching  # noqa: E402
from diffusion_lab.mnist.ddpm import class_conditioned_loss, time_conditioned_loss  # noqa: E402
from diffusion_lab.mnist.precision import autocast, memory_format, resolve_precision  # noqa: E402
from diffusion_lab.mnist.training import BatchLoss, make_ddpm_unet, make_denoiser, schedule_for, seeded  # noqa: E402
from diffusion_lab.profiles import PROFILES  # noqa: E402

MNIST_TRAIN = 60_000  # the course's training digits (train + validation of the classic split)
IMAGE_SHAPE = (1, 28, 28)
MODELS = ("time_ddpm", "class_ddpm", "time_flow", "class_flow", "denoiser")
VARIANTS = ("eager_fp32", "eager_bf16", "cuda_graph", "compile")  # also the order rows run in
BASELINE = "eager_bf16"  # what `fit` runs today on a bf16-capable device

Draws = dict[str, torch.Tensor]
TensorLoss = Callable[[nn.Module, torch.Tensor, torch.Tensor, Draws], torch.Tensor]


class Skipped(Exception):
    """A row that cannot run here (the message says why)."""


# --- the five models of the recipe, each loss in two equivalent forms -------------------------


@dataclass(frozen=True)
class Case:
    """One Part B model of the recipe.

    batch_loss: the package's loss as `training.fit` calls it, drawing from a CPU generator.
    draw: that loss's random draws for a batch, from the same generator in the same order, as CPU
        tensors ("t", "noise", and "keep", the class-dropout mask, for class models).
    tensor_loss: the same loss given those draws as tensors on the model's device; it never
        synchronizes with the host, so a CUDA graph can capture it."""

    name: str
    recipe: object  # DenoiserRecipe | DDPMRecipe | FlowMatchingRecipe
    build: Callable[[], nn.Module]
    batch_loss: BatchLoss
    draw: Callable[[int, torch.Generator], Draws]
    tensor_loss: TensorLoss

    @property
    def batch_size(self) -> int:
        return self.recipe.batch_size

    @property
    def train_size(self) -> int:
        return self.recipe.train_subset or MNIST_TRAIN

    @property
    def recipe_steps(self) -> int:
        """Optimizer steps of the whole recipe: epochs x ceil(training digits / batch)."""
        return self.recipe.epochs * math.ceil(self.train_size / self.batch_size)

    @property
    def tail_size(self) -> int:
        """The size of each epoch's last, short batch (0 when the batch size divides the digits)."""
        return self.train_size % self.batch_size

    @property
    def lr_gamma(self) -> float | None:
        """The per-epoch learning-rate decay of the recipe (the denoiser keeps its rate)."""
        return getattr(self.recipe, "lr_gamma", None)


def _drawer(sample_t: Callable[[int, torch.Generator], torch.Tensor] | None, p_uncond: float | None):
    """`Case.draw` for losses that draw t (unless sample_t is None), then the Gaussian noise, then
    (unless p_uncond is None) the class-dropout mask: the package's order."""

    def draw(n: int, generator: torch.Generator) -> Draws:
        draws = {}
        if sample_t is not None:
            draws["t"] = sample_t(n, generator)
        draws["noise"] = seeding.randn((n, *IMAGE_SHAPE), generator)
        if p_uncond is not None:
            draws["keep"] = (torch.rand(n, generator=generator) >= p_uncond).float()
        return draws

    return draw


def _class_condition(labels: torch.Tensor, keep: torch.Tensor, num_classes: int) -> torch.Tensor:
    """`unet.one_hot(labels)` with the dropped rows zeroed, on labels' device (one_hot's masked
    assignment synchronizes with the host)."""
    classes = torch.arange(num_classes, device=labels.device)
    return (labels[:, None] == classes).float() * keep[:, None]


def ddpm_case(name: str, recipe, conditional: bool, device: torch.device) -> Case:
    """A DDPM UNet of the recipe: `ddpm.time_conditioned_loss` / `class_conditioned_loss`."""
    schedule = schedule_for(recipe)
    abar = schedule.zero_based_alphas_cumprod.to(device=device, dtype=torch.float32)

    def batch_loss(model, x, y, generator):
        weighting = (recipe.min_snr_gamma, recipe.min_snr_floor)
        if conditional:
            return class_conditioned_loss(model, schedule, x, y, generator, recipe.p_uncond, *weighting)
        return time_conditioned_loss(model, schedule, x, generator, *weighting)

    def tensor_loss(model, x, y, draws):
        if recipe.min_snr_gamma is not None:
            raise NotImplementedError("the tensor loss has the course's uniform weights only")
        t, eps = draws["t"], draws["noise"]
        abar_t = abar.index_select(0, t - 1).view(-1, 1, 1, 1)
        x_t = abar_t**0.5 * x + (1 - abar_t) ** 0.5 * eps  # ddpm.q_sample, its table on the device
        inputs = (x_t, schedule.net_time(t))
        if conditional:
            inputs += (_class_condition(y, draws["keep"], model.num_classes),)
        return F.mse_loss(model(*inputs).float(), eps)

    draw = _drawer(schedule.sample_timesteps, recipe.p_uncond if conditional else None)
    return Case(name, recipe, lambda: make_ddpm_unet(recipe, conditional), batch_loss, draw, tensor_loss)


def flow_case(name: str, recipe, conditional: bool) -> Case:
    """A flow-matching UNet of the recipe: `flow_matching.time_conditioned_loss` / `class_conditioned_loss`."""

    def batch_loss(model, x, y, generator):
        if conditional:
            return flow_matching.class_conditioned_loss(model, x, y, generator, recipe.p_uncond,
                                                        recipe.time_distribution)
        return flow_matching.time_conditioned_loss(model, x, generator, recipe.time_distribution)

    def tensor_loss(model, x_1, y, draws):
        t, x_0 = draws["t"], draws["noise"]
        inputs = (flow_matching.interpolate(x_0, x_1, t), t)
        if conditional:
            inputs += (_class_condition(y, draws["keep"], model.num_classes),)
        return F.mse_loss(model(*inputs).float(), flow_matching.velocity_target(x_0, x_1))

    def sample_t(n, generator):
        return flow_matching.sample_times(n, generator, recipe.time_distribution)

    draw = _drawer(sample_t, recipe.p_uncond if conditional else None)
    return Case(name, recipe, lambda: make_ddpm_unet(recipe, conditional), batch_loss, draw, tensor_loss)


def denoiser_case(recipe) -> Case:
    """The one-step denoiser: `training.train_denoiser`'s loss || D(x + sigma eps) - x ||^2, which
    the package defines inside that function; here it is the tensor loss after its one draw."""

    def tensor_loss(model, x, _labels, draws):
        return F.mse_loss(model(x + recipe.sigma * draws["noise"]).float(), x)

    draw = _drawer(None, None)

    def batch_loss(model, x, y, generator):
        return tensor_loss(model, x, y, {key: value.to(x.device) for key, value in draw(x.shape[0], generator).items()})

    return Case("denoiser", recipe, lambda: make_denoiser(recipe), batch_loss, draw, tensor_loss)


def recipe_cases(device: torch.device, width: int | None = None) -> dict[str, Case]:
    """The five models of profile `full`, optionally all at another width (smoke tests)."""
    partb = PROFILES["full"].partb

    def sized(recipe):
        return recipe if width is None else dataclasses.replace(recipe, num_hiddens=width)

    return {
        "time_ddpm": ddpm_case("time_ddpm", sized(partb.time_ddpm), False, device),
        "class_ddpm": ddpm_case("class_ddpm", sized(partb.class_ddpm), True, device),
        "time_flow": flow_case("time_flow", sized(partb.time_flow), False),
        "class_flow": flow_case("class_flow", sized(partb.class_flow), True),
        "denoiser": denoiser_case(sized(partb.denoiser)),
    }


# --- the data, the model and one step ---------------------------------------------------------


@dataclass(frozen=True)
class Digits:
    """Random digits and labels of MNIST's shape on the device, and one shuffle of them."""

    images: torch.Tensor
    labels: torch.Tensor
    order: torch.Tensor

    @classmethod
    def random(cls, device: torch.device, n: int = MNIST_TRAIN) -> "Digits":
        generator = seeding.make_generator(0, "bench/digits")
        images = torch.rand((n, *IMAGE_SHAPE), generator=generator)
        labels = torch.randint(0, 10, (n,), generator=generator)
        order = torch.randperm(n, generator=generator)
        return cls(images.to(device), labels.to(device), order.to(device))

    def index(self, size: int, step: int) -> torch.Tensor:
        """The indices of the step-th batch of `size` digits, cycling through the shuffle."""
        begin = (step % (self.order.shape[0] // size)) * size
        return self.order[begin : begin + size]

    def batch(self, size: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        index = self.index(size, step)
        return self.images[index], self.labels[index]


def placed_model(case: Case, device: torch.device, precision: str) -> nn.Module:
    """The case's model on the device in `fit`'s memory layout for the precision, in train mode."""
    model = seeded(case.build, 0, f"{case.name}/init")
    return model.to(device).to(memory_format=memory_format(precision)).train()


def noise_generator(case: Case) -> torch.Generator:
    return seeding.make_generator(0, f"{case.name}/noise")


def fit_step(model: nn.Module, optimizer: torch.optim.Optimizer, batch_loss: BatchLoss, images: torch.Tensor,
             labels: torch.Tensor, generator: torch.Generator, device: torch.device, precision: str) -> torch.Tensor:
    """One iteration of `training.fit`'s loop: the loss under autocast, then backward and Adam."""
    with autocast(device, precision):
        loss = batch_loss(model, images, labels, generator)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --- the variants: each returns a step and what it cost to get there --------------------------


@dataclass
class Prepared:
    """step(i) runs the i-th optimizer step on a full batch; setup_s is the one-time cost paid
    before the first (compiling, capturing), already synchronized."""

    step: Callable[[int], object]
    setup_s: float = 0.0
    notes: list[str] = field(default_factory=list)


def fit_stepper(case: Case, digits: Digits, device: torch.device, precision: str,
                compile: bool = False) -> Callable[..., torch.Tensor]:
    """step(i, size=the recipe's batch): `fit_step` on the i-th batch, for a fresh model of the case
    and its fused Adam; with compile, the model runs through torch.compile (default mode) with
    static shapes, so that each epoch's short last batch gets a graph of its own instead of
    turning the full batch's into a dynamic one."""
    model = placed_model(case, device, precision)
    optimizer = torch.optim.Adam(model.parameters(), lr=case.recipe.learning_rate, fused=True)
    generator = noise_generator(case)
    network = torch.compile(model, dynamic=False) if compile else model

    def step(i: int, size: int = case.batch_size) -> torch.Tensor:
        return fit_step(network, optimizer, case.batch_loss, *digits.batch(size, i), generator, device, precision)

    return step


def prepare_eager(case: Case, digits: Digits, device: torch.device, precision: str) -> Prepared:
    notes = []
    if precision == "bf16" and resolve_precision("auto", device) != "bf16":
        notes.append("precision 'auto' picks fp32 on this device; bf16 forced here")
    return Prepared(fit_stepper(case, digits, device, precision), notes=notes)


def prepare_compiled(case: Case, digits: Digits, device: torch.device, precision: str,
                     compile_tail: bool = False) -> Prepared:
    """The eager step compiled; setup_s is the first step (of each batch shape with compile_tail)."""
    step = fit_stepper(case, digits, device, precision, compile=True)
    started = time.perf_counter()
    step(0)
    if compile_tail and case.tail_size:
        step(0, case.tail_size)
    synchronize(device)
    setup_s = time.perf_counter() - started
    if case.tail_size and not compile_tail:
        notes = [f"setup: the first step; each epoch's last batch of {case.tail_size} compiles once more "
                 "in training, not included (--compile-tail)"]
    else:
        notes = ["setup: the first step of each batch shape"]
    return Prepared(step, setup_s, notes)


class StaticStep:
    """The step that a CUDA graph captures, per batch size: `load(size, i)` copies the i-th batch's
    indices and this step's random draws into static device buffers; `run(size)` then computes the
    loss, backward and the optimizer step from those buffers alone. Uncaptured (and in tests, on a
    CPU) it is an ordinary eager step, the same as `fit_step` with the package's loss."""

    def __init__(self, case: Case, digits: Digits, model: nn.Module, optimizer: torch.optim.Optimizer,
                 generator: torch.Generator, device: torch.device, precision: str, sizes: list[int]):
        self.case, self.digits, self.model, self.optimizer = case, digits, model, optimizer
        self.generator, self.device, self.precision = generator, device, precision
        self.buffers = {size: self._buffers(size) for size in sizes}

    def _buffers(self, size: int) -> Draws:
        """Device buffers shaped like one step's indices and draws (drawn from a copy of the
        generator, so that the real draws start where the package's would)."""
        spare = torch.Generator().set_state(self.generator.get_state())
        draws = {key: value.to(self.device) for key, value in self.case.draw(size, spare).items()}
        return {"index": torch.zeros(size, dtype=torch.long, device=self.device), **draws}

    def load(self, size: int, i: int) -> None:
        buffers = self.buffers[size]
        buffers["index"].copy_(self.digits.index(size, i))
        for key, value in self.case.draw(size, self.generator).items():
            buffers[key].copy_(value)

    def run(self, size: int) -> torch.Tensor:
        """Forward, loss, backward and optimizer step on the loaded buffers; the gradients must be None."""
        buffers = self.buffers[size]
        images = self.digits.images.index_select(0, buffers["index"])
        labels = self.digits.labels.index_select(0, buffers["index"])
        # autocast's weight cache must be off while capturing (torch.cuda.graphs docs)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16",
                            cache_enabled=False):
            loss = self.case.tensor_loss(self.model, images, labels, buffers)
        loss.backward()
        self.optimizer.step()
        return loss


def prepare_graph(case: Case, digits: Digits, device: torch.device, precision: str,
                  warmup_steps: int = 3) -> Prepared:
    """The whole step captured as one CUDA graph per batch shape (the full batch and the epoch's
    short last one, sharing one memory pool), replayed after `StaticStep.load`."""
    if device.type != "cuda":
        raise Skipped("CUDA graphs need a CUDA device")
    model = placed_model(case, device, precision)
    # The learning rate as a tensor, which the graphs read and a schedule updates in place.
    optimizer = torch.optim.Adam(model.parameters(), lr=torch.tensor(case.recipe.learning_rate, device=device),
                                 fused=True, capturable=True)
    captured_lr = optimizer.param_groups[0]["lr"]
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, case.lr_gamma) if case.lr_gamma else None
    generator = noise_generator(case)
    sizes = [case.batch_size] + ([case.tail_size] if case.tail_size else [])
    static = StaticStep(case, digits, model, optimizer, generator, device, precision, sizes)

    started = time.perf_counter()
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):  # warm-up off the default stream, as the capture docs ask
        for i in range(warmup_steps):
            for size in sizes:
                static.load(size, i)
                optimizer.zero_grad(set_to_none=True)
                static.run(size)
    torch.cuda.current_stream(device).wait_stream(side)
    graphs, pool = {}, None
    for size in sizes:  # each graph allocates its own gradients: none may exist before its capture
        optimizer.zero_grad(set_to_none=True)
        graphs[size] = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graphs[size], pool=pool):
            static.run(size)
        pool = graphs[size].pool()
    for size in sizes[1:]:  # the short batch's graph runs too
        static.load(size, 0)
        graphs[size].replay()
    notes = [f"captured batch shapes {sizes}"]
    if scheduler is not None:
        scheduler.step()
        decayed = case.recipe.learning_rate * case.lr_gamma
        in_place = optimizer.param_groups[0]["lr"] is captured_lr
        if not in_place or not math.isclose(captured_lr.item(), decayed, rel_tol=1e-6):
            raise RuntimeError("the recipe's learning-rate decay does not reach the captured lr tensor")
        notes.append("the recipe's per-epoch lr decay updates the captured lr in place")
    synchronize(device)
    setup_s = time.perf_counter() - started

    def step(i):
        static.load(case.batch_size, i)
        graphs[case.batch_size].replay()

    notes.append(f"per step on the CPU: drawing {_draw_ms(case, generator):.3f} ms")
    return Prepared(step, setup_s, notes)


def _draw_ms(case: Case, generator: torch.Generator, repeats: int = 20) -> float:
    """The CPU time of one step's random draws (on a copy of the generator)."""
    spare = torch.Generator().set_state(generator.get_state())
    started = time.perf_counter()
    for _ in range(repeats):
        case.draw(case.batch_size, spare)
    return (time.perf_counter() - started) * 1000 / repeats


def prepare(variant: str, case: Case, digits: Digits, device: torch.device, args) -> Prepared:
    if variant == "eager_fp32":
        return prepare_eager(case, digits, device, "fp32")
    if variant == "eager_bf16":
        return prepare_eager(case, digits, device, "bf16")
    if variant == "cuda_graph":
        return prepare_graph(case, digits, device, "bf16")
    if variant == "compile":
        return prepare_compiled(case, digits, device, "bf16", args.compile_tail)
    raise ValueError(f"unknown variant {variant!r}")


# --- timing, rows and the summary -------------------------------------------------------------


def measure(step: Callable[[int], object], steps: int, warmup: int, device: torch.device, max_seconds: float,
            deadline: float) -> tuple[float, int]:
    """(ms per step, steps timed) over `steps` steps after `warmup` untimed ones; the timing stops
    early, after at least one step, once it has taken max_seconds or passed the deadline. It waits
    for the device every 25 steps, as `fit` does when its progress bar reads the loss."""
    for i in range(warmup):
        step(i)
    synchronize(device)
    started = time.perf_counter()
    stop_at = min(deadline, started + max_seconds)
    done = 0
    while done < steps:
        step(warmup + done)
        done += 1
        if done % 25 == 0:
            synchronize(device)
        if time.perf_counter() > stop_at:
            break
    synchronize(device)
    return (time.perf_counter() - started) * 1000 / done, done


def bench_row(case: Case, variant: str, digits: Digits, device: torch.device, args, deadline: float) -> dict:
    """One (model, variant) row; a failure becomes the row's error instead of stopping the run."""
    row = {"model": case.name, "variant": variant, "width": case.recipe.num_hiddens,
           "batch_size": case.batch_size, "recipe_steps": case.recipe_steps}
    started = time.perf_counter()
    try:
        prepared = prepare(variant, case, digits, device, args)
        ms, steps = measure(prepared.step, args.steps, args.warmup, device, args.row_seconds, deadline)
        row.update(status="ok", ms_per_step=ms, images_per_s=case.batch_size * 1000 / ms, steps_timed=steps,
                   setup_s=prepared.setup_s, projected_s=prepared.setup_s + case.recipe_steps * ms / 1000,
                   notes=prepared.notes)
    except Skipped as reason:
        row.update(status="skipped", reason=str(reason))
    except Exception as error:  # noqa: BLE001 -- one broken variant must not cost the others' rows
        row.update(status="error", error=f"{type(error).__name__}: {error}")
    finally:
        prepared = None
        _release(device, variant)
    row["wall_s"] = time.perf_counter() - started
    return row


def _release(device: torch.device, variant: str) -> None:
    """Free what a row left behind, so that the next one starts clean."""
    if variant == "compile":
        torch._dynamo.reset()  # else compiled entries pile up until the recompile limit falls back to eager
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def skip_for_time(variant: str, rows: list[dict], deadline: float) -> str | None:
    """Why a row of `variant` should not start now, judged by the last row of that variant."""
    left = deadline - time.perf_counter()
    if left <= 0:
        return "time limit reached"
    previous = [row["wall_s"] for row in rows if row["variant"] == variant and row["status"] != "skipped"]
    if previous and previous[-1] > left:
        return f"time limit: {left:.0f} s left, the last {variant} row took {previous[-1]:.0f} s"
    return None


def summarize(rows: list[dict], models: list[str]) -> dict:
    """Projected Part B training per variant (summed over the models) and the best variant per model."""
    ok = [row for row in rows if row["status"] == "ok"]
    totals = {}
    for variant in dict.fromkeys(row["variant"] for row in rows):
        mine = [row for row in ok if row["variant"] == variant]
        totals[variant] = {"projected_s": sum(row["projected_s"] for row in mine),
                           "models": [row["model"] for row in mine], "complete": len(mine) == len(models)}
    best = {}
    for model in models:
        candidates = [row for row in ok if row["model"] == model]
        if candidates:
            winner = min(candidates, key=lambda row: row["projected_s"])
            best[model] = {"variant": winner["variant"], "projected_s": winner["projected_s"]}
    best_total = sum(entry["projected_s"] for entry in best.values()) if len(best) == len(models) else None
    return {"per_variant": totals, "best_per_model": best, "best_total_s": best_total}


def duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def format_row(row: dict) -> str:
    head = f"{row['model']:<11}{row['variant']:<12}"
    if row["status"] != "ok":
        return head + f"{row['status'].upper()}: {row.get('reason') or row.get('error')}"
    line = (f"{row['images_per_s']:>10.0f}{row['ms_per_step']:>9.2f}{row['setup_s']:>9.1f}"
            f"{row['recipe_steps']:>7}{duration(row['projected_s']):>11}")
    return head + line + "".join(f"\n{'':<23}- {note}" for note in row["notes"])


def print_summary(summary: dict, models: list[str]) -> None:
    print(f"\nprojected Part B training ({len(models)} model{'s' if len(models) > 1 else ''}), per variant:")
    totals = summary["per_variant"]
    baseline = totals.get(BASELINE)
    for variant, total in totals.items():
        if not total["models"]:
            print(f"  {variant:<12}{'-':>11}   no row measured")
            continue
        line = f"  {variant:<12}{duration(total['projected_s']):>11}"
        if not total["complete"]:
            line += f"   incomplete: {len(total['models'])} of {len(models)} models"
        elif baseline and baseline["complete"] and total["projected_s"] > 0:
            line += f"   {baseline['projected_s'] / total['projected_s']:.2f}x {BASELINE}'s speed"
        print(line)
    print("best per model:")
    for model, best in summary["best_per_model"].items():
        print(f"  {model:<11}{best['variant']:<12}{duration(best['projected_s']):>11}")
    if summary["best_total_s"] is not None:
        print(f"  {'all':<23}{duration(summary['best_total_s']):>11}")


# --- the report -------------------------------------------------------------------------------


def _git(*command: str) -> str | None:
    try:
        return subprocess.run(["git", *command], capture_output=True, text=True, check=True, timeout=10,
                              cwd=Path(__file__).resolve().parent).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def environment(device: torch.device) -> dict:
    """What the numbers were measured on."""
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain") if commit else None
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    return {
        "device": name,
        "device_type": device.type,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "cpu_threads": torch.get_num_threads(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": commit,
        "git_dirty": bool(status) if status is not None else None,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
        "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
    }


def write_report(path: str | None, report: dict) -> None:
    if path:
        Path(path).write_text(json.dumps(report, indent=2) + "\n")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--variants", nargs="+", choices=VARIANTS,
                        help="run in the order " + ", ".join(VARIANTS) + " whatever the order given (default: "
                             "all; on a CPU all but compile, which takes minutes there)")
    parser.add_argument("--steps", type=int, help="timed steps per row (default: 200 on CUDA, 3 on a CPU)")
    parser.add_argument("--warmup", type=int, help="untimed steps before them (default: 3 on CUDA, 1 on a CPU)")
    parser.add_argument("--row-seconds", type=float, default=2.0,
                        help="stop a row's timing after this many seconds even if fewer steps ran")
    parser.add_argument("--time-limit", type=float, default=90.0,
                        help="seconds from the script's start after which the remaining rows are skipped")
    parser.add_argument("--width", type=int, help="every model at this width instead of the recipe's (smoke tests)")
    parser.add_argument("--compile-tail", action="store_true",
                        help="compile: also compile the epoch's short last batch in the setup time")
    parser.add_argument("--json", metavar="PATH", help="write the environment, the rows and the summary here")
    args = parser.parse_args(argv)
    if args.steps is not None and args.steps < 1:
        parser.error("--steps must be at least 1")
    on_cuda = torch.device(args.device).type == "cuda"
    args.steps = args.steps if args.steps is not None else (200 if on_cuda else 3)
    args.warmup = args.warmup if args.warmup is not None else (3 if on_cuda else 1)
    asked = args.variants or [variant for variant in VARIANTS if on_cuda or variant != "compile"]
    args.variants = [variant for variant in VARIANTS if variant in asked]
    args.models = [model for model in MODELS if model in args.models]
    return args


def main(argv: list[str] | None = None, started: float | None = None) -> dict:
    """Run the rows, print them and the summary, and return (and with --json write) the report.
    The time limit counts from `started` (a perf_counter reading; default: now)."""
    args = parse_args(argv)
    deadline = (time.perf_counter() if started is None else started) + args.time_limit
    device = torch.device(args.device)
    cases = recipe_cases(device, args.width)
    report = {**environment(device), "settings": {key: value for key, value in vars(args).items() if key != "json"},
              "rows": []}
    print(f"device: {report['device']}   torch {report['torch']}   commit {report['git_commit']}")
    print(f"variants: {', '.join(args.variants)}   models: {', '.join(args.models)}")
    print(f"{args.steps} timed steps per row (at most {args.row_seconds:g} s) after {args.warmup} warm-up; "
          f"time limit {args.time_limit:g} s")
    if args.width is not None:
        print(f"WIDTH OVERRIDDEN to {args.width}: the projections do not describe the course's recipe")
    digits = Digits.random(device)
    print(f"\n{'model':<11}{'variant':<12}{'img/s':>10}{'ms/step':>9}{'setup s':>9}{'steps':>7}{'projected':>11}")
    for variant in args.variants:
        for model in args.models:
            reason = skip_for_time(variant, report["rows"], deadline)
            if reason is not None:
                row = {"model": model, "variant": variant, "status": "skipped", "reason": reason, "wall_s": 0.0}
            else:
                row = bench_row(cases[model], variant, digits, device, args, deadline)
            report["rows"].append(row)
            print(format_row(row), flush=True)
            write_report(args.json, report)  # after every row: a run cut short keeps what it measured
    report["summary"] = summarize(report["rows"], args.models)
    print_summary(report["summary"], args.models)
    write_report(args.json, report)
    return report


if __name__ == "__main__":
    main(started=_STARTED)
