"""Part B training speed of the course's exact recipe (profile `full`, or another profile's), one row
per model and variant.

    python benchmarks/bench_partb_train.py [--device cuda] [--steps 200] [--row-seconds 2] [--time-limit 90]
        [--models time_ddpm ...] [--variants eager_fp32 ...] [--profile full] [--width 8] [--json out.json]

    CPU smoke test (seconds): --device cpu --steps 2 --models time_ddpm --width 8

Every row times the package's own training step, `train_step.TrainStep` as `training.fit` builds
and runs it (the recipe's loss with its draws, autocast, backward, fused Adam, and the recipe's
per-step schedule and EMA where it has them), on random digits of MNIST's shape held on the device,
at the recipe's width and batch size, and projects the wall time of that model's whole recipe:
epochs x ceil(training digits / batch) steps. The variants change how the step runs, never what it
computes (batch, epochs, optimizer, schedule):

    eager_fp32   fp32, contiguous memory
    eager_bf16   bf16 autocast + channels_last: what `training.fit` runs (precision "auto") on a
                 bf16-capable device
    cuda_graph   eager_bf16 with the step's device part (`TrainStep.descend`: forward, the recipe's
                 `RecipeLoss.loss`, backward, capturable fused Adam) captured once per batch shape
                 (the full batch and each epoch's short last one) and replayed; the loss's draws
                 (`RecipeLoss.draw`, from the generator and in the order `fit` uses) are copied into
                 static buffers before each replay, and the host part (`TrainStep.advance`) follows
                 it (CUDA only)
    compile      eager_bf16 with the step's network through torch.compile (default mode, static
                 shapes); the first step's compile time is reported apart (setup s) and added to the
                 projection

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
from torch import nn  # noqa: E402

from diffusion_lab import seeding  # noqa: E402
from diffusion_lab.mnist.precision import resolve_precision  # noqa: E402
from diffusion_lab.mnist.train_step import Draws, RecipeLoss, TrainStep, make_train_step  # noqa: E402
from diffusion_lab.mnist.training import optimizer_settings, recipe_loss, recipe_model, seeded  # noqa: E402
from diffusion_lab.profiles import PROFILES  # noqa: E402

MNIST_TRAIN = 60_000  # the course's training digits (train + validation of the classic split)
IMAGE_SHAPE = (1, 28, 28)
MODELS = ("time_ddpm", "class_ddpm", "time_flow", "class_flow", "denoiser")  # training.RECIPE_RUNS, in the rows' order
VARIANTS = ("eager_fp32", "eager_bf16", "cuda_graph", "compile")  # also the order rows run in
BASELINE = "eager_bf16"  # what `fit` runs today on a bf16-capable device


class Skipped(Exception):
    """A row that cannot run here (the message says why)."""


# --- the five models of a profile's recipes, as the package trains them -----------------------


@dataclass(frozen=True)
class Case:
    """One Part B model of a profile: its recipe and the package's loss for it
    (`training.recipe_loss`), which the package's step (`train_step.TrainStep`) runs."""

    name: str
    recipe: object  # DenoiserRecipe | DDPMRecipe | FlowMatchingRecipe
    loss: RecipeLoss

    def build(self) -> nn.Module:
        return recipe_model(self.name, self.recipe)

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


def recipe_cases(width: int | None = None, profile: str = "full") -> dict[str, Case]:
    """The five models of the profile's recipes, optionally all at another width (smoke tests)."""
    partb = PROFILES[profile].partb
    cases = {}
    for name in MODELS:
        recipe = getattr(partb, name)
        if width is not None:
            recipe = dataclasses.replace(recipe, num_hiddens=width)
        cases[name] = Case(name, recipe, recipe_loss(name, recipe))
    return cases


# --- the data and the package's step ----------------------------------------------------------


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


def package_step(case: Case, device: torch.device, precision: str, capturable: bool = False):
    """(the package's step, its per-epoch scheduler or None) for a fresh model of the case, seeded
    and set up as `fit` does it at seed 0 (`train_step.make_train_step` with the recipe's
    `training.optimizer_settings`); capturable for a CUDA graph."""
    model = seeded(case.build, 0, f"{case.name}/init")
    return make_train_step(model, case.loss, total_steps=case.recipe_steps, device=device, precision=precision,
                           capturable=capturable, **optimizer_settings(case.recipe))


def noise_generator(case: Case) -> torch.Generator:
    """The generator `fit` draws the case's noise from at seed 0."""
    return seeding.make_generator(0, f"{case.name}/noise")


def eager_stepper(step: TrainStep, case: Case, digits: Digits) -> Callable[..., torch.Tensor]:
    """step(i, size=the recipe's batch): the package's step on the i-th batch of `size` digits."""
    generator = noise_generator(case)

    def run(i: int, size: int = case.batch_size) -> torch.Tensor:
        return step(*digits.batch(size, i), generator)

    return run


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


def prepare_eager(case: Case, digits: Digits, device: torch.device, precision: str) -> Prepared:
    notes = []
    if precision == "bf16" and resolve_precision("auto", device) != "bf16":
        notes.append("precision 'auto' picks fp32 on this device; bf16 forced here")
    step, _ = package_step(case, device, precision)
    return Prepared(eager_stepper(step, case, digits), notes=notes)


def prepare_compiled(case: Case, digits: Digits, device: torch.device, precision: str,
                     compile_tail: bool = False) -> Prepared:
    """The package's step with its network through torch.compile (default mode) with static
    shapes, so that each epoch's short last batch gets a graph of its own instead of turning the
    full batch's into a dynamic one; setup_s is the first step (of each batch shape with compile_tail)."""
    package, _ = package_step(case, device, precision)
    package.network = torch.compile(package.model, dynamic=False)
    step = eager_stepper(package, case, digits)
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
    """The package's step as a CUDA graph captures it, per batch size: `load(size, i)` copies the
    i-th batch's indices and the case loss's draws for it (`RecipeLoss.draw`, from the generator
    `fit` uses) into static device buffers; `run(size)` is the step's `descend` with the loss's
    `RecipeLoss.loss` on those buffers. The host's part, `TrainStep.advance`, follows each run
    uncaptured. On a CPU (tests) it runs eagerly: the same as a step of `fit`."""

    def __init__(self, step: TrainStep, case: Case, digits: Digits, generator: torch.Generator, sizes: list[int]):
        self.step, self.case, self.digits, self.generator = step, case, digits, generator
        self.device = digits.images.device
        self.buffers = {size: self._buffers(size) for size in sizes}

    def _draw(self, size: int, generator: torch.Generator) -> Draws:
        return self.case.loss.draw(torch.Size((size, *self.digits.images.shape[1:])), generator)

    def _buffers(self, size: int) -> Draws:
        """Device buffers shaped like one step's indices and draws (drawn from a copy of the
        generator, so that the real draws start where the package's would)."""
        spare = torch.Generator().set_state(self.generator.get_state())
        draws = {key: value.to(self.device) for key, value in self._draw(size, spare).items()}
        return {"index": torch.zeros(size, dtype=torch.long, device=self.device), **draws}

    def load(self, size: int, i: int) -> None:
        buffers = self.buffers[size]
        buffers["index"].copy_(self.digits.index(size, i))
        for key, value in self._draw(size, self.generator).items():
            buffers[key].copy_(value)

    def run(self, size: int) -> torch.Tensor:
        """The package step's forward, loss, backward and optimizer step on the loaded buffers."""
        buffers = self.buffers[size]
        images = self.digits.images.index_select(0, buffers["index"])
        labels = self.digits.labels.index_select(0, buffers["index"])
        return self.step.descend(lambda network: self.case.loss.loss(network, images, labels, buffers))


def prepare_graph(case: Case, digits: Digits, device: torch.device, precision: str,
                  warmup_steps: int = 3) -> Prepared:
    """The package's step captured as one CUDA graph per batch shape (the full batch and the
    epoch's short last one, sharing one memory pool), replayed after `StaticStep.load`."""
    if device.type != "cuda":
        raise Skipped("CUDA graphs need a CUDA device")
    # The learning rate a device tensor, which the graphs read and the schedules update in place.
    package, epoch_scheduler = package_step(case, device, precision, capturable=True)
    package.autocast_cache = False  # autocast's weight cache must be off while capturing (torch.cuda.graphs docs)
    optimizer = package.optimizer
    sizes = [case.batch_size] + ([case.tail_size] if case.tail_size else [])
    static = StaticStep(package, case, digits, noise_generator(case), sizes)

    started = time.perf_counter()
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):  # warm-up off the default stream, as the capture docs ask
        for i in range(warmup_steps):
            for size in sizes:
                static.load(size, i)
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
    for when, scheduler in (("per-epoch", epoch_scheduler), ("per-step", package.step_scheduler)):
        if scheduler is None:
            continue
        if not schedule_reaches_lr_tensor(package.optimizer, scheduler):
            raise RuntimeError(f"the recipe's {when} learning-rate schedule does not reach the captured lr tensor")
        notes.append(f"the recipe's {when} lr schedule updates the captured lr in place")
    synchronize(device)
    setup_s = time.perf_counter() - started

    def step(i):
        static.load(case.batch_size, i)
        graphs[case.batch_size].replay()
        package.advance()

    notes.append(f"per step on the CPU: drawing {_draw_ms(static):.3f} ms")
    return Prepared(step, setup_s, notes)


def schedule_reaches_lr_tensor(optimizer: torch.optim.Optimizer, scheduler) -> bool:
    """Whether one step of `scheduler` changes the optimizer's learning-rate tensor in place, the
    tensor a captured step reads (the scheduler's own record of the rate may be that very tensor,
    so the check is that it moved)."""
    lr = optimizer.param_groups[0]["lr"]
    if not torch.is_tensor(lr):
        return False
    before = lr.item()
    scheduler.step()
    return optimizer.param_groups[0]["lr"] is lr and lr.item() != before


def _draw_ms(static: StaticStep, repeats: int = 20) -> float:
    """The CPU time of one step's draws (on a copy of the generator)."""
    spare = torch.Generator().set_state(static.generator.get_state())
    started = time.perf_counter()
    for _ in range(repeats):
        static._draw(static.case.batch_size, spare)
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
    parser.add_argument("--profile", choices=sorted(PROFILES), default="full",
                        help="whose recipes to time (default: full, the course's)")
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
    cases = recipe_cases(args.width, args.profile)
    report = {**environment(device), "settings": {key: value for key, value in vars(args).items() if key != "json"},
              "rows": []}
    print(f"device: {report['device']}   torch {report['torch']}   commit {report['git_commit']}")
    print(f"profile: {args.profile}   variants: {', '.join(args.variants)}   models: {', '.join(args.models)}")
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
