"""`sample-digits`: class-conditioned MNIST samples with classifier-free guidance, as an .npz."""

from __future__ import annotations

import sys
from pathlib import Path

from diffusion_lab.cli.arguments import (
    MAX_DIGIT_BYTES,
    MAX_GUIDANCE,
    MAX_PER_CLASS,
    add_common,
    build_context,
    check_output,
    guidance_scale,
    per_class,
    storing_runs,
    write_atomically,
)
from diffusion_lab.profiles import COURSE_GUIDANCE


def run(args) -> None:
    import numpy as np

    from diffusion_lab.experiments import partb, partb_models, partb_training
    from diffusion_lab.experiments.partb_sampling import partb_noise_model, sample_digits
    from diffusion_lab.mnist.ddpm import class_labels
    from diffusion_lab.seeding import make_generator

    check_output(args.out, (".npz",))
    ctx = build_context(args)
    with storing_runs(ctx.cache_dir, "the trained class-conditioned UNet"):
        trained = partb_training.ddpm_training(ctx, conditional=True)
    print(f"class-conditioned UNet: {'cached' if trained.hit else 'trained'} ({ctx.profile} profile, "
          f"key {trained.key[:12]})", file=sys.stderr)
    labels = class_labels(args.per_class)
    model = partb_noise_model(partb_models.load_ddpm(ctx, trained), partb_models.ddpm_schedule(trained), ctx.device)
    result = sample_digits(
        model, make_generator(ctx.seed, "cli/sample-digits"), labels=labels, guidance_scale=args.guidance,
        batch_size=partb.showcase(ctx).sample_batch, progress=True,
    )
    images = result.samples[:, 0].clamp(0, 1).numpy().astype(np.float32)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.savez(handle, images=images, labels=labels.numpy().astype(np.int64))

    write_atomically(args.out, write)
    print(f"wrote {images.shape[0]} digits to {args.out} ({result.images_per_s:.0f} images/s)", file=sys.stderr)


def add_command(commands) -> None:
    parser = commands.add_parser("sample-digits", help="class-conditioned MNIST samples with classifier-free guidance")
    add_common(parser)
    parser.add_argument("--guidance", type=guidance_scale, default=COURSE_GUIDANCE,
                        help=f"CFG scale g in 0..{MAX_GUIDANCE:g} (default {COURSE_GUIDANCE:g}, the course's)")
    parser.add_argument("--per-class", type=per_class, default=10,
                        help=f"samples of each digit, 1..{MAX_PER_CLASS} (the digits may take at most "
                             f"{MAX_DIGIT_BYTES // 2**30} GiB; default 10)")
    parser.set_defaults(run=run)
