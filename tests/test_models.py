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


# --- a model defined outside bsnb, named by import path --------------------------------------------

OWN = '''
import torch
from torch import nn


def plain(input_shape, n_classes):  # takes neither width nor batch_norm: build() passes only what it names
    return nn.Sequential(nn.Flatten(), nn.Linear(40, n_classes))


def wide(input_shape, n_classes, width=3, **options):
    seen.update(options, width=width)
    return nn.Sequential(nn.Flatten(), nn.Linear(40, width), nn.ReLU(), nn.Linear(width, n_classes))


seen = {}


def not_a_module(input_shape, n_classes):
    return "a string"


def wrong_outputs(input_shape, n_classes):
    return nn.Linear(40, n_classes + 1)


class Reads(nn.Module):  # .item() in forward: trains alone, but vmap cannot stack it
    def __init__(self, input_shape, n_classes):
        super().__init__()
        self.lin = nn.Linear(40, n_classes)

    def forward(self, x):
        return self.lin(x) * (1.0 if x.sum().item() != 0.5 else 2.0)
'''


@pytest.fixture
def own_module(tmp_path, monkeypatch):
    (tmp_path / "own_nets_for_test.py").write_text(OWN)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path / "own_nets_for_test.py"
    import sys

    sys.modules.pop("own_nets_for_test", None)


def test_a_model_named_by_import_path_is_built_with_the_options_its_signature_names(own_module):
    net = models.build("own_nets_for_test:plain", (40,), 10, width=8, batch_norm=True)
    assert net(torch.randn(3, 40)).shape == (3, 10)
    net = models.build("own_nets_for_test:wide", (40,), 10, width=8, batch_norm=True, ghost_batch=4)
    assert net[1].out_features == 8
    import own_nets_for_test

    assert own_nets_for_test.seen == {"width": 8, "batch_norm": True, "ghost_batch": 4}
    assert models.problems_of("own_nets_for_test:wide", (40,), 10, 8) == []


@pytest.mark.parametrize("name, words", [
    ("own_nets_for_test:missing", "has no function 'missing'"),
    ("no_such_module_anywhere:build", "module 'no_such_module_anywhere' cannot be imported"),
    ("own_nets_for_test:not_a_module", "returned str, not a torch.nn.Module"),
    ("own_nets_for_test:wrong_outputs", "to outputs of shape (2, 11): expected (2, 10)"),
])
def test_an_own_model_that_cannot_train_is_named_with_the_reason(own_module, name, words):
    problems = models.problems_of(name, (40,), 10, 8)
    assert len(problems) == 1 and problems[0].startswith(f"model = {name!r}") and words in problems[0], problems


def test_an_own_model_vmap_cannot_stack_is_told_to_set_stack_off(own_module):
    from bsnb import stacking

    assert models.problems_of("own_nets_for_test:Reads", (40,), 10, 8) == []  # it trains alone
    problem = stacking.stack_problem("own_nets_for_test:Reads", (40,), 10, 8, False)
    assert problem is not None and "set stack: off" in problem
    assert stacking.stack_problem("own_nets_for_test:wide", (40,), 10, 8, False) is None


def test_an_own_models_file_is_part_of_its_jobs_cache_key(own_module):
    from bsnb import profiles, sweep

    job = profiles.Job("02_empirical_comparison", {"model": "own_nets_for_test:plain", "seeds": [0]}, ())
    before = sweep.cache_key(job, "code", "digest")
    own_module.write_text(OWN + "\n# an edit\n")
    assert sweep.cache_key(job, "code", "digest") != before


def test_validate_names_an_own_model_that_cannot_train_and_runs_nothing(own_module, tmp_path):
    import os

    import yaml
    from conftest import bsnb, tiny_profile

    path = tiny_profile(tmp_path)
    profile = yaml.safe_load(path.read_text())
    profile["fixed"]["model"] = "own_nets_for_test:wrong_outputs"
    path.write_text(yaml.safe_dump(profile))
    env = {**os.environ, "PYTHONPATH": str(own_module.parent)}
    proc = bsnb("validate", path, "--out", tmp_path / "out", env=env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "model = 'own_nets_for_test:wrong_outputs' maps a batch of 2 examples" in proc.stderr
    assert "nothing was run" in proc.stderr and not (tmp_path / "out").exists()
    profile["fixed"]["model"] = "own_nets_for_test:Reads"  # trains alone, not stacked: the profile stacks 2 seeds
    path.write_text(yaml.safe_dump(profile))
    proc = bsnb("validate", path, "--out", tmp_path / "out", env=env)
    assert proc.returncode == 2 and "set stack: off" in proc.stderr, proc.stdout + proc.stderr
    profile["fixed"]["stack"] = "off"
    path.write_text(yaml.safe_dump(profile))
    proc = bsnb("validate", path, "--out", tmp_path / "out", env=env)
    assert proc.returncode == 0 and "valid: nothing was run" in proc.stdout, proc.stdout + proc.stderr


def test_the_studys_own_models_are_named_the_same_way():
    from bsnb import choices

    for name, path in choices.MODEL_PATHS.items():
        torch.manual_seed(0)
        by_name = models.build(name, (1, 8, 8), 3, width=4)
        torch.manual_seed(0)
        by_path = models.build(path, (1, 8, 8), 3, width=4)
        assert all(torch.equal(a, b) for a, b in zip(by_name.state_dict().values(), by_path.state_dict().values()))
