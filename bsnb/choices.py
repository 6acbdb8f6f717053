"""The choices a parameter offers that belong to a training room, read without importing it: the models and what
inputs each takes, the optimisers, and the ways of stacking models. :mod:`bsnb.parameters` declares its choices
from here, and :mod:`bsnb.models` and :mod:`bsnb.stacking` build what they name, so a profile is checked without
importing torch's modules of the training loop. (The datasets and the remedies are declared by ``data`` and
``remedies`` themselves, which import no other room.)"""

from __future__ import annotations

import re

# The study's own models, each named by the import path of the function (here, the class) that builds it. A profile
# may name its own model the same way, ``model: mypkg.nets:build`` (:func:`bsnb.models.build` calls it).
MODEL_PATHS = {"cnn": "bsnb.models:CNN1d", "mlp": "bsnb.models:MLP", "cnn2d": "bsnb.models:CNN2d",
               "resnet": "bsnb.models:ResNet"}
MODELS = tuple(MODEL_PATHS)
IMPORT_PATH = r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*"
IMPORT_PATH_WORDS = "an import path module:function of your own model (for example mypkg.nets:build)"
IMAGE_MODELS = ("cnn2d", "resnet")  # need inputs of shape (C, H, W), or (H, W) for one channel

OPTIMIZERS = ("sgd", "adam", "adamw")

STACK = ("auto", "on", "off")  # train the seeds of a setting as one stacked model: auto, on or off


def is_import_path(model: str) -> bool:
    """Whether ``model`` names a model by import path (``package.module:function``) rather than by a study's name."""
    return isinstance(model, str) and re.fullmatch(IMPORT_PATH, model) is not None


def model_path(model: str) -> str:
    """The import path of the function that builds ``model`` (a study's name, or already an import path)."""
    return MODEL_PATHS.get(model, model)


def image_shape(input_shape: tuple) -> tuple[int, int, int] | None:
    """(C, H, W) of an image input shape, or None when the shape is not an image's."""
    if len(input_shape) == 2:
        return (1, *input_shape)
    if len(input_shape) == 3:
        return tuple(input_shape)
    return None


def input_problem(model: str, input_shape: tuple) -> str | None:
    """Why ``model`` cannot take inputs of ``input_shape``, or None."""
    if model in IMAGE_MODELS and image_shape(input_shape) is None:
        return (f"model = {model!r} needs image inputs of shape (C, H, W) or (H, W), but the data's examples have "
                f"shape {tuple(input_shape)}: use model cnn or mlp, or image data")
    if model in IMAGE_MODELS and min(image_shape(input_shape)[1:]) < 4:
        return f"model = {model!r} needs images of at least 4x4 pixels; the data's are {tuple(input_shape)}"
    return None
