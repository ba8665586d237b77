"""`python -m diffusion_lab edit ...` and `... illusion ...` on the tiny profile: outputs and refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from diffusion_lab.cli import main

REPO = Path(__file__).resolve().parents[1]
DRAWN = str(REPO / "docs/inputs/hand-drawn-3.png")
MASK = str(REPO / "docs/inputs/mask-bottom-half.png")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One cache for the module: the tiny class-conditioned UNet is trained once."""
    return str(tmp_path_factory.mktemp("cli-parta-cache"))


@pytest.fixture(autouse=True)
def cpu(monkeypatch):
    monkeypatch.setenv("DIFFUSION_LAB_DEVICE", "cpu")
    monkeypatch.delenv("DIFFUSION_LAB_BACKEND", raising=False)


def _common(cache, out):
    return ["--profile", "tiny", "--seed", "0", "--cache-dir", cache, "--out", str(out)]


@pytest.mark.parametrize(
    "argv",
    [
        ["edit", "sdedit", "--image", DRAWN, "--i-start", "3"],
        ["edit", "img2img", "--image", DRAWN, "--prompt", "a handwritten 8", "--i-start", "5"],
        ["edit", "inpaint", "--image", DRAWN, "--mask", MASK, "--prompt", "3"],
        ["illusion", "anagram", "--prompts", "a handwritten 6", "a handwritten 9", "--view", "rot180"],
        ["illusion", "anagram", "--prompts", "1", "7", "--view", "patch"],
        ["illusion", "anagram", "--prompts", "0", "8", "--view", "negate"],
        ["illusion", "hybrid", "--prompts", "1", "7"],
    ],
    ids=["sdedit", "img2img", "inpaint", "anagram", "anagram-patch", "anagram-negate", "hybrid"],
)
def test_each_command_writes_a_png_of_the_models_size(argv, tmp_path, cache, capsys):
    out = tmp_path / "out.png"
    assert main(argv + _common(cache, out)) == 0, capsys.readouterr().err
    with Image.open(out) as picture:
        assert picture.format == "PNG" and picture.size == (28, 28) and picture.mode == "L"
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"], "no temporary files left behind"
    again = tmp_path / "again.png"
    assert main(argv + _common(cache, again)) == 0
    assert np.array_equal(np.asarray(Image.open(again)), np.asarray(Image.open(out))), "same seed, same image"


def test_inpainting_keeps_the_pixels_outside_the_mask(tmp_path, cache):
    out = tmp_path / "out.png"
    assert main(["edit", "inpaint", "--image", DRAWN, "--mask", MASK] + _common(cache, out)) == 0
    kept = np.asarray(Image.open(MASK)) < 128
    assert np.array_equal(np.asarray(Image.open(out))[kept], np.asarray(Image.open(DRAWN))[kept])


def _png(path: Path, size: tuple[int, int]) -> None:
    Image.new("L", size, 0).save(path)


def _bad_inputs(tmp_path: Path, write: bool = True) -> dict[str, tuple[list[str], str]]:
    garbage, big, small_mask = tmp_path / "garbage.png", tmp_path / "big.png", tmp_path / "small-mask.png"
    if write:
        garbage.write_bytes(b"not a png at all")
        _png(big, (32, 32))
        _png(small_mask, (14, 14))
    return {
        "missing image": (["edit", "sdedit", "--image", str(tmp_path / "nope.png")], "does not exist"),
        "unreadable image": (["edit", "sdedit", "--image", str(garbage)], "cannot read"),
        "wrong size": (["edit", "sdedit", "--image", str(big)], "takes 28x28"),
        "missing mask file": (["edit", "inpaint", "--image", DRAWN, "--mask", str(tmp_path / "nope.png")],
                              "does not exist"),
        "mask size": (["edit", "inpaint", "--image", DRAWN, "--mask", str(small_mask)], "is 14x14 but --image"),
        "no mask for inpaint": (["edit", "inpaint", "--image", DRAWN], "inpaint needs --mask"),
        "mask for sdedit": (["edit", "sdedit", "--image", DRAWN, "--mask", MASK], "only for inpaint"),
        "unknown prompt": (["edit", "img2img", "--image", DRAWN, "--prompt", "a rocket ship"],
                           "does not understand the prompt 'a rocket ship'"),
        "img2img without prompt": (["edit", "img2img", "--image", DRAWN], "img2img needs --prompt"),
        "i_start too large": (["edit", "sdedit", "--image", DRAWN, "--i-start", "20"], "--i-start must lie in 0..19"),
        "i_start negative": (["edit", "sdedit", "--image", DRAWN, "--i-start", "-1"], "--i-start must lie in 0..19"),
        "not a png out": (["edit", "sdedit", "--image", DRAWN, "--out", str(tmp_path / "out.jpg")], "must end in .png"),
        "unknown illusion prompt": (["illusion", "anagram", "--prompts", "6", "a rocket ship"],
                                    "does not understand"),
        "view for hybrid": (["illusion", "hybrid", "--prompts", "1", "7", "--view", "flip"], "only for anagram"),
        "unknown view": (["illusion", "anagram", "--prompts", "6", "9", "--view", "rot45"], "invalid choice"),
        "one prompt": (["illusion", "anagram", "--prompts", "6"], "expected 2 arguments"),
    }


BAD = list(_bad_inputs(Path("unused"), write=False))


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_one_line_exit_2_no_file_no_work(case, tmp_path, capsys):
    argv, message = _bad_inputs(tmp_path)[case]
    cache = tmp_path / "cache"
    out = tmp_path / "out.png"
    tail = ["--profile", "tiny", "--cache-dir", str(cache)] + ([] if "--out" in argv else ["--out", str(out)])
    assert main(argv + tail) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not out.exists() and not (tmp_path / "out.jpg").exists()
    assert not (cache / "runs").exists(), "refused before any training or sampling"


def _same_digit_in_other_formats(tmp_path: Path) -> dict[str, Path]:
    """hand-drawn-3 as a 16-bit PNG, a float TIFF and a black-ink canvas export (drawing in alpha)."""
    levels = np.asarray(Image.open(DRAWN))
    rgba = np.zeros(levels.shape + (4,), dtype=np.uint8)
    rgba[..., 3] = levels
    files = {"16-bit": tmp_path / "deep.png", "float": tmp_path / "float.tif", "alpha": tmp_path / "canvas.png"}
    Image.fromarray(levels.astype(np.uint16) * 257).save(files["16-bit"])
    Image.fromarray(levels.astype(np.float32) / 255).save(files["float"])
    Image.fromarray(rgba, "RGBA").save(files["alpha"])
    return files


@pytest.mark.parametrize("fmt", ["16-bit", "float", "alpha"])
def test_other_pixel_formats_edit_exactly_like_the_8_bit_digit(fmt, tmp_path, cache, capsys):
    """The same digit in another format reads to the same pixels, so the same seed gives the same edit."""
    picture = _same_digit_in_other_formats(tmp_path)[fmt]
    expected, got = tmp_path / "expected.png", tmp_path / "got.png"
    assert main(["edit", "sdedit", "--image", DRAWN, "--i-start", "3"] + _common(cache, expected)) == 0
    assert main(["edit", "sdedit", "--image", str(picture), "--i-start", "3"] + _common(cache, got)) == 0, \
        capsys.readouterr().err
    assert np.array_equal(np.asarray(Image.open(got)), np.asarray(Image.open(expected)))
