"""B1.1, B2.1, B2.4: the three Part B UNets as built from the profile's recipes, traced.

No training: a run builds a model from its recipe with the training run's seeded init, traces
the forward pass with torch.fx (each top-level block one node, so concatenations and the
conditioning arithmetic between blocks are visible as graph nodes) and runs it once on a dummy
input to record every node's output shape. The result, a JSON-able trace, is the run's metrics;
the page draws its diagrams and tables from it.

Trace format (shapes include the batch dimension, 1):
    model, num_parameters (count_parameters), num_hiddens, inputs [{name, shape}],
    nodes [{name, kind, op, inputs, shape, parameters, depends_on}] in execution order, where
        kind is "input", "block" (a top-level submodule), "concat", "scale", "shift",
        "function" (any other tensor arithmetic) or "output"; reshapes (same number of
        elements, one tensor input: t.reshape, c.to, v[:, :, None, None]) are drawn through,
        so `inputs` name the nodes the values really come from; depends_on: the model inputs
        a node's value depends on ("x", "t", "c"),
    operations [{name, kind, definition, description, example, input_shapes, shape}]: each
        operation the model uses, once: its own block classes (leaf-most first, in the order
        the UNet module defines them) and the arithmetic between blocks.
"""

from __future__ import annotations

import inspect
import operator

import torch
import torch.fx as fx
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp

from diffusion_lab.mnist import training
from diffusion_lab.mnist.unet import count_parameters, one_hot
from diffusion_lab.runcache.context import BuildContext
from diffusion_lab.runcache.runs import RunRecord, Scratch, cached_run

IMAGE_SIZE = 28  # MNIST
MODELS = ("denoiser", "time_ddpm", "class_ddpm")  # the fields of PartBRecipes that build a UNet
# The dummy input: any values give the same shapes; these are a mid-way time and a "0".
DUMMY_TIME = 0.5
DUMMY_DIGIT = 0

_FUNCTION_KINDS = {
    torch.cat: "concat", torch.concat: "concat",
    operator.mul: "scale", torch.mul: "scale",
    operator.add: "shift", torch.add: "shift",
}
_KIND_NAMES = {"concat": "Concat", "scale": "Scale (×)", "shift": "Shift (+)"}


def build_model(model: str, recipe) -> nn.Module:
    """The UNet of `model` ("denoiser", "time_ddpm" or "class_ddpm") for `recipe`, as training builds it."""
    if model == "denoiser":
        return training.make_denoiser(recipe)
    if model in ("time_ddpm", "class_ddpm"):
        return training.make_ddpm_unet(recipe, conditional=model == "class_ddpm")
    raise ValueError(f"unknown model {model!r}: choose one of {', '.join(MODELS)}")


def dummy_inputs(model: nn.Module) -> dict[str, torch.Tensor]:
    """One input per argument of model.forward: x (1, C, 28, 28) zeros, t (1,) = 0.5, c a one-hot (1, classes)."""
    made = {}
    for name in inspect.signature(model.forward).parameters:
        if name == "x":
            made[name] = torch.zeros(1, model.in_channels, IMAGE_SIZE, IMAGE_SIZE)
        elif name == "t":
            made[name] = torch.full((1,), DUMMY_TIME)
        elif name == "c":
            made[name] = one_hot(torch.tensor([DUMMY_DIGIT]), model.num_classes)
        else:
            raise ValueError(f"no dummy input for the argument {name!r} of {type(model).__name__}.forward")
    return made


class _BlockTracer(fx.Tracer):
    """Keeps every top-level submodule whole: one graph node per block of the UNet."""

    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        return "." not in qualified_name or super().is_leaf_module(module, qualified_name)


def _shape(node: fx.Node) -> list[int] | None:
    meta = node.meta.get("tensor_meta")
    return list(meta.shape) if meta is not None and hasattr(meta, "shape") else None


def _tensor_args(node: fx.Node) -> list[fx.Node]:
    """The tensor-valued nodes among a node's arguments, in order (lists like cat's flattened)."""
    found: list[fx.Node] = []
    fx.node.map_arg((node.args, node.kwargs), lambda arg: found.append(arg) if _shape(arg) is not None else None)
    return found


def _is_reshape(node: fx.Node) -> bool:
    """One tensor input, as many elements out as in: a view, a dtype/device move, an indexing with None."""
    if node.op not in ("call_function", "call_method"):
        return False
    args = _tensor_args(node)
    out = _shape(node)
    return len(args) == 1 and out is not None and torch.Size(out).numel() == torch.Size(_shape(args[0])).numel()


def _function_name(target) -> str:
    return target if isinstance(target, str) else getattr(target, "__name__", str(target))


def _parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def _layer_text(module: nn.Module) -> str:
    """A torch layer as the write-up writes it: Conv2d(3, 1, 1), AvgPool2d(7), BN, GELU."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        return f"{type(module).__name__}({module.kernel_size[0]}, {module.stride[0]}, {module.padding[0]})"
    if isinstance(module, nn.AvgPool2d):
        kernel = module.kernel_size if isinstance(module.kernel_size, int) else module.kernel_size[0]
        return f"AvgPool2d({kernel})"
    if isinstance(module, nn.BatchNorm2d):
        return "BN"
    return type(module).__name__


def _own_class(module: nn.Module, model: nn.Module) -> bool:
    """A block class of the model's own module (ConvBlock, FCBlock, ...), not a torch layer; a layer
    the module redefines without children (its layout-agnostic GELU) is still a layer."""
    return (type(module).__module__ == type(model).__module__ and module is not model
            and next(module.children(), None) is not None)


def _nesting(cls: type, modules: list[nn.Module], model: nn.Module) -> int:
    """How many levels of the model's own classes a class holds below itself (0: torch layers only)."""
    instance = next(module for module in modules if type(module) is cls)
    children = [child for child in instance.children() if _own_class(child, model)]
    return 1 + max(_nesting(type(child), modules, model) for child in children) if children else 0


def _definition_line(cls: type) -> int:
    try:
        return inspect.getsourcelines(cls)[1]
    except (OSError, TypeError):
        return 0


@torch.no_grad()
def trace_unet(model: nn.Module, inputs: dict[str, torch.Tensor] | None = None) -> dict:
    """The JSON-able trace of `model` (see the module docstring) from one forward pass on `inputs`
    (default `dummy_inputs`). The model is put in eval mode, so its BatchNorm statistics stay as they are."""
    model = model.eval()
    inputs = dummy_inputs(model) if inputs is None else inputs
    graph_module = fx.GraphModule(model, _BlockTracer().trace(model))

    # Hooks on every submodule record what each one of them receives and returns in this same pass.
    seen: dict[str, tuple[list[list[int]], list[int]]] = {}
    modules = dict(model.named_modules())

    def record(path: str):
        def hook(_module, args, output) -> None:
            seen.setdefault(path, ([list(a.shape) for a in args if isinstance(a, torch.Tensor)], list(output.shape)))
        return hook

    handles = [module.register_forward_hook(record(path)) for path, module in modules.items() if path]
    try:
        ShapeProp(graph_module).propagate(*(inputs[node.target] for node in graph_module.graph.nodes
                                            if node.op == "placeholder"))
    finally:
        for handle in handles:
            handle.remove()

    alias: dict[str, str] = {}  # a reshape node -> the node it reshapes
    nodes: list[dict] = []
    depends: dict[str, list[str]] = {}
    for node in graph_module.graph.nodes:
        shape = _shape(node)
        if node.op != "output" and shape is None:
            continue  # x.device, x.dtype: not tensors
        sources = [alias.get(arg.name, arg.name) for arg in _tensor_args(node)]
        if _is_reshape(node):
            alias[node.name] = sources[0]
            continue
        depends[node.name] = sorted({node.target} if node.op == "placeholder" else
                                    {name for source in sources for name in depends[source]})
        entry = {"name": node.name, "inputs": sources, "shape": shape, "parameters": 0,
                 "depends_on": depends[node.name]}
        if node.op == "placeholder":
            entry.update(kind="input", op=node.target)
        elif node.op == "call_module":
            block = graph_module.get_submodule(node.target)
            entry.update(kind="block", op=type(block).__name__, parameters=_parameters(block), module=node.target)
        elif node.op == "output":
            entry.update(kind="output", op="output", shape=_shape(node.args[0]))
        else:
            kind = _FUNCTION_KINDS.get(node.target, "function")
            entry.update(kind=kind, op=_KIND_NAMES.get(kind, _function_name(node.target)))
        nodes.append(entry)

    blocks = [node for node in nodes if node["kind"] == "block"]
    if len({node["module"] for node in blocks}) != len(blocks):
        raise ValueError(f"{type(model).__name__} calls a block twice: the trace counts each block once")
    total = count_parameters(model)
    if sum(node["parameters"] for node in blocks) != total:
        raise ValueError(f"{type(model).__name__} has parameters outside its top-level blocks")

    return {
        "model": type(model).__name__,
        "num_parameters": total,
        "num_hiddens": model.num_hiddens,
        "inputs": [{"name": name, "shape": list(value.shape)} for name, value in inputs.items()],
        "nodes": nodes,
        "operations": _operations(model, list(modules.values()), seen, nodes),
    }


def _operations(model: nn.Module, modules: list[nn.Module], seen: dict, nodes: list[dict]) -> list[dict]:
    """Every operation the model uses, once, with its first use as an example."""
    first: dict[type, str] = {}
    for path, module in model.named_modules():
        if _own_class(module, model) and path in seen:
            first.setdefault(type(module), path)
    classes = sorted(first, key=lambda cls: (_nesting(cls, modules, model) > 0, _definition_line(cls)))
    operations = []
    for cls in classes:
        instance = model.get_submodule(first[cls])
        parts = [type(child).__name__ if _own_class(child, model) else _layer_text(child) for child in instance.children()]
        input_shapes, shape = seen[first[cls]]
        operations.append({
            "name": cls.__name__, "kind": "module", "definition": " → ".join(parts),
            "nesting": _nesting(cls, modules, model), "example": first[cls], "input_shapes": input_shapes,
            "shape": shape,
        })
    by_name = {node["name"]: node for node in nodes}
    arithmetic = {}
    for node in nodes:
        if node["kind"] in ("concat", "scale", "shift", "function") and node["op"] not in arithmetic:
            arithmetic[node["op"]] = {
                "name": node["op"], "kind": node["kind"], "definition": _ARITHMETIC.get(node["kind"], node["op"]),
                "description": _ARITHMETIC_WORDS.get(node["kind"], ""), "nesting": 0, "example": node["name"],
                "input_shapes": [by_name[source]["shape"] for source in node["inputs"]], "shape": node["shape"],
            }
    # Between the layers and the blocks built of them, as the write-up lists Concat.
    leaf = [op for op in operations if op["nesting"] == 0]
    return leaf + list(arithmetic.values()) + [op for op in operations if op["nesting"] > 0]


_ARITHMETIC = {"concat": "torch.cat(·, dim=1)", "scale": "a ⊙ v", "shift": "a + v"}
_ARITHMETIC_WORDS = {
    "concat": "Stacks two feature maps of the same resolution along the channels.",
    "scale": "Multiplies every channel of a feature map by one entry of a vector.",
    "shift": "Adds one entry of a vector to every pixel of the matching channel.",
}


def architecture_run(ctx: BuildContext, model: str) -> RunRecord:
    """The traced UNet of the profile's `model` recipe ("denoiser", "time_ddpm", "class_ddpm"),
    built with the same seeded init as its training run."""
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}: choose one of {', '.join(MODELS)}")
    recipe = getattr(ctx.recipes.partb, model)
    params = {"model": model, "recipe": recipe.to_dict(), "dummy_time": DUMMY_TIME, "dummy_digit": DUMMY_DIGIT,
              "image_size": IMAGE_SIZE}

    def compute(scratch: Scratch):
        built = training.seeded(lambda: build_model(model, recipe), scratch.seed, f"{model}/init")
        return trace_unet(built)

    return cached_run(ctx, f"partb/{model.replace('_', '-')}-architecture", params, compute)
