"""The UNet architecture figures and tables (B1.1, B2.1, B2.4) and the algorithm boxes B.1-B.4.

The traced shapes must be the ones the blocks return in a plain forward pass (forward hooks, no
torch.fx) and the ones SPEC.md's UNet gives for a width D; the parameters must add up to the
model's count; the diagram must hold every block and every edge of the trace, with t and c
entering exactly where SPEC.md says and nowhere in the unconditional UNet.
"""

from __future__ import annotations

import inspect
import json

import markdown
import pytest
import torch

from diffusion_lab.experiments.partb_architecture import architecture_run, build_model, dummy_inputs, trace_unet
from diffusion_lab.mnist import training
from diffusion_lab.mnist.ddpm import time_conditioned_loss
from diffusion_lab.mnist.unet import ClassConditionalUNet, TimeConditionalUNet, UnconditionalUNet, count_parameters
from diffusion_lab.profiles import get_profile
from diffusion_lab.report import architecture as arch
from diffusion_lab.report.algorithm_boxes import Algorithm, algorithm_markdown
from diffusion_lab.report.mathml import render_math

WIDTHS = (8, 16)
KINDS = ("unconditional", "time", "class")
FACTORIES = {
    "unconditional": lambda d: UnconditionalUNet(in_channels=1, num_hiddens=d),
    "time": lambda d: TimeConditionalUNet(in_channels=1, num_hiddens=d),
    "class": lambda d: ClassConditionalUNet(in_channels=1, num_classes=10, num_hiddens=d),
}
# SPEC.md's UNet: (channels in units of D, or an int for a fixed count; resolution, None for a vector).
EXPECTED_BLOCKS = {
    "conv_in": ("D", 28), "down1": ("D", 14), "down2": ("2D", 7), "flatten": ("2D", 1), "unflatten": ("2D", 7),
    "up1": ("D", 14), "up2": ("D", 28), "conv_out": ("D", 28), "head": (1, 28),
}
EXPECTED_VECTORS = {"t1": "2D", "t2": "D", "c1": "2D", "c2": "D"}
# SPEC.md B2.1 and B2.4: unflatten = c1 * unflatten + t1, up1 = c2 * up1 + t2.
EXPECTED_ENTRIES = {
    "unconditional": set(),
    "time": {("t", "t1", "shift", "unflatten"), ("t", "t2", "shift", "up1")},
    "class": {("t", "t1", "shift", "unflatten"), ("t", "t2", "shift", "up1"),
              ("c", "c1", "scale", "unflatten"), ("c", "c2", "scale", "up1")},
}
WRITE_UP_OPERATIONS = ["Conv", "DownConv", "UpConv", "Flatten", "Unflatten", "Concat", "ConvBlock", "DownBlock", "UpBlock"]


def _channels(units, d: int) -> int:
    return units if isinstance(units, int) else d * (int(units[:-1]) if units[:-1] else 1)


@pytest.fixture(scope="module")
def traced():
    """(kind, D) -> (model, trace), models with a seeded init."""
    found = {}
    for kind in KINDS:
        for d in WIDTHS:
            model = training.seeded(lambda: FACTORIES[kind](d), 0, f"test/{kind}/init")
            found[kind, d] = model, trace_unet(model)
    return found


def _hooked_shapes(model: torch.nn.Module) -> dict[str, list[int]]:
    """What each top-level block returns in a plain call of the model, seen by forward hooks."""
    shapes = {}

    def record(name):
        def hook(_module, _args, output):
            shapes[name] = list(output.shape)
        return hook

    handles = [child.register_forward_hook(record(name)) for name, child in model.named_children()]
    try:
        with torch.no_grad():
            model.eval()(**dummy_inputs(model))
    finally:
        for handle in handles:
            handle.remove()
    return shapes


def _blocks(trace: dict) -> dict[str, dict]:
    return {node["name"]: node for node in trace["nodes"] if node["kind"] == "block"}


@pytest.mark.parametrize("d", WIDTHS)
@pytest.mark.parametrize("kind", KINDS)
def test_traced_shapes_are_what_the_blocks_return(traced, kind, d):
    model, trace = traced[kind, d]
    hooked = _hooked_shapes(model)
    blocks = _blocks(trace)
    assert set(blocks) == {name for name, _ in model.named_children()}
    assert {name: node["shape"] for name, node in blocks.items()} == hooked
    assert trace["nodes"][-1]["kind"] == "output" and trace["nodes"][-1]["shape"] == [1, 1, 28, 28]


@pytest.mark.parametrize("d", WIDTHS)
@pytest.mark.parametrize("kind", KINDS)
def test_traced_shapes_follow_the_width_as_spec_draws_the_unet(traced, kind, d):
    _, trace = traced[kind, d]
    blocks = _blocks(trace)
    for name, (units, size) in EXPECTED_BLOCKS.items():
        assert blocks[name]["shape"] == [1, _channels(units, d), size, size], name
    for name, units in EXPECTED_VECTORS.items():
        if name in blocks:
            assert blocks[name]["shape"] == [1, _channels(units, d)], name
    assert arch.resolution_walk(trace) == "28 → 14 → 7 → 1 → 7 → 14 → 28"
    by_name = arch.nodes_by_name(trace)
    for node in trace["nodes"]:
        if node["kind"] == "concat":
            assert node["shape"][1] == sum(by_name[source]["shape"][1] for source in node["inputs"])


@pytest.mark.parametrize("d", WIDTHS)
@pytest.mark.parametrize("kind", KINDS)
def test_parameters_add_up_to_the_models_count(traced, kind, d):
    model, trace = traced[kind, d]
    assert trace["num_parameters"] == count_parameters(model)
    for name, node in _blocks(trace).items():
        assert node["parameters"] == count_parameters(model.get_submodule(name))
    rows = arch.block_rows(trace)
    assert rows[-1][-1] == f"**{count_parameters(model):,}**"
    assert sum(int(row[-1].replace(",", "")) for row in rows[:-1]) == count_parameters(model)


def test_a_table_that_does_not_add_up_is_refused(traced):
    _, trace = traced["time", 8]
    broken = json.loads(json.dumps(trace))
    next(node for node in broken["nodes"] if node["name"] == "t1")["parameters"] += 1
    with pytest.raises(ValueError, match="parameters"):
        arch.block_rows(broken)


@pytest.mark.parametrize("d", WIDTHS)
@pytest.mark.parametrize("kind", KINDS)
def test_the_diagram_holds_every_block_and_every_edge(traced, kind, d):
    _, trace = traced[kind, d]
    diagram = arch.diagram_layout(trace)
    names = {box.name for box in diagram.boxes}
    assert set(_blocks(trace)) <= names
    conditions = set(arch.condition_inputs(trace))
    assert {node["name"] for node in trace["nodes"] if node["name"] not in conditions} <= names
    drawn = {(arrow.source, arrow.target) for arrow in diagram.arrows}
    for node in trace["nodes"]:
        for source in node["inputs"]:
            if source in conditions:  # drawn under each embedding that reads it
                assert (f"{node['name']}:{source}", node["name"]) in drawn
            else:
                assert (source, node["name"]) in drawn
    assert diagram.rows == (28, 14, 7, 1)
    # Each image-path node sits on the row of its resolution, and no two share a column.
    for node in arch.image_path(trace):
        size = arch.resolution(node["shape"])
        assert diagram.box(node["name"]).y == pytest.approx(-diagram.rows.index(size) * arch._ROW_H)
    xs = [diagram.box(node["name"]).x for node in arch.image_path(trace)]
    assert xs == sorted(xs) and len(set(xs)) == len(xs)


@pytest.mark.parametrize("d", WIDTHS)
@pytest.mark.parametrize("kind", KINDS)
def test_skip_connections_join_the_same_resolution(traced, kind, d):
    _, trace = traced[kind, d]
    skips = arch.skip_connections(trace)
    assert [source for source, _ in skips] == ["down2", "down1", "conv_in"]
    by_name = arch.nodes_by_name(trace)
    kinds = {(arrow.source, arrow.target): arrow.kind for arrow in arch.diagram_layout(trace).arrows}
    for source, concat in skips:
        assert arch.resolution(by_name[source]["shape"]) == arch.resolution(by_name[concat]["shape"])
        assert kinds[source, concat] == "skip"


@pytest.mark.parametrize("d", WIDTHS)
@pytest.mark.parametrize("kind", KINDS)
def test_t_and_c_enter_where_the_model_feeds_them(traced, kind, d):
    _, trace = traced[kind, d]
    entries = arch.condition_entries(trace)
    assert {(e.source, e.vector, e.kind, e.target) for e in entries} == EXPECTED_ENTRIES[kind]
    by_name = arch.nodes_by_name(trace)
    for entry in entries:  # the embedding has one entry per channel of the feature map it modulates
        assert by_name[entry.vector]["shape"][-1] == by_name[entry.target]["shape"][1] == entry.shape[1]
    diagram = arch.diagram_layout(trace)
    condition_boxes = {box.name for box in diagram.boxes if box.kind == "condition"}
    condition_arrows = {(a.source, a.target) for a in diagram.arrows if a.kind == "condition"}
    assert condition_boxes == {entry.vector for entry in entries}
    assert {(entry.vector, entry.node) for entry in entries} <= condition_arrows
    assert arch.condition_inputs(trace) == {"unconditional": [], "time": ["t"], "class": ["t", "c"]}[kind]
    if kind == "unconditional":
        assert not condition_arrows and arch.condition_sentence(trace) == ""


def test_the_entry_summary_reads_like_spec():
    trace = trace_unet(ClassConditionalUNet(in_channels=1, num_classes=10, num_hiddens=8))
    assert arch.entry_summary(trace) == (
        "c scales (×) the outputs of `unflatten` and `up1`; t shifts (+) the outputs of `unflatten` and `up1`")
    assert arch.input_width(trace, "c") == 10


def test_the_operations_are_the_write_ups(traced):
    unconditional, time, klass = (traced[kind, 8][1] for kind in KINDS)
    assert [op["name"] for op in unconditional["operations"]] == WRITE_UP_OPERATIONS
    definitions = {op["name"]: op["definition"] for op in klass["operations"]}
    assert definitions["Conv"] == "Conv2d(3, 1, 1) → BN → GELU"
    assert definitions["DownConv"] == "Conv2d(3, 2, 1) → BN → GELU"
    assert definitions["UpConv"] == "ConvTranspose2d(4, 2, 1) → BN → GELU"
    assert definitions["Flatten"] == "AvgPool2d(7) → GELU"
    assert definitions["Unflatten"] == "ConvTranspose2d(7, 7, 0) → BN → GELU"
    assert definitions["ConvBlock"] == "Conv → Conv"
    assert definitions["DownBlock"] == "DownConv → ConvBlock"
    assert definitions["UpBlock"] == "UpConv → ConvBlock"
    assert definitions["FCBlock"] == "Linear → GELU → Linear"
    assert [row[0] for row in arch.operation_rows(time, new_since=unconditional)] == ["**FCBlock**", "**Shift (+)**"]
    assert [row[0] for row in arch.operation_rows(klass, new_since=time)] == ["**Scale (×)**"]
    assert arch.additions_text(klass, time) == "the blocks `c1` and `c2` (FCBlock) and the operation Scale (×)"


def test_the_diagram_is_a_png_and_the_same_trace_draws_the_same_bytes(traced):
    _, trace = traced["class", 16]
    png = arch.architecture_png(trace)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert arch.architecture_png(trace) == png
    assert arch.architecture_png(traced["class", 8][1]) != png


def test_the_run_traces_the_profiles_recipe_and_is_cached(ctx):
    run = architecture_run(ctx, "class_ddpm")
    recipe = get_profile("tiny").partb.class_ddpm
    assert run.params["recipe"] == recipe.to_dict()
    assert run.metrics["num_hiddens"] == recipe.num_hiddens
    assert run.metrics["model"] == "ClassConditionalUNet"
    model = training.seeded(lambda: build_model("class_ddpm", recipe), ctx.seed, "class_ddpm/init")
    assert run.metrics == json.loads(json.dumps(trace_unet(model)))
    assert run.function == "diffusion_lab.experiments.partb_architecture.architecture_run"
    again = architecture_run(ctx, "class_ddpm")
    assert again.hit and again.key == run.key
    with pytest.raises(ValueError, match="unknown model"):
        architecture_run(ctx, "judge")


def _box(**kwargs) -> Algorithm:
    lines = kwargs.pop("lines", ((0, "**repeat**"), (1, r"\(x_t = \sqrt{\bar\alpha_t}\,x_0\)"), (0, "**until** done")))
    return Algorithm("B.1", "Training", lines, **kwargs)


def test_an_algorithm_box_sits_beside_the_real_source_and_its_code_link():
    text = algorithm_markdown(_box(note=r"\(T = 20\)"), ["diffusion_lab.mnist.ddpm.time_conditioned_loss"],
                              "part-b/unet.md", see_also=["diffusion_lab.mnist.training.fit"])
    lines, first = inspect.getsourcelines(time_conditioned_loss)
    assert "".join(lines).rstrip("\n") in text
    assert f'```python linenums="{first}"' in text
    assert "(../code/diffusion_lab.mnist.ddpm.md#time_conditioned_loss)" in text
    assert "(../code/diffusion_lab.mnist.training.md#fit)" in text
    html = render_math(markdown.Markdown(
        extensions=["md_in_html", "pymdownx.superfences", "pymdownx.highlight", "pymdownx.arithmatex"],
        extension_configs={"pymdownx.arithmatex": {"generic": True}}).convert(text))
    assert html.count('<li class="algorithm-indent-') == 3
    assert html.count("<math") == 2 and "arithmatex" not in html
    assert "<strong>repeat</strong>" in html


def test_an_algorithm_box_refuses_bad_input():
    with pytest.raises(ValueError, match="indent"):
        _box(lines=((3, "too deep"),))
    with pytest.raises(ValueError, match="implements"):
        algorithm_markdown(_box(), [], "part-b/unet.md")
