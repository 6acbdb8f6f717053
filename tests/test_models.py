import pytest
import torch

from bsnb import models


def test_cnn_is_the_5210_parameter_network_of_the_mnist1d_paper():
    net = models.build("cnn", (40,), 10, width=25)
    assert models.n_params(net) == 5210
    assert net(torch.randn(7, 40)).shape == (7, 10)


@pytest.mark.parametrize("name", models.MODELS)
@pytest.mark.parametrize("shape", [(40,), (64,), (1, 8, 8)])
def test_models_accept_any_input_shape_and_width(name, shape):
    net = models.build(name, shape, 3, width=6)
    assert net(torch.randn(5, *shape)).shape == (5, 3)


@pytest.mark.parametrize("name", models.MODELS)
def test_batch_norm_is_optional(name):
    plain = models.build(name, (40,), 10, width=8)
    bn = models.build(name, (40,), 10, width=8, batch_norm=True)
    has_bn = lambda m: any(isinstance(x, torch.nn.modules.batchnorm._BatchNorm) for x in m.modules())  # noqa: E731
    assert not has_bn(plain) and has_bn(bn)


def test_unknown_model_is_refused():
    with pytest.raises(ValueError, match="model = 'resnet'"):
        models.build("resnet", (40,), 10, 8)
