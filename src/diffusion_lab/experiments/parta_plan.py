"""What Part A shows, per backend, as data: prompts, images, i_starts, guidance, illusion pairs.

The page scripts read a plan and lay out what the runs made from it; they never branch on the
backend. The `deepfloyd` plan holds the write-up's own prompts; the `mnist` plan says what each
of them becomes for a class-conditioned digit model ("a high quality photo" -> "", the
unconditional prompt; a Campanile photo -> an MNIST test digit; oil paintings -> digits).
"""

from __future__ import annotations

from dataclasses import dataclass

from diffusion_lab.profiles import COURSE_GUIDANCE

# Where images come from. Paths are relative to the repository root (the page scripts' cwd).
MNIST_TEST = "mnist-test"  # ref: index into the MNIST test set
FILE = "file"  # ref: a PNG/JPEG path, e.g. docs/inputs/hand-drawn-3.png
SAMPLE_DATA = "matplotlib-sample-data"  # ref: a file matplotlib ships, e.g. grace_hopper.jpg


@dataclass(frozen=True)
class InputImage:
    """An input picture: `id` names it in run parameters and generator names, `label` on pages."""

    id: str
    source: str
    ref: str
    label: str

    def to_dict(self) -> dict:
        return {"id": self.id, "source": self.source, "ref": self.ref}


@dataclass(frozen=True)
class Inpainting:
    image: InputImage
    mask: InputImage  # white = regenerate, black = keep


@dataclass(frozen=True)
class TextEdit:
    prompt: str
    image: InputImage


@dataclass(frozen=True)
class Anagram:
    """Reads as `prompt_1` as it is and as `prompt_2` through `view` (illusions.VIEWS)."""

    prompt_1: str
    prompt_2: str
    view: str


@dataclass(frozen=True)
class Hybrid:
    """Reads as `far` from afar (low frequencies) and as `near` up close (high frequencies)."""

    far: str
    near: str


@dataclass(frozen=True)
class PartAPlan:
    backend: str
    stock_prompts: tuple[str, ...]  # section 0: the stock pipeline (or scheduler) on these prompts
    stock_steps: tuple[int, ...]  # section 0: at each of these step counts
    stock_images_per_prompt: int
    stock_samples_note: str  # section 0: what the stock sampler's own output is called on this backend
    generic_prompt: str  # where the write-up says "a high quality photo" (1.3-1.5, 1.7-1.7.2)
    generic_prompt_note: str
    test_image: InputImage  # the write-up's Campanile (1.1-1.4, first row of 1.7)
    noise_fractions: tuple[float, ...]  # 1.1-1.3: t = fraction * T (IF: 250, 500, 750)
    iterative_i_start: int  # 1.4
    frame_every: int  # 1.4: show the noisy image every this many steps
    num_samples: int  # 1.5, 1.6
    cfg_prompts: tuple[str, ...]  # 1.6, one per sample
    guidance: float  # CFG scale from 1.6 on
    guidance_note: str
    i_starts: tuple[int, ...]  # 1.7, 1.7.1, 1.7.3: the write-up's, always shown
    # ... then every this many i_starts after them, up to the first whose edit resembles its input:
    sdedit_extension_step: int
    sdedit_resemblance: float  # "resembles": Pearson's r of edit and input at least this
    sdedit_images: tuple[InputImage, ...]  # 1.7: the test image and two more
    drawn_images: tuple[InputImage, ...]  # 1.7.1: one web-style image, two drawn ones (scripted strokes)
    inpaintings: tuple[Inpainting, ...]  # 1.7.2
    text_edits: tuple[TextEdit, ...]  # 1.7.3
    anagrams: tuple[Anagram, ...]  # 1.8
    hybrids: tuple[Hybrid, ...]  # 1.9
    illusion_candidates: int  # seeds per illusion, every one of them shown
    # 1.9: each hybrid sampled at these low-pass sigmas (pixels), hybrid_sweep_candidates seeds each;
    # the judge picks each hybrid's setting for its figures from them (empty: the scaled kernel)
    hybrid_sweep_sigmas: tuple[float, ...]
    hybrid_sweep_candidates: int
    judge: bool  # score samples and illusions with Part B's MNIST classifier
    if_schedule_photo: InputImage | None  # 1.1-1.2 also on a photo with IF's own schedule
    photo_size: int = 64


def _mnist_digit(index: int) -> InputImage:
    return InputImage(f"mnist-test-{index}", MNIST_TEST, str(index), f"MNIST test digit #{index}")


def _input_file(name: str, label: str) -> InputImage:
    return InputImage(name, FILE, f"docs/inputs/{name}.png", label)


GRACE_HOPPER = InputImage(
    "grace-hopper", SAMPLE_DATA, "grace_hopper.jpg",
    "Grace Hopper (public-domain photo shipped with matplotlib), center-cropped, 64x64",
)
WEB_TWO = _input_file("web-typed-2", "a 2 typed in DejaVu Serif Bold (web-style)")
DRAWN_THREE = _input_file("hand-drawn-3", "a 3 drawn with scripted pen strokes")
DRAWN_FOUR = _input_file("hand-drawn-4", "a 4 drawn with scripted pen strokes")
DRAWN_ZERO = _input_file("hand-drawn-0", "a 0 drawn with scripted pen strokes")
MASK_CENTER = _input_file("mask-center-square", "center-square mask")
MASK_BOTTOM = _input_file("mask-bottom-half", "bottom-half mask")
MASK_RIGHT = _input_file("mask-right-half", "right-half mask")

WRITE_UP_I_STARTS = (1, 3, 5, 7, 10, 20)

MNIST_PLAN = PartAPlan(
    backend="mnist",
    stock_prompts=("a handwritten 2", "a handwritten 5", "a handwritten 8"),
    stock_steps=(20, 300),  # the write-up's 20, and every one of the model's T = 300 steps
    stock_images_per_prompt=4,
    stock_samples_note="The DDPM's samples",  # one model at 28x28: no stages
    generic_prompt="",
    generic_prompt_note=(
        'Where the write-up conditions on "a high quality photo" (a prompt that names no content), '
        'the digit model uses the empty prompt "", its unconditional estimate.'
    ),
    test_image=_mnist_digit(0),
    noise_fractions=(0.25, 0.5, 0.75),
    iterative_i_start=10,
    frame_every=5,
    num_samples=5,
    cfg_prompts=tuple(f"a handwritten {digit}" for digit in (0, 3, 5, 7, 9)),
    guidance=COURSE_GUIDANCE,
    guidance_note=(
        "g = 5, the course's value for this model (Part B); the write-up's g = 7 is DeepFloyd IF's. "
        "[Part B's guidance sweep](../part-b/class-conditioned-ddpm.md) shows the judge's accuracy at each g."
    ),
    i_starts=WRITE_UP_I_STARTS,
    sdedit_extension_step=2,
    sdedit_resemblance=0.9,
    sdedit_images=(_mnist_digit(0), _mnist_digit(1), _mnist_digit(4)),
    drawn_images=(WEB_TWO, DRAWN_THREE, DRAWN_FOUR),
    inpaintings=(
        Inpainting(_mnist_digit(0), MASK_CENTER),
        Inpainting(_mnist_digit(1), MASK_BOTTOM),
        Inpainting(_mnist_digit(4), MASK_RIGHT),
    ),
    text_edits=(
        TextEdit("a handwritten 9", _mnist_digit(0)),
        TextEdit("a handwritten 8", DRAWN_ZERO),
        TextEdit("a handwritten 7", _mnist_digit(2)),
    ),
    anagrams=(
        Anagram("a handwritten 6", "a handwritten 9", "rot180"),
        Anagram("a handwritten 2", "a handwritten 5", "flip"),
        Anagram("a handwritten 6", "a handwritten 9", "flip"),
        # The fall 2025 course asks for views beyond the flip, from the Visual Anagrams paper's set.
        Anagram("a handwritten 4", "a handwritten 7", "rot90"),
        Anagram("a handwritten 0", "a handwritten 8", "negate"),
        Anagram("a handwritten 1", "a handwritten 7", "patch"),
    ),
    hybrids=(
        Hybrid(far="a handwritten 1", near="a handwritten 7"),
        Hybrid(far="a handwritten 0", near="a handwritten 8"),
        Hybrid(far="a handwritten 9", near="a handwritten 4"),
    ),
    illusion_candidates=8,
    # From the scaled sigma (0.875) to the write-up's unscaled 2, in steps of a quarter pixel or so.
    hybrid_sweep_sigmas=(0.875, 1.0, 1.25, 1.5, 1.75, 2.0),
    hybrid_sweep_candidates=4,
    judge=True,
    if_schedule_photo=GRACE_HOPPER,
)

# The write-up's own choices. The repo ships no Campanile, so Grace Hopper's photo stands in;
# the sketches in docs/inputs are resized to the model's size.
DEEPFLOYD_PLAN = PartAPlan(
    backend="deepfloyd",
    stock_prompts=("an oil painting of a snowy mountain village", "a man wearing a hat", "a rocket ship"),
    stock_steps=(20, 100),
    stock_images_per_prompt=1,
    stock_samples_note="Stage I",
    generic_prompt="a high quality photo",
    generic_prompt_note='As in the write-up: "a high quality photo" where it says unconditional.',
    test_image=GRACE_HOPPER,
    noise_fractions=(0.25, 0.5, 0.75),
    iterative_i_start=10,
    frame_every=5,
    num_samples=5,
    cfg_prompts=("a high quality photo",) * 5,
    guidance=7.0,
    guidance_note="g = 7, the write-up's value.",
    i_starts=WRITE_UP_I_STARTS,
    sdedit_extension_step=2,
    sdedit_resemblance=0.9,
    sdedit_images=(GRACE_HOPPER, WEB_TWO, DRAWN_THREE),
    drawn_images=(WEB_TWO, DRAWN_THREE, DRAWN_FOUR),
    inpaintings=(Inpainting(GRACE_HOPPER, MASK_CENTER), Inpainting(GRACE_HOPPER, MASK_RIGHT)),
    text_edits=(
        TextEdit("a rocket ship", GRACE_HOPPER),
        TextEdit("an oil painting of a snowy mountain village", DRAWN_ZERO),
        TextEdit("a pencil", DRAWN_FOUR),
    ),
    anagrams=(
        Anagram("an oil painting of people around a campfire", "an oil painting of an old man", "flip"),
        Anagram("an oil painting of an old man", "an oil painting of a snowy mountain village", "flip"),
        Anagram("an oil painting of people around a campfire", "an oil painting of a snowy mountain village", "flip"),
        # The fall 2025 course asks for views beyond the flip, from the Visual Anagrams paper's set.
        Anagram("an oil painting of an old man", "an oil painting of a snowy mountain village", "rot180"),
        Anagram("an oil painting of people around a campfire", "an oil painting of an old man", "rot90"),
        Anagram("a lithograph of a skull", "a lithograph of waterfalls", "negate"),
        Anagram("an oil painting of a snowy mountain village", "an oil painting of people around a campfire", "patch"),
    ),
    hybrids=(
        Hybrid(far="a lithograph of a skull", near="a lithograph of waterfalls"),
        Hybrid(far="a lithograph of a skull", near="an oil painting of people around a campfire"),
        Hybrid(far="an oil painting of an old man", near="an oil painting of a snowy mountain village"),
    ),
    illusion_candidates=4,
    hybrid_sweep_sigmas=(),
    hybrid_sweep_candidates=0,
    judge=False,
    if_schedule_photo=None,
)

PLANS = {plan.backend: plan for plan in (MNIST_PLAN, DEEPFLOYD_PLAN)}


def plan_for(backend: str) -> PartAPlan:
    try:
        return PLANS[backend]
    except KeyError:
        raise ValueError(f"no Part A plan for backend {backend!r}; plans exist for {', '.join(PLANS)}") from None
