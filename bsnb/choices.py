"""The choices a parameter offers that belong to a training room, read without importing it: the models and what
inputs each takes, the optimisers, and the ways of stacking models. :mod:`bsnb.parameters` declares its choices
from here, and :mod:`bsnb.models` and :mod:`bsnb.stacking` build what they name, so a profile is checked without
importing torch's modules of the training loop. (The datasets and the remedies are declared by ``data`` and
``remedies`` themselves, which import no other room.)"""

from __future__ import annotations

MODELS = ("cnn", "mlp", "cnn2d", "resnet")
IMAGE_MODELS = ("cnn2d", "resnet")  # need inputs of shape (C, H, W), or (H, W) for one channel

OPTIMIZERS = ("sgd", "adam", "adamw")

STACK = ("auto", "on", "off")  # train the seeds of a setting as one stacked model: auto, on or off


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
