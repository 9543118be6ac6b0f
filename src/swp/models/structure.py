"""What a model says about its own shape: its repeated blocks, the weights that stay dense, and
which layers multiply their input by a weight (and along which axis).

Pruners, sequential calibration and FSDP read the model's structure from here instead of
guessing it from class names or from the largest ``nn.ModuleList``. A model declares it in one of
two ways:

- our own models (and any model of yours) define ``structure(self) -> ModelStructure``;
- a Hugging Face model (``transformers.PreTrainedModel``) is read from the model itself: its
  blocks are the repeated modules (children of an ``nn.ModuleList``) whose class the model lists
  in ``_no_split_modules`` (the modules Hugging Face never splits across devices: the decoder
  layers), the dense weights are those of ``get_output_embeddings()`` and
  ``get_input_embeddings()``, and transformers' ``Conv1D`` (GPT-2) counts as a Linear layer with
  its weight stored (in, out).

A model that declares nothing is plain PyTorch: its ``nn.Linear`` weights are the prunable ones
and nothing else is kept dense (`plain_structure`); whatever needs its blocks (sequential
calibration, FSDP units) refuses it in one line (`UndeclaredStructure`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from torch import nn

from swp.errors import ConfigError

# nn.Linear stores its weight (out, in): the input features run along axis 1.
LINEAR = ((nn.Linear, 1),)


class UndeclaredStructure(ConfigError):
    """The model does not say what its blocks are, and something needs them."""


@dataclass(frozen=True)
class ModelStructure:
    """A model's own account of its shape.

    Attributes:
        blocks: module paths of the repeated transformer blocks, in forward order; () when the
            model has none. Consecutive blocks under one parent module feed each other
            (``hidden = block(hidden, ...)``), as in every decoder stack: sequential calibration
            relies on it; FSDP shards each block as its own unit.
        dense: parameter names kept dense whatever the pruner's ``include`` says (embeddings,
            output head, a frozen tower); a weight tied to one of them stays dense under every
            name it has.
        layers: the module types that multiply their input by a 2-D ``weight`` (their weights are
            the prunable candidates), each with the axis of that weight that runs over the input
            features: 1 for ``nn.Linear`` (out, in), 0 for transformers' ``Conv1D`` (in, out).
    """

    blocks: tuple[str, ...]
    dense: tuple[str, ...] = ()
    layers: tuple[tuple[type, int], ...] = LINEAR

    def input_axis(self, module: nn.Module) -> int | None:
        """The input-feature axis of `module`'s weight, or None when it is not one of `layers`."""
        for cls, axis in self.layers:
            if isinstance(module, cls):
                return axis
        return None

    def prefixed(self, prefix: str) -> ModelStructure:
        """The same structure seen from a parent module that holds this model at `prefix`."""
        return ModelStructure(tuple(prefix + b for b in self.blocks), tuple(prefix + d for d in self.dense),
                              self.layers)


def declares_structure(model: nn.Module) -> bool:
    """Whether the model defines ``structure()`` or is a Hugging Face model (read from itself)."""
    return callable(getattr(type(model), "structure", None)) or _is_hugging_face(model)


def model_structure(model: nn.Module) -> ModelStructure:
    """The structure the model declares (see the module docstring); asks the model, never guesses.

    Raises:
        UndeclaredStructure: the model declares nothing, or a Hugging Face model lists no
            repeated module in ``_no_split_modules``.
    """
    if callable(getattr(type(model), "structure", None)):
        return model.structure()
    if _is_hugging_face(model):
        return hugging_face_structure(model)
    raise UndeclaredStructure(
        f"{type(model).__name__} declares no structure (its blocks are unknown): give it a structure() method "
        "returning swp.models.structure.ModelStructure")


def plain_structure(model: nn.Module) -> ModelStructure:
    """What a model that declares nothing is taken to be for weight selection: its ``nn.Linear``
    weights prunable, nothing kept dense, no blocks."""
    return ModelStructure(blocks=())


def block_modules(model: nn.Module) -> list[nn.Module]:
    """The model's blocks themselves, in forward order (empty when it declares none).

    Raises:
        UndeclaredStructure: as `model_structure`.
    """
    return [model.get_submodule(path) for path in model_structure(model).blocks]


def hugging_face_structure(model: nn.Module) -> ModelStructure:
    """A ``transformers`` model's structure, read from the model (see the module docstring)."""
    from transformers.pytorch_utils import Conv1D  # the model is a transformers one: already imported

    no_split = set(getattr(model, "_no_split_modules", None) or ())
    blocks = tuple(path for path, module in model.named_modules() if path and _repeated_of(model, path, module,
                                                                                         no_split))
    if not blocks:
        raise UndeclaredStructure(
            f"{type(model).__name__} lists no repeated module in _no_split_modules ({sorted(no_split)}), so its "
            "blocks are unknown: wrap it in a module with a structure() method")
    return ModelStructure(blocks, _embedding_weights(model), LINEAR + ((Conv1D, 0),))


def _repeated_of(model: nn.Module, path: str, module: nn.Module, classes: set[str]) -> bool:
    """An entry of an ``nn.ModuleList`` whose class (or a base class: FSDP2 subclasses the
    modules it shards) the model names in ``_no_split_modules``."""
    parent = model.get_submodule(path.rsplit(".", 1)[0]) if "." in path else model
    return isinstance(parent, nn.ModuleList) and any(c.__name__ in classes for c in type(module).__mro__)


def _embedding_weights(model: nn.Module) -> tuple[str, ...]:
    """Parameter names of the output head and the input embedding (each where the model has one)."""
    paths: dict[int, str] = {}
    for path, m in model.named_modules(remove_duplicate=False):
        paths.setdefault(id(m), path)  # a shared module under its first name
    names = []
    for get in (model.get_output_embeddings, model.get_input_embeddings):
        try:
            module = get()
        except NotImplementedError:  # transformers' way of saying "this model has none"
            continue
        if module is not None and isinstance(getattr(module, "weight", None), nn.Parameter):
            names.append(f"{paths[id(module)]}.weight" if paths[id(module)] else "weight")
    return tuple(names)


def _is_hugging_face(model: nn.Module) -> bool:
    """A ``transformers.PreTrainedModel``; such a model exists only once transformers is imported,
    so looking it up in ``sys.modules`` costs nothing to a run that never loads it."""
    utils = sys.modules.get("transformers.modeling_utils")
    base = getattr(utils, "PreTrainedModel", None)
    return base is not None and isinstance(model, base)
