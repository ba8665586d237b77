"""`sample-digits`: MNIST digits from Part B's DDPMs or flow-matching models, as an .npz.

`--model class` (default) draws `--per-class` samples of each digit with classifier-free guidance
`--guidance`; `--model time` draws `--num` samples from the time-conditioned model, which has no
class input. `--model fm-class` and `--model fm-time` are their flow-matching counterparts (the
course's current Part B), sampled with `--steps` steps (default: the profile's, the course's 50) of
`--sampler` (euler, the course's, or heun). Two seeds, kept apart:

- `--train-seed` picks the model: the cached training run of (profile, train seed). The default is
  the build's global seed ($DIFFUSION_LAB_SEED, else 0), so it is the model `make site` trained. A
  model missing from the cache is trained first, and the command says so when it starts.
- `--seed` seeds only the sampling noise: the generator of (seed, "cli/sample-digits"). Another
  seed draws other digits from the same model; it never trains one.

The sampler is Part B's (all T timesteps, fixed_large variance) unless `--steps N` asks for Part A's
strided loop (posterior variance) on at most N of them (`partb_sampling.partb_noise_model`), and
`--corrector-snr R` adds a Langevin corrector step after each (`sampling.LangevinCorrector`), and
`--start matched` (time model) draws x_T with the mean and covariance of q(x_T) instead of from
N(0, I) (`matched_start.MatchedStart`); a flow model's is `flow_sampling`'s ODE solver from t = 0 to 1.
Every option is checked, against the profile's recipe too, before any model is trained.
"""

from __future__ import annotations

import sys
from pathlib import Path

from diffusion_lab.cli.arguments import (
    MAX_DIGIT_BYTES,
    MAX_GUIDANCE,
    MAX_NUM,
    MAX_PER_CLASS,
    UsageError,
    add_common,
    build_context,
    check_output,
    corrector_snr,
    guidance_scale,
    num_digits,
    num_steps,
    per_class,
    seed,
    storing_runs,
    write_atomically,
)
from diffusion_lab.profiles import COURSE_GUIDANCE

SAMPLING_NOISE = "cli/sample-digits"  # the name the sampling generator derives from, with --seed
DEFAULT_PER_CLASS = 10
DEFAULT_NUM = 100
# The options that only some models take; None in args means "not given".
MODEL_OPTIONS = {"class": ("--per-class", "--guidance", "--corrector-snr"), "time": ("--num", "--corrector-snr", "--start"),
                 "fm-class": ("--per-class", "--guidance", "--sampler"), "fm-time": ("--num", "--sampler")}
MODEL_NAMES = {"class": "class-conditioned DDPM", "time": "time-conditioned DDPM",
               "fm-class": "class-conditioned flow-matching model", "fm-time": "time-conditioned flow-matching model"}
FLOW_MODELS = ("fm-class", "fm-time")
CONDITIONAL_MODELS = ("class", "fm-class")
# A bound on a flow model's ODE steps: 20x the course's 50, far past where more steps change the digits.
MAX_FLOW_STEPS = 1000


def _check_model_options(args) -> None:
    for option in sorted({option for options in MODEL_OPTIONS.values() for option in options}):
        if option not in MODEL_OPTIONS[args.model] and getattr(args, option[2:].replace("-", "_")) is not None:
            owners = " or ".join(model for model, options in MODEL_OPTIONS.items() if option in options)
            *first, last = MODEL_OPTIONS[args.model]
            takes = f"{', '.join(first)} and {last}" if first else last
            raise UsageError(f"{option} belongs to --model {owners}, not --model {args.model} (which takes {takes})")


def _recipe(ctx, model: str):
    recipes = ctx.recipes.partb
    return {"class": recipes.class_ddpm, "time": recipes.time_ddpm,
            "fm-class": recipes.class_flow, "fm-time": recipes.time_flow}[model]


def _check_steps(ctx, model: str, recipe, steps: int | None) -> None:
    """--steps against the model: a DDPM's T, a flow model's MAX_FLOW_STEPS."""
    if steps is None:
        return
    if model in FLOW_MODELS:
        if steps > MAX_FLOW_STEPS:
            raise UsageError(f"--steps must lie in 1..{MAX_FLOW_STEPS} for a flow-matching model (the course "
                             f"samples with 50), got {steps}")
    elif steps > recipe.num_timesteps:
        raise UsageError(f"--steps must lie in 1..{recipe.num_timesteps}: the {MODEL_NAMES[model]} of the "
                         f"{ctx.profile} profile has T = {recipe.num_timesteps} timesteps, got {steps}")


def _training_line(ctx, model: str, recipe) -> str:
    """What is about to be trained and roughly how long it takes, from the profile's recipe."""
    profile = ctx.recipes
    images = recipe.train_subset or 60_000
    start = ("; it starts from the time-conditioned model, which is trained first if it is not cached either"
             if recipe.warm_start else "")
    return (f"training the {MODEL_NAMES[model]} of the {ctx.profile} profile for train seed {ctx.seed} "
            f"(not in the run cache {ctx.cache_dir}): {recipe.epochs} epochs over {images:,} MNIST digits, "
            f"{recipe.epochs * images:,} seen in batches of {recipe.batch_size}{start}; this profile's models "
            f"train in {profile.cost}")


def _once(line: str):
    """A callback printing `line` on stderr the first time it is called: a warm-started model's
    run calls it for the model it starts from too, and the user hears of training once."""
    said = []

    def say() -> None:
        if not said:
            print(line, file=sys.stderr, flush=True)
            said.append(True)

    return say


def _sampler_line(model, asked_steps: int | None, corrector, start: str | None = None) -> str:
    from diffusion_lab.backends.mnist import VARIANCE_WORDS

    steps = model.strided_timesteps()
    variance = VARIANCE_WORDS[model.variance_type]
    langevin = "" if corrector is None else (f", a Langevin corrector step (r = {corrector.snr:g}) after each but "
                                             f"the last: {len(steps) + corrector.evaluations(len(steps))} network "
                                             "evaluations per sample")
    if start == "matched":
        langevin += ", from the matched start (x_T with the mean and covariance of q(x_T) on the training digits)"
    if asked_steps is None:
        return f"sampler: Part B's, all {len(steps)} of T = {model.num_timesteps} timesteps, {variance}{langevin}"
    listed = ", ".join(map(str, steps)) if len(steps) <= 3 else f"{steps[0]}, {steps[1]}, ..., {steps[-1]}"
    fewer = (f" (no stride takes exactly {asked_steps} steps; {model.stride} is the smallest that takes at most "
             f"{asked_steps})") if len(steps) != asked_steps else ""
    return (f"sampler: Part A's strided loop, {len(steps)} of T = {model.num_timesteps} timesteps "
            f"{listed} (stride {model.stride}){fewer}, {variance}{langevin}")


def _flow_sampler_line(sampler: str, steps: int, default: bool) -> str:
    from diffusion_lab.flow_sampling import evaluations_per_sample

    return (f"sampler: flow matching, {steps} {sampler.capitalize()} steps from t = 0 to 1, "
            f"{evaluations_per_sample(sampler, steps)} network evaluations per sample"
            + (" (the profile's default)" if default else ""))


def run(args) -> None:
    check_output(args.out, (".npz",))
    _check_model_options(args)
    ctx = build_context(args, seed_option="train_seed")
    recipe = _recipe(ctx, args.model)
    _check_steps(ctx, args.model, recipe, args.steps)

    import numpy as np
    import torch

    from diffusion_lab.experiments import partb, partb_models, partb_training
    from diffusion_lab.experiments.partb_flow_sampling import FlowModel, sample_flow_digits
    from diffusion_lab.experiments.partb_sampling import (
        PARTB_SCALAR_DTYPE, images_per_batch, partb_noise_model, sample_digits, sampling_start,
    )
    from diffusion_lab.mnist.ddpm import class_labels
    from diffusion_lab.sampling import LangevinCorrector
    from diffusion_lab.seeding import make_generator

    conditional = args.model in CONDITIONAL_MODELS
    flow = args.model in FLOW_MODELS
    name = MODEL_NAMES[args.model]
    training_line = _training_line(ctx, args.model, recipe)
    train = partb_training.flow_training if flow else partb_training.ddpm_training
    with storing_runs(ctx.cache_dir, f"the trained {name}"):
        trained = train(ctx, conditional=conditional, before_training=_once(training_line))
    print(f"model: {name}, {ctx.profile} profile, train seed {ctx.seed}, {'cached' if trained.hit else 'trained now'}, "
          f"key {trained.key[:12]}", file=sys.stderr)
    if flow:
        plan = ctx.recipes.flow
        sampler, steps = args.sampler or plan.sampler, args.steps or plan.steps
        model = FlowModel(partb_models.load_flow(ctx, trained), ctx.device)
        print(_flow_sampler_line(sampler, steps, args.sampler is None and args.steps is None), file=sys.stderr)
    else:
        corrector = None if args.corrector_snr is None else LangevinCorrector(args.corrector_snr)
        model = partb_noise_model(partb_models.load_ddpm(ctx, trained), partb_models.ddpm_schedule(trained),
                                  ctx.device, num_steps=args.steps)
        print(_sampler_line(model, args.steps, corrector, args.start), file=sys.stderr)

    labels = class_labels(args.per_class or DEFAULT_PER_CLASS) if conditional else None
    guidance = (COURSE_GUIDANCE if args.guidance is None else args.guidance) if conditional else None
    count = len(labels) if conditional else args.num or DEFAULT_NUM
    what = f"{count} digits ({count // 10} of each, guidance {guidance:g})" if conditional else f"{count} digits"
    print(f"sampling: {what}, sampling seed {args.seed}", file=sys.stderr)
    generator = make_generator(args.seed, SAMPLING_NOISE)
    batch_size = images_per_batch(partb.showcase(ctx).sample_batch, conditional)
    if flow:
        result = sample_flow_digits(model, generator, num_steps=steps, sampler=sampler, labels=labels,
                                    num_samples=None if conditional else count, guidance_scale=guidance,
                                    batch_size=batch_size)
    else:
        result = sample_digits(
            model, generator, labels=labels, guidance_scale=guidance, num_samples=None if conditional else count,
            batch_size=batch_size, corrector=corrector, start=sampling_start(args.start or "noise"),
            # Part A's loop takes float32 step coefficients (as the guidance sweep); Part B's float64.
            scalar_dtype=PARTB_SCALAR_DTYPE if args.steps is None else torch.float32, progress=True,
        )
    images = result.samples[:, 0].clamp(0, 1).numpy().astype(np.float32)
    arrays = {"images": images} if labels is None else {"images": images, "labels": labels.numpy().astype(np.int64)}

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)

    write_atomically(args.out, write)
    print(f"wrote {images.shape[0]} digits to {args.out} ({result.images_per_s:.0f} images/s)", file=sys.stderr)


def add_command(commands) -> None:
    parser = commands.add_parser("sample-digits", help="MNIST samples from Part B's class- or time-conditioned DDPM "
                                                       "or flow-matching model")
    add_common(parser, seed_help="seed of the sampling noise only, 0..2**63-1 (default 0); it never retrains: "
                                 "--train-seed picks the model")
    parser.add_argument("--model", choices=tuple(MODEL_OPTIONS), default="class",
                        help="class: class-conditioned DDPM with guidance (default); time: time-conditioned DDPM, "
                             "unconditional; fm-class, fm-time: the flow-matching models of the course's current Part B")
    parser.add_argument("--train-seed", type=seed, default=None,
                        help="seed of the model's training run, 0..2**63-1 (default: $DIFFUSION_LAB_SEED or 0, "
                             "the model the site trained); a model not in the run cache is trained first")
    parser.add_argument("--steps", type=num_steps, default=None, metavar="N",
                        help="a DDPM: sample with Part A's strided loop (posterior variance) on every ceil(T/N)-th of "
                             "the T timesteps, at most N steps and exactly N when N divides T (the steps taken are "
                             "printed), instead of Part B's sampler on all T (default); a flow-matching model: N ODE "
                             f"steps, 1..{MAX_FLOW_STEPS} (default: the profile's, the course's 50)")
    parser.add_argument("--corrector-snr", type=corrector_snr, default=None, metavar="R",
                        help="--model class or time: after each reverse step but the last, a Langevin corrector step "
                             "with signal-to-noise ratio R in (0, 1] (Song et al.'s predictor-corrector sampler; "
                             "their default 0.16), one more network evaluation each (default: none, as the course)")
    parser.add_argument("--start", choices=("noise", "matched"), default=None,
                        help="--model time: where the loop starts, noise (x_T ~ N(0, I), the course's; default) or "
                             "matched (x_T with the mean and covariance of q(x_T) on the training digits: the course's "
                             "schedule leaves 22%% of the digit in x_T)")
    parser.add_argument("--sampler", choices=("euler", "heun"), default=None,
                        help="--model fm-class or fm-time: the ODE solver, euler (one network evaluation a step; "
                             "default: the profile's, the course's euler) or heun (two a step)")
    parser.add_argument("--guidance", type=guidance_scale, default=None,
                        help=f"--model class: CFG scale g in 0..{MAX_GUIDANCE:g} (default {COURSE_GUIDANCE:g}, "
                             "the course's)")
    parser.add_argument("--per-class", type=per_class, default=None,
                        help=f"--model class: samples of each digit, 1..{MAX_PER_CLASS} (the digits may take at "
                             f"most {MAX_DIGIT_BYTES // 2**30} GiB; default {DEFAULT_PER_CLASS})")
    parser.add_argument("--num", type=num_digits, default=None, metavar="N",
                        help=f"--model time: number of samples, 1..{MAX_NUM} (at most "
                             f"{MAX_DIGIT_BYTES // 2**30} GiB; default {DEFAULT_NUM})")
    parser.set_defaults(run=run)
