"""How the static Part A inputs in this folder were made (run once; the PNGs are committed).

The "hand-drawn" digits are pen strokes, given as the points a mouse would record, drawn with a
round brush on a 112x112 canvas and reduced to 28x28 like MNIST; they are not MNIST digits.
The "web" digit is a 2 typed in DejaVu Serif Bold (the font matplotlib ships), a style MNIST
never shows. Masks are white where inpainting regenerates and black where the original is kept.
"""

import os

import matplotlib
from PIL import Image, ImageDraw, ImageFilter, ImageFont

CANVAS = 112
BRUSH = 13
STROKES = {
    "hand-drawn-3.png": [
        [(34, 26), (46, 18), (62, 17), (75, 24), (77, 37), (68, 49), (54, 54)],
        [(54, 54), (70, 57), (80, 68), (79, 83), (68, 93), (50, 95), (35, 88)],
    ],
    "hand-drawn-4.png": [
        [(66, 18), (52, 40), (38, 62), (33, 70), (60, 69), (86, 67)],
        [(70, 44), (69, 64), (68, 84), (67, 97)],
    ],
    "hand-drawn-0.png": [
        [(58, 18), (44, 23), (35, 38), (32, 58), (36, 78), (48, 92), (62, 94), (75, 84), (81, 64), (79, 42), (71, 25), (58, 18)],
    ],
}
MASKS = {
    "mask-bottom-half.png": (0, 14, 27, 27),
    "mask-center-square.png": (8, 8, 19, 19),
    "mask-right-half.png": (14, 0, 27, 27),
}


def draw_strokes(paths) -> Image.Image:
    canvas = Image.new("L", (CANVAS, CANVAS), 0)
    pen = ImageDraw.Draw(canvas)
    for path in paths:
        pen.line(path, fill=255, width=BRUSH, joint="curve")
        for x, y in (path[0], path[-1]):
            pen.ellipse([x - BRUSH / 2, y - BRUSH / 2, x + BRUSH / 2, y + BRUSH / 2], fill=255)
    return canvas.filter(ImageFilter.GaussianBlur(1.2)).resize((28, 28), Image.LANCZOS)


def typed_digit(digit: str) -> Image.Image:
    font_path = os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data/fonts/ttf/DejaVuSerif-Bold.ttf")
    canvas = Image.new("L", (CANVAS, CANVAS), 0)
    pen = ImageDraw.Draw(canvas)
    font = ImageFont.truetype(font_path, 84)
    left, top, right, bottom = pen.textbbox((0, 0), digit, font=font)
    pen.text(((CANVAS - (right - left)) / 2 - left, (CANVAS - (bottom - top)) / 2 - top), digit, font=font, fill=255)
    return canvas.resize((28, 28), Image.LANCZOS)


def main() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    for name, paths in STROKES.items():
        draw_strokes(paths).save(os.path.join(here, name))
    typed_digit("2").save(os.path.join(here, "web-typed-2.png"))
    for name, box in MASKS.items():
        mask = Image.new("L", (28, 28), 0)
        ImageDraw.Draw(mask).rectangle(box, fill=255)
        mask.save(os.path.join(here, name))


if __name__ == "__main__":
    main()
