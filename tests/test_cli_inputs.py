"""What the CLI refuses before any work (numbers, pictures, output folder, run cache), and how
input pictures of every pixel format are read. No model is trained here: every refusal comes
before one, and the conversions are checked on `read_picture` itself."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from diffusion_lab.cli import build_parser, main
from diffusion_lab.cli.arguments import MAX_PER_CLASS, MAX_SEED
from diffusion_lab.experiments.parta_inputs import InputError, read_picture

REPO = Path(__file__).resolve().parents[1]
DRAWN = str(REPO / "docs/inputs/hand-drawn-3.png")
MASK = str(REPO / "docs/inputs/mask-bottom-half.png")

# A 28x28 "1": the digit every conversion test expects back, white strokes on black.
DIGIT = np.zeros((28, 28), dtype=np.uint8)
DIGIT[4:24, 12:16] = 255
DIGIT[6:8, 10:12] = 128  # a grey serif, so grey levels are checked too


@pytest.fixture(autouse=True)
def cpu(monkeypatch):
    monkeypatch.setenv("DIFFUSION_LAB_DEVICE", "cpu")
    monkeypatch.delenv("DIFFUSION_LAB_BACKEND", raising=False)
    monkeypatch.delenv("DIFFUSION_LAB_CACHE", raising=False)


def _can_write_in(folder: Path) -> bool:
    try:
        handle, probe = tempfile.mkstemp(dir=folder)
    except OSError:
        return False
    os.close(handle)
    os.unlink(probe)
    return True


@pytest.fixture
def unwritable(tmp_path):
    """A folder no file can be created in: a chmod 555 one, or /sys where root ignores modes."""
    folder = tmp_path / "read-only"
    (folder / "runs").mkdir(parents=True)  # a cache that holds runs, but not the one needed
    folder.chmod(0o555)
    try:
        if _can_write_in(folder):
            folder = Path("/sys")
            if not folder.is_dir() or _can_write_in(folder):
                pytest.skip("running as root with no read-only folder to test against")
        yield folder
    finally:
        (tmp_path / "read-only").chmod(0o755)


def _refused(argv: list[str], message: str, capsys, tmp_path: Path, out: Path | None = None) -> str:
    """Run the CLI in-process: exit 2, one line on stderr naming the problem, no file, no work."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert "Traceback" not in err
    if out is not None:
        assert not out.exists()
    assert not list(tmp_path.rglob("runs/*")), "refused before any training"
    assert not list(tmp_path.rglob(".write-probe-*")), "the writability probe cleans up"
    return err


COMMANDS = {
    "sample-digits": (["sample-digits"], "out.npz"),
    "edit": (["edit", "sdedit", "--image", DRAWN], "out.png"),
    "illusion": (["illusion", "hybrid", "--prompts", "1", "7"], "out.png"),
}


def _argv(command: str, tmp_path: Path, *extra: str, cache: str | None = None) -> tuple[list[str], Path]:
    head, name = COMMANDS[command]
    out = tmp_path / name
    tail = ["--profile", "tiny", "--cache-dir", cache or str(tmp_path / "cache")]
    return head + list(extra) + tail + (["--out", str(out)] if "--out" not in extra else []), out


# --- numbers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--guidance", "nan", "--guidance: must be a finite number, got nan"),
        ("--guidance", "inf", "--guidance: must be a finite number, got inf"),
        ("--guidance", "-inf", "--guidance: must be a finite number"),
        ("--guidance", "1e400", "--guidance: must be a finite number"),
        ("--guidance", "-1", "--guidance: must lie in 0..100"),
        ("--guidance", "101", "--guidance: must lie in 0..100"),
        ("--guidance", "lots", "invalid float value"),
        ("--seed", "-1", "--seed: must lie in 0..2**63-1"),
        ("--seed", str(2**63), "--seed: must lie in 0..2**63-1"),
        ("--seed", "1.5", "--seed: invalid int value"),
    ],
)
def test_numbers_must_be_finite_and_in_range(command, option, value, message, tmp_path, capsys):
    argv, out = _argv(command, tmp_path, f"{option}={value}")  # "=": argparse reads "-inf" as an option
    _refused(argv, message, capsys, tmp_path, out)


@pytest.mark.parametrize(
    "value, message",
    [
        ("0", "must be at least 1"),
        (str(10**9), f"must be at most {MAX_PER_CLASS}"),
        (str(MAX_PER_CLASS + 1), "over the 1 GiB limit"),
        ("ten", "invalid int value"),
    ],
)
def test_per_class_is_bounded_by_the_memory_limit(value, message, tmp_path, capsys):
    argv, out = _argv("sample-digits", tmp_path, "--per-class", value)
    _refused(argv, message, capsys, tmp_path, out)


def test_the_largest_allowed_numbers_parse():
    args = build_parser().parse_args(["sample-digits", "--per-class", str(MAX_PER_CLASS), "--seed", str(MAX_SEED),
                                      "--guidance", "100", "--out", "x.npz"])
    assert (args.per_class, args.seed, args.guidance) == (MAX_PER_CLASS, 2**63 - 1, 100.0)
    assert MAX_PER_CLASS * 10 * 28 * 28 * 4 <= 2**30 < (MAX_PER_CLASS + 1) * 10 * 28 * 28 * 4


# --- output folder and run cache -------------------------------------------------------------


@pytest.mark.parametrize("command", list(COMMANDS))
def test_out_in_an_unwritable_folder_is_refused_first(command, unwritable, tmp_path, capsys):
    name = COMMANDS[command][1]
    out = unwritable / name
    argv, _ = _argv(command, tmp_path, "--out", str(out))
    _refused(argv, f"cannot write --out {out}", capsys, tmp_path, out)


@pytest.mark.parametrize("command", list(COMMANDS))
def test_out_that_is_a_folder_is_refused(command, tmp_path, capsys):
    out = tmp_path / COMMANDS[command][1]
    out.mkdir()
    argv, _ = _argv(command, tmp_path, "--out", str(out))
    _refused(argv, "is a folder; give a file name", capsys, tmp_path)
    assert out.is_dir() and not list(out.iterdir())


def test_out_under_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    argv, out = _argv("sample-digits", tmp_path, "--out", str(tmp_path / "file" / "s.npz"))
    _refused(argv, "is not a folder", capsys, tmp_path)


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("where", ["file", "under a file"])
def test_cache_dir_that_is_a_file_is_refused(command, where, tmp_path, capsys):
    blocker = tmp_path / "not-a-cache"
    blocker.write_text("x")
    cache = blocker if where == "file" else blocker / "cache"
    argv, out = _argv(command, tmp_path, cache=str(cache))
    message = "is a file, not a folder" if where == "file" else f"cannot be created: {blocker} is a file"
    _refused(argv, message, capsys, tmp_path, out)


@pytest.mark.parametrize("command", list(COMMANDS))
def test_read_only_cache_without_the_model_says_where_and_why(command, unwritable, tmp_path, capsys):
    argv, out = _argv(command, tmp_path, cache=str(unwritable))
    err = _refused(argv, f"the run cache {unwritable} lacks", capsys, tmp_path, out)
    assert "cannot store it" in err and f"at {unwritable}" in err and "pass --cache-dir a writable folder" in err


# --- pictures: conversions -------------------------------------------------------------------


def _read(path: Path, channels: int = 1) -> np.ndarray:
    picture = read_picture(path, channels)
    assert picture.dtype == torch.float32 and picture.shape == (channels, 28, 28)
    return picture.numpy()


def test_16_bit_png_keeps_its_grey_levels(tmp_path):
    levels = (np.arange(28 * 28).reshape(28, 28) * 83).astype(np.uint16)  # 784 levels up to 65,000
    Image.fromarray(levels).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode == "I;16"
    got = _read(tmp_path / "deep.png")[0]
    assert np.unique(got).size == 784
    np.testing.assert_allclose(got, levels / 65535.0, rtol=0, atol=1e-7)


def test_32_bit_integer_tiff_in_16_bit_range_is_read_as_16_bit(tmp_path):
    levels = (np.arange(28 * 28).reshape(28, 28) * 83).astype(np.int32)
    Image.fromarray(levels).save(tmp_path / "int.tif")
    assert Image.open(tmp_path / "int.tif").mode == "I"
    np.testing.assert_allclose(_read(tmp_path / "int.tif")[0], levels / 65535.0, rtol=0, atol=1e-7)


def test_float_tiff_in_unit_range_is_read_as_is(tmp_path):
    values = np.linspace(0, 1, 28 * 28, dtype=np.float32).reshape(28, 28)
    Image.fromarray(values).save(tmp_path / "float.tif")
    assert np.array_equal(_read(tmp_path / "float.tif")[0], values)


@pytest.mark.parametrize("ink", [(0, 0, 0), (200, 30, 90), (255, 255, 255)], ids=["black", "red", "white"])
def test_alpha_only_drawing_reads_as_the_digit(ink, tmp_path):
    """A canvas export: one ink colour, the drawing in the alpha channel -> white strokes on black."""
    rgba = np.zeros((28, 28, 4), dtype=np.uint8)
    rgba[..., :3] = ink
    rgba[..., 3] = DIGIT
    Image.fromarray(rgba, "RGBA").save(tmp_path / "canvas.png")
    assert np.array_equal(_read(tmp_path / "canvas.png")[0], DIGIT / np.float32(255))
    assert np.array_equal(_read(tmp_path / "canvas.png", 3), np.stack([DIGIT / np.float32(255)] * 3))


def test_alpha_only_grey_drawing_reads_as_the_digit(tmp_path):
    Image.fromarray(np.stack([np.zeros_like(DIGIT), DIGIT], axis=-1), "LA").save(tmp_path / "la.png")
    assert np.array_equal(_read(tmp_path / "la.png")[0], DIGIT / np.float32(255))


def test_several_colours_with_transparency_are_composited_on_black(tmp_path):
    rgba = np.zeros((28, 28, 4), dtype=np.uint8)
    rgba[..., 3] = 255
    rgba[:14, :, :3] = 255  # white top half, opaque
    rgba[14:, :, :3] = 100  # grey bottom half, half transparent
    rgba[14:, :, 3] = 128
    Image.fromarray(rgba, "RGBA").save(tmp_path / "two.png")
    got = _read(tmp_path / "two.png")[0]
    assert np.allclose(got[:14], 1.0) and np.allclose(got[14:], 100 / 255 * 128 / 255, atol=1e-6)


def test_palette_and_one_bit_pictures(tmp_path):
    Image.fromarray(DIGIT).convert("P").save(tmp_path / "palette.png")
    Image.fromarray(DIGIT > 200).save(tmp_path / "bits.png")
    assert Image.open(tmp_path / "palette.png").mode == "P" and Image.open(tmp_path / "bits.png").mode == "1"
    assert np.array_equal(_read(tmp_path / "palette.png")[0], DIGIT / np.float32(255))
    assert np.array_equal(_read(tmp_path / "bits.png")[0], (DIGIT > 200).astype(np.float32))


def test_eight_bit_inputs_read_exactly_as_before(tmp_path):
    """Opaque 8-bit pictures still go through PIL's own conversion: the site's runs see the same pixels."""
    rgb = np.random.default_rng(0).integers(0, 256, (28, 28, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    with Image.open(tmp_path / "rgb.png") as picture:
        expected = np.asarray(picture.convert("L"), dtype=np.float32) / 255.0
    assert np.array_equal(_read(tmp_path / "rgb.png")[0], expected)
    assert np.array_equal(_read(tmp_path / "rgb.png", 3), rgb.transpose(2, 0, 1) / np.float32(255))


# --- pictures: refusals ----------------------------------------------------------------------


def _png_header(path: Path, width: int, height: int) -> Path:
    """A PNG that declares width x height but holds no pixels: PIL judges the size from the header."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b""))
                     + chunk(b"IEND", b""))
    return path


def _bad_pictures(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    Image.fromarray(np.full((28, 28), 2.0, dtype=np.float32)).save(tmp_path / "bright.tif")
    Image.fromarray(np.full((28, 28), np.nan, dtype=np.float32)).save(tmp_path / "nan.tif")
    Image.fromarray(np.full((28, 28), 70000, dtype=np.int32)).save(tmp_path / "wide.tif")
    Image.new("LAB", (28, 28)).save(tmp_path / "lab.tif")
    frames = [Image.fromarray(DIGIT), Image.fromarray(255 - DIGIT)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    return {
        "bomb": (_png_header(tmp_path / "bomb.png", 20000, 20000), "has 400,000,000 pixels; inputs may have at most"),
        "over the limit": (_png_header(tmp_path / "large.png", 4097, 4097), "is 4097x4097"),
        "float above 1": (tmp_path / "bright.tif", "holds values 2..2; a float picture must lie in [0, 1]"),
        "float nan": (tmp_path / "nan.tif", "holds NaN or infinite values"),
        "int beyond 16 bits": (tmp_path / "wide.tif", "integer pictures are read as 16-bit (0..65535)"),
        "unsupported mode": (tmp_path / "lab.tif", "pixel mode LAB, which is not supported; use 8-bit grey"),
        "animation": (tmp_path / "anim.gif", "has 2 frames"),
    }


BAD_PICTURES = ["bomb", "over the limit", "float above 1", "float nan", "int beyond 16 bits", "unsupported mode",
                "animation"]


@pytest.mark.parametrize("case", BAD_PICTURES)
def test_bad_pictures_are_one_line(case, tmp_path, capsys):
    path, message = _bad_pictures(tmp_path)[case]
    with pytest.raises(InputError) as raised:
        read_picture(path, 1)
    assert message in str(raised.value) and len(str(raised.value).splitlines()) == 1
    argv, out = _argv("edit", tmp_path)
    argv[argv.index(DRAWN)] = str(path)
    assert message in _refused(argv, f"--image: {path}", capsys, tmp_path, out)


@pytest.mark.parametrize("kind", ["grey edge", "all grey"])
def test_soft_masks_are_refused(kind, tmp_path, capsys):
    mask = np.zeros((28, 28), dtype=np.uint8)
    mask[14:] = 255
    if kind == "grey edge":
        mask[13] = 128  # an antialiased edge
    else:
        mask[:] = 200
    Image.fromarray(mask).save(tmp_path / "soft.png")
    argv, out = _argv("edit", tmp_path, "--mask", str(tmp_path / "soft.png"))
    argv[1] = "inpaint"
    err = _refused(argv, f"--mask {tmp_path / 'soft.png'}: ", capsys, tmp_path, out)
    assert "grey pixels" in err and "threshold it first" in err


def test_a_decompression_bomb_is_one_line_from_the_real_command(tmp_path):
    """The one check in a subprocess: exit code, stderr and no traceback as a user sees them."""
    bomb = _png_header(tmp_path / "bomb.png", 20000, 20000)
    argv, out = _argv("edit", tmp_path)
    argv[argv.index(DRAWN)] = str(bomb)
    done = subprocess.run([sys.executable, "-m", "diffusion_lab", *argv], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120, env={**os.environ, "DIFFUSION_LAB_DEVICE": "cpu"})
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "has 400,000,000 pixels" in done.stderr, done.stderr
    assert not out.exists()
