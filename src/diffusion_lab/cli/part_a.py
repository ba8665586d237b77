"""`edit` and `illusion`: Part A's loops on people's own images and prompts, as a PNG.

Images must already have the model's size (28x28 for MNIST, IF stage I's 64x64): a resize would
silently change what is being edited, so a wrong size is an error that names the right one.
Every check (files, sizes, prompts, i_start) runs before the model is trained or sampled.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from diffusion_lab import illusions
from diffusion_lab.cli.arguments import (
    MAX_GUIDANCE,
    UsageError,
    add_common,
    build_context,
    check_output,
    guidance_scale,
    storing_runs,
    write_atomically,
)

EDIT_MODES = ("sdedit", "inpaint", "img2img")
ILLUSION_KINDS = ("anagram", "hybrid")


def _read_picture(path: Path, option: str, channels: int = 1):
    from diffusion_lab.experiments.parta_inputs import InputError, read_picture

    try:
        return read_picture(path, channels)
    except InputError as error:
        raise UsageError(f"{option}: {error}") from None


def _read_mask(path: Path):
    """The --mask picture, refused unless pure black and white (soft masks are not supported)."""
    from diffusion_lab.experiments.parta_inputs import InputError, require_binary_mask

    mask = _read_picture(path, "--mask")
    try:
        require_binary_mask(mask)
    except InputError as error:
        raise UsageError(f"--mask {path}: {error}") from None
    return mask


def _size(picture) -> str:
    return f"{picture.shape[-1]}x{picture.shape[-2]}"


def _part_a_backend(args):
    """(ctx, plan, handle) for the command; a DeepFloyd model that cannot load is a usage error."""
    from diffusion_lab.experiments.parta_backend import backend_for
    from diffusion_lab.experiments.parta_plan import plan_for

    ctx = build_context(args)
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
        mask = _read_mask(args.mask)
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
    with storing_runs(ctx.cache_dir, f"the {handle.name} model"):
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


def add_edit_command(commands) -> None:
    parser = commands.add_parser("edit", help="SDEdit, inpainting or text-conditional image-to-image on your image")
    parser.add_argument("mode", choices=EDIT_MODES)
    parser.add_argument("--image", required=True, type=Path,
                        help="input PNG/TIFF/JPEG, exactly the model's size (28x28 for MNIST, read as grayscale: "
                             "a white digit on black); 8-bit, 16-bit (0..65535) or float in [0, 1]; transparency is "
                             "composited on black, and a one-colour drawing on a transparent background (a canvas "
                             "export) is read from its alpha: opaque = white stroke; files over 4096x4096 pixels "
                             "are refused unread")
    parser.add_argument("--mask", type=Path,
                        help="inpaint only: same size as --image, pure black = keep, white = regenerate; "
                             "grey (soft) masks are refused")
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

    from diffusion_lab.seeding import make_generator

    guidance = plan.guidance if args.guidance is None else args.guidance
    with storing_runs(ctx.cache_dir, f"the {handle.name} model"):
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


def add_illusion_command(commands) -> None:
    parser = commands.add_parser("illusion", help="a visual anagram or a hybrid image of two prompts")
    parser.add_argument("kind", choices=ILLUSION_KINDS)
    parser.add_argument("--prompts", nargs=2, required=True, metavar=("P1", "P2"),
                        help="anagram: as is, then through --view; hybrid: from afar, then up close")
    parser.add_argument("--view", choices=[name for name in illusions.VIEWS if name != "identity"],
                        help="anagram only (default flip: upside down); each is an orthogonal map of the pixels")
    _add_part_a_common(parser)
    parser.set_defaults(run=_illusion)


def _add_part_a_common(parser: argparse.ArgumentParser) -> None:
    add_common(parser)
    parser.add_argument("--backend", choices=("mnist", "deepfloyd"),
                        help="noise model (default: $DIFFUSION_LAB_BACKEND or mnist)")
    parser.add_argument("--guidance", type=guidance_scale,
                        help=f"CFG scale g in 0..{MAX_GUIDANCE:g} (default: the site's, 5 for MNIST, 7 for IF)")
