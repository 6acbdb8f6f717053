import pytest
import torch

from bsnb import models


def test_cnn_is_the_5210_parameter_network_of_the_mnist1d_paper():
    net = models.build("cnn", (40,), 10, width=25)
    assert models.n_params(net) == 5210
    assert net(torch.randn(7, 40)).shape == (7, 10)


FLAT = [m for m in models.MODELS if m not in models.IMAGE_MODELS]


@pytest.mark.parametrize("name", FLAT)
@pytest.mark.parametrize("shape", [(40,), (64,), (1, 8, 8)])
def test_flat_models_accept_any_input_shape_and_width(name, shape):
    net = models.build(name, shape, 3, width=6)
    assert net(torch.randn(5, *shape)).shape == (5, 3)


@pytest.mark.parametrize("name", models.IMAGE_MODELS)
@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 16, 12), (8, 8)])
def test_image_models_accept_any_image_shape_and_width(name, shape):
    net = models.build(name, shape, 3, width=6)
    assert net(torch.randn(5, *shape)).shape == (5, 3)


@pytest.mark.parametrize("name", models.IMAGE_MODELS)
def test_image_models_refuse_flat_inputs_and_tiny_images(name):
    with pytest.raises(ValueError, match=f"model = '{name}' needs image inputs"):
        models.build(name, (40,), 10, 8)
    with pytest.raises(ValueError, match="at least 4x4 pixels"):
        models.build(name, (1, 2, 8), 10, 8)


@pytest.mark.parametrize("name,shape", [*((m, (40,)) for m in FLAT), ("cnn2d", (1, 8, 8))])
def test_batch_norm_is_optional(name, shape):
    plain = models.build(name, shape, 10, width=8)
    bn = models.build(name, shape, 10, width=8, batch_norm=True)
    has_bn = lambda m: any(isinstance(x, torch.nn.modules.batchnorm._BatchNorm) for x in m.modules())  # noqa: E731
    assert not has_bn(plain) and has_bn(bn)


def test_resnet_always_has_batch_norm():
    net = models.build("resnet", (3, 8, 8), 10, width=4, batch_norm=False)
    assert sum(isinstance(x, torch.nn.BatchNorm2d) for x in net.modules()) == 1 + 3 * 3 * 2 + 2  # stem, blocks, shortcuts


def test_unknown_model_is_refused():
    with pytest.raises(ValueError, match="model = 'vgg' is not allowed: expected one of cnn, mlp, cnn2d, resnet"):
        models.build("vgg", (40,), 10, 8)
