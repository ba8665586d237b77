"""`python -m diffusion_lab ...`: the experiments of the site on people's own inputs.

Bad input is one line on stderr and exit code 2, and no output file; outputs are written to a
temporary file first and renamed into place, so a crash never leaves half a file behind.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Callable

from diffusion_lab.profiles import COURSE_GUIDANCE, PROFILE_NAMES

EXIT_USAGE = 2


class UsageError(Exception):
    """A problem with what the user asked for, reported as one line with exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not argparse's usage dump
        raise UsageError(f"{self.prog}: {message}")


def check_output(path: Path, suffixes: tuple[str, ...]) -> None:
    """Refuse an output path before any work is done, not after."""
    if path.suffix.lower() not in suffixes:
        raise UsageError(f"--out must end in {' or '.join(suffixes)}, got {path}")
    if not path.parent.is_dir():
        raise UsageError(f"output folder {path.parent} does not exist")


def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Call write(tmp) for a temporary file next to `path`, then rename it onto `path`."""
    path = Path(path)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=path.suffix, dir=path.parent)
    os.close(handle)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _context(args):
    from diffusion_lab.runcache.context import BuildContext

    overrides = {"seed": args.seed}
    if args.profile:
        overrides["profile"] = args.profile
    if args.cache_dir:
        overrides["cache_dir"] = Path(args.cache_dir).resolve()
    if getattr(args, "backend", None):
        overrides["backend"] = args.backend
    return BuildContext.from_env(**overrides)


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", choices=PROFILE_NAMES, help="recipe size (default: full on CUDA, else quick)")
    parser.add_argument("--seed", type=int, default=0, help="global seed every generator derives from (default 0)")
    parser.add_argument("--cache-dir", help="run cache folder (default: $DIFFUSION_LAB_CACHE or .cache)")
    parser.add_argument("--out", required=True, type=Path, help="output file")


# --- sample-digits ---------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _sample_digits(args) -> None:
    import numpy as np

    from diffusion_lab.experiments import partb, partb_models, partb_training
    from diffusion_lab.experiments.partb_sampling import partb_noise_model, sample_digits
    from diffusion_lab.mnist.ddpm import class_labels
    from diffusion_lab.seeding import make_generator

    check_output(args.out, (".npz",))
    ctx = _context(args)
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


def _add_sample_digits(commands) -> None:
    parser = commands.add_parser("sample-digits", help="class-conditioned MNIST samples with classifier-free guidance")
    _add_common(parser)
    parser.add_argument("--guidance", type=float, default=COURSE_GUIDANCE,
                        help=f"CFG scale g (default {COURSE_GUIDANCE:g}, the course's)")
    parser.add_argument("--per-class", type=_positive_int, default=10, help="samples of each digit (default 10)")
    parser.set_defaults(run=_sample_digits)


# --- edit / illusion: Part A on people's own images and prompts ----------------------------------
#
# Images must already have the model's size (28x28 for MNIST, IF stage I's 64x64): a resize would
# silently change what is being edited, so a wrong size is an error that names the right one.
# Every check (files, sizes, prompts, i_start) runs before the model is trained or sampled.

EDIT_MODES = ("sdedit", "inpaint", "img2img")
ILLUSION_KINDS = ("anagram", "hybrid")


def _read_picture(path: Path, option: str, channels: int = 1):
    from diffusion_lab.experiments.parta_inputs import InputError, read_picture

    try:
        return read_picture(path, channels)
    except InputError as error:
        raise UsageError(f"{option}: {error}") from None


def _size(picture) -> str:
    return f"{picture.shape[-1]}x{picture.shape[-2]}"


def _part_a_backend(args):
    """(ctx, plan, handle) for the command; a DeepFloyd model that cannot load is a usage error."""
    from diffusion_lab.experiments.parta_backend import backend_for
    from diffusion_lab.experiments.parta_plan import plan_for

    ctx = _context(args)
    handle = backend_for(ctx)
    try:
        _ = handle.sample_shape  # MNIST: known without training; DeepFloyd: loads the weights
    except (RuntimeError, ValueError, OSError) as error:
        raise UsageError(f"cannot load the {ctx.backend} backend: {str(error).splitlines()[0]}") from None
    return ctx, plan_for(ctx.backend), handle


def _check_prompts(handle, prompts) -> None:
    from diffusion_lab.backends.base import UnknownPrompt

    for prompt in prompts:
        try:
            handle.check_prompt(prompt)
        except UnknownPrompt as error:
            raise UsageError(str(error).splitlines()[0]) from None


def _write_png(path: Path, image, data_range) -> None:
    import numpy as np
    from PIL import Image

    from diffusion_lab.experiments.parta_inputs import to_unit_range

    array = (to_unit_range(image[0], data_range).permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8)
    picture = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)
    write_atomically(path, lambda tmp: picture.save(tmp, format="PNG"))


def _edit(args) -> None:
    check_output(args.out, (".png",))
    if args.mode == "inpaint" and args.mask is None:
        raise UsageError("inpaint needs --mask M.png (white = regenerate, black = keep)")
    if args.mode != "inpaint" and args.mask is not None:
        raise UsageError(f"--mask is only for inpaint, not {args.mode}")
    if args.mode == "img2img" and args.prompt is None:
        raise UsageError("img2img needs --prompt (e.g. 'a handwritten 7')")
    picture = _read_picture(args.image, "--image")
    mask = None
    if args.mask is not None:
        mask = _read_picture(args.mask, "--mask")
        if mask.shape[-2:] != picture.shape[-2:]:
            raise UsageError(f"--mask {args.mask} is {_size(mask)} but --image {args.image} is {_size(picture)}")
    ctx, plan, handle = _part_a_backend(args)
    channels, height, width = handle.sample_shape
    if tuple(picture.shape[-2:]) != (height, width):
        raise UsageError(f"--image {args.image} is {_size(picture)}; the {handle.name} model takes {width}x{height} "
                         "images (resize it first)")
    prompt = plan.generic_prompt if args.prompt is None else args.prompt
    _check_prompts(handle, [prompt])
    timesteps = handle.timesteps
    i_start = args.i_start if args.i_start is not None else (0 if args.mode == "inpaint" else 7)
    if not 0 <= i_start < len(timesteps):
        raise UsageError(f"--i-start must lie in 0..{len(timesteps) - 1} (this model has {len(timesteps)} strided "
                         f"timesteps {timesteps[0]}, ..., {timesteps[-1]}), got {i_start}")

    from diffusion_lab import editing
    from diffusion_lab.experiments.parta_inputs import mask_to_model_space, to_model_space
    from diffusion_lab.seeding import make_generator

    guidance = plan.guidance if args.guidance is None else args.guidance
    model = handle.model  # trains the MNIST model on a cache miss
    image = to_model_space(_read_picture(args.image, "--image", channels), handle.sample_shape, handle.data_range)
    generator = make_generator(ctx.seed, f"cli/edit/{args.mode}")
    condition = model.encode(prompt)
    if mask is not None:
        result = editing.inpaint(model, image, mask_to_model_space(mask, handle.sample_shape), condition, generator,
                                 i_start=i_start, guidance=guidance)
    else:
        result = editing.sdedit(model, image, i_start, condition, generator, guidance=guidance)
    _write_png(args.out, result.cpu(), handle.data_range)
    print(f"wrote {args.out}: {args.mode} of {args.image} from i_start {i_start} (t = {timesteps[i_start]}), "
          f"prompt {prompt!r}, g = {guidance:g}, seed {ctx.seed}; {handle.label}", file=sys.stderr)


def _add_edit(commands) -> None:
    parser = commands.add_parser("edit", help="SDEdit, inpainting or text-conditional image-to-image on your image")
    parser.add_argument("mode", choices=EDIT_MODES)
    parser.add_argument("--image", required=True, type=Path,
                        help="input PNG/JPEG, exactly the model's size (28x28 for MNIST; read as grayscale there)")
    parser.add_argument("--mask", type=Path, help="inpaint only: same size as --image, white = regenerate")
    parser.add_argument("--prompt", help="sdedit/inpaint: default the site's generic prompt ('' on MNIST); "
                                         "img2img: required, e.g. 'a handwritten 7'")
    parser.add_argument("--i-start", type=int, help="index into the strided timesteps (default 7; inpaint 0)")
    _add_part_a_common(parser)
    parser.set_defaults(run=_edit)


def _illusion(args) -> None:
    check_output(args.out, (".png",))
    if args.kind == "hybrid" and args.view is not None:
        raise UsageError("--view is only for anagram; a hybrid's prompts are far (first) and near (second)")
    ctx, plan, handle = _part_a_backend(args)
    _check_prompts(handle, args.prompts)

    from diffusion_lab import illusions
    from diffusion_lab.seeding import make_generator

    guidance = plan.guidance if args.guidance is None else args.guidance
    model = handle.model  # trains the MNIST model on a cache miss
    first, second = (model.encode(prompt) for prompt in args.prompts)
    generator = make_generator(ctx.seed, f"cli/illusion/{args.kind}")
    if args.kind == "anagram":
        view = args.view or "flip"
        image = illusions.visual_anagram(model, 1, first, second, generator, view=illusions.VIEWS[view],
                                         guidance=guidance)
        what = f"anagram {args.prompts[0]!r} as is / {args.prompts[1]!r} {view}"
    else:
        image = illusions.hybrid_image(model, 1, first, second, generator, guidance=guidance)
        what = f"hybrid {args.prompts[0]!r} from afar / {args.prompts[1]!r} up close"
    _write_png(args.out, image.cpu(), handle.data_range)
    print(f"wrote {args.out}: {what}, g = {guidance:g}, seed {ctx.seed}; {handle.label}", file=sys.stderr)


def _add_illusion(commands) -> None:
    parser = commands.add_parser("illusion", help="a visual anagram or a hybrid image of two prompts")
    parser.add_argument("kind", choices=ILLUSION_KINDS)
    parser.add_argument("--prompts", nargs=2, required=True, metavar=("P1", "P2"),
                        help="anagram: as is, then through --view; hybrid: from afar, then up close")
    parser.add_argument("--view", choices=("flip", "rot180"), help="anagram only (default flip: upside down)")
    _add_part_a_common(parser)
    parser.set_defaults(run=_illusion)


def _add_part_a_common(parser: argparse.ArgumentParser) -> None:
    _add_common(parser)
    parser.add_argument("--backend", choices=("mnist", "deepfloyd"),
                        help="noise model (default: $DIFFUSION_LAB_BACKEND or mnist)")
    parser.add_argument("--guidance", type=float, help="CFG scale g (default: the site's, 5 for MNIST, 7 for IF)")


# --- entry point -----------------------------------------------------------------------------

COMMANDS = [_add_sample_digits, _add_edit, _add_illusion]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="diffusion_lab", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for add in COMMANDS:
        add(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        args.run(args)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    return 0
