import numpy as np
import pytest
import torch

from bsnb import data


def test_mnist1d_splits_have_the_asked_sizes_and_are_deterministic():
    a = data.load("mnist1d", 300, 100, 50, data_seed=3)
    b = data.load("mnist1d", 300, 100, 50, data_seed=3)
    c = data.load("mnist1d", 300, 100, 50, data_seed=4)
    assert (len(a.y_train), len(a.y_val), len(a.y_test)) == (300, 100, 50)
    assert a.input_shape == (40,) and a.n_classes == 10
    assert a.x_train.dtype == torch.float32 and a.y_train.dtype == torch.long
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()


def test_splits_are_disjoint_and_standardised_on_the_training_split():
    d = data.load("mnist1d", 400, 100, 100, data_seed=0)
    rows = {tuple(np.round(x.numpy(), 5)) for split in ("train", "val", "test") for x in getattr(d, f"x_{split}")}
    assert len(rows) == 600
    assert abs(d.x_train.mean().item()) < 1e-4 and abs(d.x_train.std().item() - 1) < 1e-2


def test_generation_does_not_disturb_numpys_global_generator():
    np.random.seed(123)
    expected = np.random.rand()
    np.random.seed(123)
    data._mnist1d(100, seed=0)
    assert np.random.rand() == expected


def test_cache_returns_the_same_arrays_and_survives_a_corrupt_file(tmp_path, monkeypatch):
    monkeypatch.setenv("BSNB_CACHE", str(tmp_path))
    first = data.load("mnist1d", 100, 50, 50, data_seed=1)
    files = list(tmp_path.glob("mnist1d-*.npz"))
    assert len(files) == 1
    assert data.load("mnist1d", 100, 50, 50, data_seed=1).fingerprint() == first.fingerprint()
    files[0].write_bytes(b"not an npz file")
    assert data.load("mnist1d", 100, 50, 50, data_seed=1).fingerprint() == first.fingerprint()


def test_digits_is_a_second_offline_dataset():
    d = data.load("digits", 1000, 300, 300, data_seed=0)
    assert d.input_shape == (64,) and d.n_classes == 10
    assert set(d.y_train.unique().tolist()) == set(range(10))


def test_too_many_examples_and_unknown_dataset_are_refused():
    with pytest.raises(ValueError, match="fewer than"):
        data.load("digits", 1500, 300, 300)
    with pytest.raises(ValueError, match="dataset = 'cifar'"):
        data.load("cifar", 10, 10, 10)


def test_identity_names_the_generator_and_its_version():
    ident = data.identity({"dataset": "mnist1d", "n_train": 1, "n_val": 1, "n_test": 1, "data_seed": 0})
    assert ident["generator"].startswith("mnist1d ")


def test_one_pass_draws_fresh_examples_every_epoch_standardised_as_the_training_split(tmp_path, monkeypatch):
    monkeypatch.setenv("BSNB_CACHE", str(tmp_path))
    params = {"dataset": "mnist1d", "n_train": 64, "n_val": 16, "n_test": 16, "data_seed": 0, "one_pass": True}
    ds = data.of_job(params)
    x1, _ = ds.epoch_examples(1)
    x2, y2 = ds.epoch_examples(2)
    x3, _ = ds.epoch_examples(3)
    assert torch.equal(x1, ds.x_train)  # epoch 1 trains on the training split
    assert x2.shape == ds.x_train.shape and y2.shape == ds.y_train.shape and y2.dtype == torch.long
    rows = {tuple(r) for r in torch.cat([x1, x2, x3]).round(decimals=4).tolist()}
    assert len(rows) == 3 * 64  # no example is seen twice
    again, _ = data.of_job(params).epoch_examples(2)  # generated once and cached: the same examples
    assert torch.equal(again, x2)
    mean, std = ds.standardise
    raw, _, _ = data._cached("mnist1d", 64, ds.fresh.seed(2), data._mnist1d)
    chosen = raw[np.random.default_rng(ds.fresh.seed(2)).permutation(len(raw))[:64]]
    assert np.allclose(x2.numpy(), (chosen - mean) / (std + 1e-8), atol=1e-6)
    plain = data.of_job({**params, "one_pass": False})
    assert torch.equal(plain.epoch_examples(2)[0], plain.x_train)


def test_one_pass_is_refused_for_a_dataset_without_a_generator():
    from bsnb import parameters

    _, problems = parameters.check_params("02_empirical_comparison", {
        **parameters.defaults("02_empirical_comparison"), "dataset": "digits", "n_train": 1000, "n_val": 397,
        "n_test": 400, "one_pass": True})
    assert any("one_pass" in p and "digits" in p for p in problems)
