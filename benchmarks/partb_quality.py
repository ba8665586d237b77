"""Quality per CPU-minute of a Part B recipe (DDPM or flow matching): train a variant of a profile's recipe, sample it,
and let the project's judge read the samples. Issue 10's table of recipe changes came from this.

    python benchmarks/partb_quality.py --name minsnr --model time \
        --set '{"min_snr_gamma": 5.0, "lr_schedule": "one_cycle"}' --steps 100
    python benchmarks/partb_quality.py --name warm --model class --warm-from time.pt \
        --set '{"warm_start": true}' --guidance 1 2 3 5
    python benchmarks/partb_quality.py --name pc --model time --steps 50 --corrector-snr 0.16
    python benchmarks/partb_quality.py --name matched --model time --steps 100 --start matched
    python benchmarks/partb_quality.py --name fm-logit --model fm-time \
        --set '{"time_distribution": "logit_normal"}' --steps 50 --sampler euler

--set overrides fields of the profile's recipe (mnist/recipes.py); --save keeps the trained weights
(raw, and EMA if the recipe keeps one) for --warm-from. Each result is one JSON line on stdout and
appended to --log: judge scores (confident fraction, smallest digit share, Frechet distance and its
ratio to as many real digits'), accuracy for the class model, training and sampling wall times.
The judge is the profile's, read from (or trained into) --cache-dir. Time it alone on the machine:
two torch processes on 2 cores slow each other down 5-10x.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch

from diffusion_lab import metrics, seeding
from diffusion_lab.experiments.judge_training import judge_training
from diffusion_lab.experiments.partb_flow_sampling import FlowModel, sample_flow_digits
from diffusion_lab.experiments.partb_models import load_judge
from diffusion_lab.experiments.partb_sampling import (
    START_KINDS, evaluations_per_sample, partb_noise_model, sample_digits, sampling_start,
)
from diffusion_lab.mnist import training
from diffusion_lab.mnist.data import load_mnist
from diffusion_lab.mnist.ddpm import class_labels
from diffusion_lab.profiles import get_profile
from diffusion_lab.sampling import LangevinCorrector
from diffusion_lab.runcache.context import BuildContext


def recipe_variant(profile: str, model: str, overrides: dict):
    """The profile's recipe for `model` with `overrides`; a single checkpoint at the last epoch."""
    book = get_profile(profile).partb
    base = {"time": book.time_ddpm, "class": book.class_ddpm, "fm-time": book.time_flow, "fm-class": book.class_flow}[model]
    fields = {key: tuple(value) if isinstance(value, list) else value for key, value in overrides.items()}
    epochs = fields.get("epochs", base.epochs)
    fields.setdefault("checkpoint_epochs", (epochs,))
    fields.setdefault("checkpoint_labels", tuple(f"epoch {e} of {epochs}" for e in fields["checkpoint_epochs"]))
    return dataclasses.replace(base, **fields)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", required=True)
    parser.add_argument("--model", choices=("time", "class", "fm-time", "fm-class"), default="time")
    parser.add_argument("--sampler", choices=("euler", "heun"), default="euler", help="flow models' ODE sampler")
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--set", default="{}", help="JSON object of recipe fields to override")
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--steps", type=int, nargs="*", default=[None],
                        help="samplers to score: none = Part B's on all T steps, N = Part A's on N steps")
    parser.add_argument("--guidance", type=float, nargs="*", default=[2.0, 5.0])
    parser.add_argument("--corrector-snr", type=float, default=None,
                        help="DDPM models: a Langevin corrector step of this signal-to-noise ratio after each step")
    parser.add_argument("--start", choices=START_KINDS, default="noise",
                        help="DDPM models: where sampling starts (matched_start.MatchedStart for matched)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--warm-from", type=Path, help="a --save file whose raw weights start the class model")
    parser.add_argument("--save", type=Path)
    parser.add_argument("--cache-dir", type=Path, default=Path(".cache"))
    parser.add_argument("--log", type=Path, default=Path("build/partb_quality.jsonl"))
    args = parser.parse_args(argv)

    ctx = BuildContext.from_env(profile=args.profile, cache_dir=args.cache_dir.resolve(), seed=args.seed)
    judge = load_judge(ctx, judge_training(ctx))
    data = load_mnist()
    test_features = judge.features(data.test_images)
    real = data.train_images[torch.randperm(60_000, generator=seeding.make_generator(args.seed, "floor"))[: args.samples]]
    floor = metrics.frechet_distance(judge.features(real), test_features)

    conditional = args.model.endswith("class")
    flow = args.model.startswith("fm-")
    if conditional and args.start != "noise":
        parser.error("--start matched is for the time model: a class model's x_T would need its class's moments")
    start = None if flow else sampling_start(args.start)
    recipe = recipe_variant(args.profile, args.model, json.loads(args.set))
    warm = torch.load(args.warm_from)["raw"] if args.warm_from else None
    train = training.train_flow_matching if flow else training.train_ddpm
    result = train(recipe, data, ctx.device, args.seed, conditional, progress=True, warm_start=warm)
    if args.save:
        torch.save({"raw": result.checkpoints[recipe.epochs], "ema": result.ema_checkpoints.get(recipe.epochs)},
                   args.save)
    print(f"[{args.name}] {result.num_images_seen:,} images in {result.wall_time_s:.0f} s", file=sys.stderr)

    weights = {"raw": result.checkpoints[recipe.epochs], **({"ema": result.ema_checkpoints[recipe.epochs]}
                                                            if result.ema_checkpoints else {})}
    args.log.parent.mkdir(parents=True, exist_ok=True)
    for kind, state in weights.items():
        unet = training.make_ddpm_unet(recipe, conditional)
        unet.load_state_dict(state)
        for steps in args.steps:
            if flow:
                sampler = FlowModel(unet.eval(), ctx.device)
                evaluations = steps * (2 if args.sampler == "heun" else 1)
            else:
                sampler = partb_noise_model(unet.eval(), training.schedule_for(recipe), ctx.device, num_steps=steps)
                corrector = None if args.corrector_snr is None else LangevinCorrector(args.corrector_snr)
                evaluations = evaluations_per_sample(len(sampler.strided_timesteps()), corrector)
            for scale in (args.guidance if conditional else [None]):
                labels = class_labels(args.samples // 10) if conditional else None
                started = time.perf_counter()
                generator = seeding.make_generator(args.seed, "samples")
                count = None if conditional else args.samples
                if flow:
                    samples = sample_flow_digits(sampler, generator, num_steps=steps, sampler=args.sampler,
                                                 labels=labels, num_samples=count, guidance_scale=scale).samples
                else:
                    samples = sample_digits(sampler, generator, labels=labels, num_samples=count,
                                            guidance_scale=scale, corrector=corrector, start=start,
                                            progress=True).samples
                verdicts = judge.verdicts(samples)
                distance = metrics.frechet_distance(judge.features(samples), test_features)
                row = {
                    "name": args.name, "model": args.model, "overrides": json.loads(args.set), "weights": kind,
                    "steps": evaluations, "sampler": args.sampler if flow else "ddpm", "guidance": scale,
                    "corrector_snr": None if flow else args.corrector_snr, "start": None if flow else args.start,
                    "accuracy": judge.accuracy(samples, labels) if conditional else None,
                    "confident": verdicts["confident_fraction"], "smallest_share": min(verdicts["class_shares"]),
                    "frechet": distance, "frechet_ratio": distance / floor, "floor": floor,
                    "images_seen": result.num_images_seen, "train_s": result.wall_time_s,
                    "sample_s": time.perf_counter() - started,
                }
                print(json.dumps(row), flush=True)
                with open(args.log, "a") as log:
                    log.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
