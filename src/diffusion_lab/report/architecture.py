"""The UNet architecture figures and tables (B1.1, B2.1, B2.4), laid out from a traced model.

Everything here reads the trace that `experiments.partb_architecture.trace_unet` recorded from a
forward pass (a run's metrics): block names, the shapes they returned, their parameter counts
and what feeds what. Nothing about the UNet is written down here, so a change to the model
shows up in its diagram and tables.

The diagram puts each node of the image path in its own column, in execution order, on the row
of its output's resolution (28x28 at the top): the encoder walks down, the decoder walks up, and
an input that comes from further back than the previous column (a skip connection into a
concatenation) is drawn as an arc above the row it joins. The conditioning branches (the
FCBlocks of t and c) hang below the node where their vector enters the image path.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch  # noqa: E402

from diffusion_lab.report.page import Page  # noqa: E402
from diffusion_lab.runcache.runs import RunRecord  # noqa: E402

IMAGE_INPUT = "x"
OPERATION_KINDS = ("concat", "scale", "shift", "function")
_SYMBOLS = {"concat": "C", "scale": "×", "shift": "+", "function": "f"}

# Layout units (one unit = _INCHES inches on the picture).
_BLOCK_W, _END_W, _OP_W, _CONDITION_W, _GAP = 1.16, 0.78, 0.42, 1.1, 0.22
_ROW_H, _BLOCK_H, _CONDITION_DROP = 1.3, 0.66, 0.95
_INCHES, _DPI = 0.78, 150
_PNG_METADATA = {"Software": None}
_PALETTE = ("#c6dbef", "#fdd0a2", "#c7e9c0", "#dadaeb", "#fcbba1", "#d9d9d9", "#bcbddc", "#fee391", "#ccebc5")
_CONDITION_COLORS = ("#fd8d3c", "#41ab5d", "#807dba", "#e7298a")


# --- reading a trace -----------------------------------------------------------------------------


def nodes_by_name(trace: dict) -> dict[str, dict]:
    return {node["name"]: node for node in trace["nodes"]}


def on_image_path(node: dict) -> bool:
    """Whether a node's value depends on the image input (the encoder/decoder, not a conditioning branch)."""
    return IMAGE_INPUT in node["depends_on"]


def image_path(trace: dict) -> list[dict]:
    return [node for node in trace["nodes"] if on_image_path(node)]


def condition_inputs(trace: dict) -> list[str]:
    """The model's inputs besides the image, in signature order: ["t"], ["t", "c"] or []."""
    return [spec["name"] for spec in trace["inputs"] if spec["name"] != IMAGE_INPUT]


def resolution(shape: list[int]) -> int | None:
    """The height of an (N, C, H, W) shape, None for a vector."""
    return shape[2] if shape is not None and len(shape) == 4 else None


def units_of(count: int, d: int) -> str:
    """A channel count in units of the width D: 64 -> "D" and 128 -> "2D" for D = 64; 1 -> "1"."""
    if count >= d and count % d == 0:
        return "D" if count == d else f"{count // d}D"
    return str(count)


def shape_text(shape: list[int] | None) -> str:
    """(1, 64, 7, 7) -> "64 × 7 × 7", (1, 128) -> "128": the batch dimension left out."""
    return "–" if shape is None else " × ".join(str(size) for size in shape[1:])


@dataclass(frozen=True)
class ConditionEntry:
    """Where a conditioning input enters the image path: `vector` (the block that embeds `source`)
    is applied by `node` (a scale or shift) to the output of `target` (an image-path block)."""

    source: str
    vector: str
    node: str
    kind: str
    target: str
    shape: list[int]


def condition_entries(trace: dict) -> list[ConditionEntry]:
    """Every point where a value computed from t or c alone joins the image path, in execution order."""
    by_name = nodes_by_name(trace)
    found = []
    for node in image_path(trace):
        for source in node["inputs"]:
            if on_image_path(by_name[source]):
                continue
            feature = next((name for name in node["inputs"] if on_image_path(by_name[name])), None)
            # Through the other scales and shifts to the block whose output they modulate.
            while feature is not None and by_name[feature]["kind"] in ("scale", "shift"):
                feature = next(name for name in by_name[feature]["inputs"] if on_image_path(by_name[name]))
            (origin,) = by_name[source]["depends_on"]
            found.append(ConditionEntry(origin, source, node["name"], node["kind"], feature, node["shape"]))
    return found


def skip_connections(trace: dict) -> list[tuple[str, str]]:
    """(source, concatenation) for every input of a concatenation that is not the node just before it
    on the image path: the encoder outputs carried across to the decoder."""
    path = [node["name"] for node in image_path(trace)]
    found = []
    for column, name in enumerate(path):
        node = nodes_by_name(trace)[name]
        if node["kind"] != "concat":
            continue
        found += [(source, name) for source in node["inputs"]
                  if source in path and path.index(source) < column - 1]
    return found


# --- tables --------------------------------------------------------------------------------------

BLOCK_TABLE_HEADERS = ["Block", "Operation", "Inputs", "Output shape", "Parameters"]
BLOCK_TABLE_ALIGN = ["---", "---", "---", "---", "---:"]
OPERATION_TABLE_HEADERS = ["Operation", "Definition", "Effect", "First used at", "Shapes there"]


def operation_text(node: dict, trace: dict) -> str:
    """"ConvBlock(1 → D)", "UpBlock(4D → D)", "FCBlock(1 → 2D)", "Flatten(2D)", "Concat"."""
    if node["kind"] != "block":
        return node["op"]
    by_name = nodes_by_name(trace)
    d = trace["num_hiddens"]
    width_in = sum(_width(by_name[source]["shape"]) for source in node["inputs"])
    width_out = _width(node["shape"])
    if width_in == width_out:
        return f"{node['op']}({units_of(width_in, d)})"
    return f"{node['op']}({units_of(width_in, d)} → {units_of(width_out, d)})"


def _width(shape: list[int]) -> int:
    """Channels of an image tensor, features of a vector (N, F) or of a column (N, 1)."""
    return shape[1] if len(shape) >= 2 else 1


def block_rows(trace: dict) -> list[list[str]]:
    """One row per block and per operation between blocks, in execution order, then the total,
    which must equal the model's own parameter count."""
    rows = []
    total = 0
    for node in trace["nodes"]:
        if node["kind"] in ("input", "output"):
            continue
        total += node["parameters"]
        rows.append([f"`{node['name']}`", operation_text(node, trace), ", ".join(f"`{name}`" for name in node["inputs"]),
                     shape_text(node["shape"]), f"{node['parameters']:,}"])
    if total != trace["num_parameters"]:
        raise ValueError(f"the blocks hold {total:,} parameters, the model {trace['num_parameters']:,}")
    rows.append(["**total**", "", "", "", f"**{total:,}**"])
    return rows


def effect_text(input_shapes: list[list[int]], shape: list[int], d: int) -> str:
    """What an operation does to its (first) input, from the shapes it saw: channels and resolution."""
    widths = " + ".join(units_of(_width(s), d) for s in input_shapes)
    change = f"{widths} → {units_of(_width(shape), d)} {'channels' if len(shape) == 4 else 'features'}"
    before, after = resolution(max(input_shapes, key=len)), resolution(shape)
    if before is None or after is None:
        return change
    if before == after:
        return f"{change}, keeps {after}×{after}"
    return f"{change}, {before}×{before} → {after}×{after}"


def operation_rows(trace: dict, new_since: dict | None = None) -> list[list[str]]:
    """The operations the model uses (only those `new_since`'s model lacks, when given), as the
    write-up's table of operations: definition, effect on the shapes of their first use."""
    known = {op["name"] for op in new_since["operations"]} if new_since is not None else set()
    d = trace["num_hiddens"]
    return [
        [f"**{op['name']}**", op["definition"],
         effect_text(op["input_shapes"], op["shape"], d) if op["kind"] in ("module", "concat") else op["description"],
         f"`{op['example']}`",
         ", ".join(shape_text(s) for s in op["input_shapes"]) + " → " + shape_text(op["shape"])]
        for op in trace["operations"] if op["name"] not in known
    ]


def additions_text(trace: dict, since: dict) -> str:
    """What `trace`'s model has that `since`'s lacks: "the blocks `t1` and `t2` (FCBlock) and the
    operation Shift (+)"."""
    known_blocks = {node["name"] for node in since["nodes"] if node["kind"] == "block"}
    by_class: dict[str, list[str]] = {}
    for node in trace["nodes"]:
        if node["kind"] == "block" and node["name"] not in known_blocks:
            by_class.setdefault(node["op"], []).append(f"`{node['name']}`")
    known_operations = {op["name"] for op in since["operations"]}
    arithmetic = [op["name"] for op in trace["operations"]
                  if op["kind"] in OPERATION_KINDS and op["name"] not in known_operations]
    parts = [f"the block{'s' if len(names) > 1 else ''} {_and(names)} ({op})" for op, names in by_class.items()]
    if arithmetic:
        parts.append(f"the operation{'s' if len(arithmetic) > 1 else ''} {_and(arithmetic)}")
    return _and(parts) or "nothing"


def _and(items: list[str]) -> str:
    """"a", "a and b", "a, b and c"; "" for none."""
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


# --- the diagram ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Box:
    """A node of the diagram: `kind` is a trace kind, "condition" (a t or c embedding block) or
    "condition-input" (t or c itself, under its embedding); x, y the centre, in layout units."""

    name: str
    kind: str
    lines: tuple[str, ...]
    x: float
    y: float
    width: float
    height: float
    color: str


@dataclass(frozen=True)
class Arrow:
    """source -> target: "flow" (to the next column), "skip" (from further back) or "condition"."""

    source: str
    target: str
    kind: str
    color: str = "#444444"


@dataclass(frozen=True)
class Diagram:
    boxes: tuple[Box, ...]
    arrows: tuple[Arrow, ...]
    rows: tuple[int, ...]  # the resolutions of the rows, top to bottom

    def box(self, name: str) -> Box:
        return next(box for box in self.boxes if box.name == name)


def diagram_layout(trace: dict) -> Diagram:
    """Where every node of the trace goes, and the arrows between them (see the module docstring)."""
    by_name = nodes_by_name(trace)
    path = image_path(trace)
    sizes = sorted({resolution(node["shape"]) for node in path if resolution(node["shape"])}, reverse=True)
    conditions = condition_inputs(trace)
    condition_color = {name: _CONDITION_COLORS[i % len(_CONDITION_COLORS)] for i, name in enumerate(conditions)}
    block_colors: dict[str, str] = {}

    boxes: list[Box] = []
    arrows: list[Arrow] = []
    x = 0.0
    row = 0
    for column, node in enumerate(path):
        if resolution(node["shape"]):
            row = sizes.index(resolution(node["shape"]))
        y = -row * _ROW_H
        hanging = [source for source in node["inputs"] if not on_image_path(by_name[source])]
        own = {"input": _END_W, "output": _END_W}.get(node["kind"], _OP_W if node["kind"] in OPERATION_KINDS else _BLOCK_W)
        width = max(own, _CONDITION_W * len(hanging) + _GAP * (len(hanging) - 1))
        centre = x + width / 2
        x += width + _GAP
        if node["kind"] in OPERATION_KINDS:
            # Below the circle its output shape, unless a conditioning arrow comes up there.
            lines = (_SYMBOLS[node["kind"]],) + (() if hanging else (_compact(node["shape"]),))
            boxes.append(Box(node["name"], node["kind"], lines, centre, y, _OP_W, _OP_W, "#ffffff"))
        elif node["kind"] in ("input", "output"):
            boxes.append(Box(node["name"], node["kind"], (node["name"], _compact(node["shape"])), centre, y, own,
                             _BLOCK_H * 0.75, "#fff7bc"))
        else:
            color = block_colors.setdefault(node["op"], _PALETTE[len(block_colors) % len(_PALETTE)])
            boxes.append(Box(node["name"], node["kind"], _block_lines(node, trace), centre, y, own, _BLOCK_H, color))
        for k, vector in enumerate(hanging):
            vx = centre - (len(hanging) - 1) * (_CONDITION_W + _GAP) / 2 + k * (_CONDITION_W + _GAP)
            vy = y - _CONDITION_DROP
            (origin,) = by_name[vector]["depends_on"]
            color = condition_color[origin]
            boxes.append(Box(vector, "condition", _block_lines(by_name[vector], trace), vx, vy, _CONDITION_W, _BLOCK_H,
                             _lighter(color)))
            boxes.append(Box(f"{vector}:{origin}", "condition-input", (origin,), vx, vy - 0.62, 0.34, 0.3, color))
            arrows.append(Arrow(f"{vector}:{origin}", vector, "condition", color))
            arrows.append(Arrow(vector, node["name"], "condition", color))
        for source in node["inputs"]:
            if source in hanging:
                continue
            back = column - next(i for i, other in enumerate(path) if other["name"] == source)
            arrows.append(Arrow(source, node["name"], "flow" if back == 1 else "skip"))
    return Diagram(tuple(boxes), tuple(arrows), tuple(sizes))


def _compact(shape: list[int]) -> str:
    """(1, 64, 7, 7) -> "64×7×7": shape_text without spaces, for the diagram."""
    return shape_text(shape).replace(" × ", "×")


def _block_lines(node: dict, trace: dict) -> tuple[str, str, str]:
    """A block's three lines: its class, "name · in → out" (channels in units of D), its output shape."""
    mapping = operation_text(node, trace).removeprefix(node["op"]).strip("()")
    return node["op"], f"{node['name']} · {mapping}", _compact(node["shape"])


def _lighter(color: str) -> str:
    """The colour mixed halfway with white."""
    rgb = [int(color[i:i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{(channel + 255) // 2:02x}" for channel in rgb)


def architecture_png(trace: dict) -> bytes:
    """The diagram of a traced UNet as PNG bytes (same trace, same bytes)."""
    diagram = diagram_layout(trace)
    boxes = {box.name: box for box in diagram.boxes}
    left = min(box.x - box.width / 2 for box in diagram.boxes) - 0.2
    right = max(box.x + box.width / 2 for box in diagram.boxes) + 0.2
    bottom = min(box.y - box.height / 2 for box in diagram.boxes) - 0.15
    top = _ROW_H / 2 + _BLOCK_H / 2 + 0.1
    fig, ax = plt.subplots(figsize=((right - left) * _INCHES, (top - bottom) * _INCHES))
    ax.set_xlim(left, right)
    ax.set_ylim(bottom, top)
    ax.set_aspect("equal")
    ax.axis("off")

    for size, index in zip(diagram.rows, range(len(diagram.rows))):
        ax.text(left + 0.05, -index * _ROW_H + _BLOCK_H / 2 + 0.08, f"{size}×{size}", fontsize=6.5,
                color="#888888", ha="left", va="bottom")
    skip_heights: dict[float, int] = {}
    for arrow in diagram.arrows:
        _draw_arrow(ax, boxes[arrow.source], boxes[arrow.target], arrow, skip_heights)
    for box in diagram.boxes:
        _draw_box(ax, box)

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=_DPI, metadata=_PNG_METADATA, bbox_inches="tight", pad_inches=0.05)
    plt.close(fig)
    return buffer.getvalue()


def _draw_box(ax, box: Box) -> None:
    if box.kind in OPERATION_KINDS:
        ax.add_patch(Circle((box.x, box.y), box.width / 2, facecolor=box.color, edgecolor="#444444", linewidth=0.9,
                            zorder=3))
        ax.text(box.x, box.y, box.lines[0], ha="center", va="center", fontsize=8, weight="bold", zorder=4)
        if len(box.lines) > 1:
            ax.text(box.x, box.y - box.height / 2 - 0.05, box.lines[1], ha="center", va="top", fontsize=5.2, zorder=4,
                    color="#444444")
        return
    edge = "#444444" if box.kind != "condition-input" else box.color
    ax.add_patch(FancyBboxPatch((box.x - box.width / 2, box.y - box.height / 2), box.width, box.height,
                                boxstyle="round,pad=0,rounding_size=0.08", facecolor=box.color, edgecolor=edge,
                                linewidth=0.9, zorder=3))
    if box.kind == "condition-input":
        ax.text(box.x, box.y, box.lines[0], ha="center", va="center", fontsize=8, weight="bold", color="white", zorder=4)
        return
    step = 0.19
    for k, line in enumerate(box.lines):
        ax.text(box.x, box.y + (len(box.lines) - 1) * step / 2 - k * step, line, ha="center", va="center",
                fontsize=6.4 if k == 0 else 5.2, weight="bold" if k == 0 else "normal", zorder=4)


def _draw_arrow(ax, source: Box, target: Box, arrow: Arrow, skip_heights: dict[float, int]) -> None:
    style = dict(arrowstyle="-|>", mutation_scale=7, color=arrow.color, linewidth=0.9, zorder=2,
                 shrinkA=0, shrinkB=0)
    if arrow.kind == "condition":
        ax.add_patch(FancyArrowPatch((source.x, source.y + source.height / 2),
                                     (target.x, target.y - target.height / 2), **style))
        return
    if arrow.kind == "flow":
        ax.add_patch(FancyArrowPatch((source.x + source.width / 2, source.y),
                                     (target.x - target.width / 2, target.y), **style))
        return
    # A skip: up from the source, along above its row, down into the target.
    level = max(source.y, target.y)
    lift = _ROW_H / 2 + 0.1 * skip_heights.get(level, 0)
    skip_heights[level] = skip_heights.get(level, 0) + 1
    route_y = level + lift - 0.05
    xs = [source.x, source.x, target.x]
    ys = [source.y + source.height / 2, route_y, route_y]
    ax.plot(xs, ys, color="#777777", linewidth=0.9, linestyle=(0, (3, 2)), zorder=1)
    ax.add_patch(FancyArrowPatch((target.x, route_y), (target.x, target.y + target.height / 2),
                                 **dict(style, color="#777777")))


# --- on a page -----------------------------------------------------------------------------------


def architecture_figure(page: Page, run: RunRecord, caption: str) -> None:
    page.figure(architecture_png(run.metrics), caption, run, alt=f"Diagram of the {run.metrics['model']}")


def block_table(page: Page, run: RunRecord, caption: str) -> None:
    page.table(BLOCK_TABLE_HEADERS, block_rows(run.metrics), caption, run, align=BLOCK_TABLE_ALIGN)


def operations_table(page: Page, run: RunRecord, caption: str, new_since: RunRecord | None = None) -> None:
    page.table(OPERATION_TABLE_HEADERS, operation_rows(run.metrics, new_since.metrics if new_since else None),
               caption, run if new_since is None else [run, new_since])


def condition_sentence(trace: dict) -> str:
    """How t and c enter, from the trace: "t goes through `t1` (FCBlock(1 → 2D)), which shifts the
    output of `unflatten` (2D × 7 × 7); ..."; empty for a model without conditioning inputs."""
    by_name = nodes_by_name(trace)
    parts = [
        f"{entry.source} goes through `{entry.vector}` ({operation_text(by_name[entry.vector], trace)}), which "
        f"{_VERBS[entry.kind]} the output of `{entry.target}` ({shape_text(entry.shape)})"
        for entry in condition_entries(trace)
    ]
    return "; ".join(parts)


_VERBS = {"scale": "scales (×)", "shift": "shifts (+)", "concat": "is concatenated with", "function": "is combined with"}


def entry_summary(trace: dict) -> str:
    """Each conditioning input with what it does where: "c scales (×) the outputs of `unflatten` and
    `up1`; t shifts (+) the outputs of `unflatten` and `up1`"."""
    grouped: dict[tuple[str, str], list[str]] = {}
    for entry in condition_entries(trace):
        grouped.setdefault((entry.source, entry.kind), []).append(f"`{entry.target}`")
    return "; ".join(
        f"{source} {_VERBS[kind]} the output{'s' if len(targets) > 1 else ''} of {' and '.join(targets)}"
        for (source, kind), targets in grouped.items()
    )


def input_width(trace: dict, name: str) -> int:
    """The size of the model input `name` past the batch: 10 for a one-hot c over 10 classes."""
    for spec in trace["inputs"]:
        if spec["name"] == name:
            return spec["shape"][-1]
    raise ValueError(f"the {trace['model']} has no input {name!r}")


def resolution_walk(trace: dict) -> str:
    """The resolutions the image path visits, in order, each once per stretch: "28 → 14 → 7 → 1 → 7 → 14 → 28"."""
    walk: list[int] = []
    for node in image_path(trace):
        size = resolution(node["shape"])
        if size is not None and (not walk or walk[-1] != size):
            walk.append(size)
    return " → ".join(str(size) for size in walk)
