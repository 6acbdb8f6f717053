"""Image datasets and the user's own data: small files written here in each dataset's real on-disk format
(MNIST's IDX files, CIFAR-10's pickled batches, NumPy's .npz), read by the real loading code. Nothing is
downloaded: a missing dataset's download is replaced by one that fails, as it does offline."""

from __future__ import annotations

import copy
import hashlib
import math
import pickle
import struct
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from bsnb import data, models, noise, parameters, sharpness, train

# ---------------------------------------------------------------------------------------------------------------
# writers of the real formats


def write_idx(path: Path, array: np.ndarray) -> None:
    """IDX (LeCun's MNIST format): magic 0x0000080N for unsigned bytes in N dimensions, big-endian sizes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(struct.pack(">I", 0x800 + array.ndim))
        fh.write(struct.pack(f">{array.ndim}I", *array.shape))
        fh.write(array.astype(np.uint8).tobytes())


def label_images(labels: np.ndarray, shape: tuple, rng) -> np.ndarray:
    """Images whose brightness encodes their label (25 levels apart) plus a little noise, so a test can check
    that every loaded image still sits beside its own label."""
    base = (20 + 25 * labels).reshape(-1, *[1] * len(shape))
    return np.clip(base + rng.integers(0, 5, (len(labels), *shape)), 0, 255).astype(np.uint8)


def write_mnist_like(root: Path, folder: str, n_train: int = 300, n_test: int = 100, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        y = np.arange(n) % 10
        rng.shuffle(y)
        write_idx(root / folder / "raw" / f"{prefix}-images-idx3-ubyte", label_images(y, (28, 28), rng))
        write_idx(root / folder / "raw" / f"{prefix}-labels-idx1-ubyte", y)


def write_cifar10(root: Path, per_batch: int = 40, n_test: int = 60, seed: int = 0) -> dict:
    """cifar-10-batches-py: five training batches, a test batch and the meta file, each a pickled dict with
    "data" ([N, 3072] uint8, channel-major) and "labels" (the real files are Python 2 pickles, whose str keys
    load as these under torchvision's latin1 decoding). Returns the md5 of each file."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    md5 = {}
    for name, n in [*((f"data_batch_{i}", per_batch) for i in range(1, 6)), ("test_batch", n_test)]:
        y = rng.integers(0, 10, n)
        img = label_images(y, (3, 32, 32), rng)
        img[:, 1] //= 2  # channels differ: red > green, so a wrong channel order shows
        img[:, 2] = 0
        with open(folder / name, "wb") as fh:
            pickle.dump({"data": img.reshape(n, -1), "labels": y.tolist()}, fh, protocol=2)
        md5[name] = hashlib.md5((folder / name).read_bytes()).hexdigest()
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)]}, fh, protocol=2)
    md5["batches.meta"] = hashlib.md5((folder / "batches.meta").read_bytes()).hexdigest()
    return md5


@pytest.fixture
def offline(monkeypatch):
    """Any attempt to download fails at once, as on a machine without a network."""
    def refuse(self, *a, **k):
        raise urllib.error.URLError("no network in tests")

    for cls in (torchvision.datasets.MNIST, torchvision.datasets.CIFAR10):
        monkeypatch.setattr(cls, "download", refuse)


@pytest.fixture
def cifar_dir(tmp_path, monkeypatch):
    md5 = write_cifar10(tmp_path)
    # torchvision checks each file against the real dataset's md5; ours are small stand-ins with their own
    cls = torchvision.datasets.CIFAR10
    monkeypatch.setattr(cls, "train_list", [[f"data_batch_{i}", md5[f"data_batch_{i}"]] for i in range(1, 6)])
    monkeypatch.setattr(cls, "test_list", [["test_batch", md5["test_batch"]]])
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": md5["batches.meta"]})
    return tmp_path


def brightness_matches_label(x: torch.Tensor, y: torch.Tensor) -> bool:
    """The label order of the written images survives loading: mean brightness rises with the label."""
    means = x.flatten(1).mean(1)
    by_label = [means[y == k] for k in range(10) if (y == k).any()]
    return all(a.max() < b.min() for a, b in zip(by_label, by_label[1:]))


# ---------------------------------------------------------------------------------------------------------------
# torchvision datasets


@pytest.mark.parametrize("dataset,folder", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_mnist_and_fashion_mnist_load_from_their_idx_files(tmp_path, offline, dataset, folder):
    write_mnist_like(tmp_path, folder)
    d = data.load(dataset, 200, 50, 80, data_seed=1, data_path=str(tmp_path))
    assert d.input_shape == (1, 28, 28) and d.n_classes == 10
    assert (len(d.y_train), len(d.y_val), len(d.y_test)) == (200, 50, 80)
    for split in ("train", "val", "test"):
        assert brightness_matches_label(getattr(d, f"x_{split}"), getattr(d, f"y_{split}")), split
    assert abs(float(d.x_train.mean())) < 1e-4 and abs(float(d.x_train.std()) - 1) < 1e-2  # standardised on train
    assert torch.equal(d.x_train, data.load(dataset, 200, 50, 80, data_seed=1, data_path=str(tmp_path)).x_train)
    assert not torch.equal(d.x_train, data.load(dataset, 200, 50, 80, data_seed=2, data_path=str(tmp_path)).x_train)


def test_cifar10_loads_from_its_pickled_batches_channels_first(cifar_dir, offline):
    d = data.load("cifar10", 150, 50, 60, data_path=str(cifar_dir))
    assert d.input_shape == (3, 32, 32) and d.n_classes == 10
    assert (len(d.y_train), len(d.y_val), len(d.y_test)) == (150, 50, 60)
    assert brightness_matches_label(d.x_test[:, 0], d.y_test)
    raw = torchvision.datasets.CIFAR10(str(cifar_dir), train=False).data  # [N, H, W, C]
    assert raw[..., 0].mean() > raw[..., 1].mean() > raw[..., 2].mean()
    # standardised per channel, with the training split's statistics
    assert torch.allclose(d.x_train.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)


def test_a_missing_dataset_offline_says_where_it_looked_and_what_to_put_there(tmp_path, offline):
    with pytest.raises(FileNotFoundError, match=r"'fashion_mnist' is not in .*could not be downloaded.*FashionMNIST"):
        data.load("fashion_mnist", 100, 10, 10, data_path=str(tmp_path))


def test_the_data_folder_comes_from_data_path_then_bsnb_data(tmp_path, monkeypatch):
    monkeypatch.setenv("BSNB_DATA", str(tmp_path / "env"))
    assert data.data_dir("") == tmp_path / "env"
    assert data.data_dir(str(tmp_path / "given")) == tmp_path / "given"
    ident = data.identity({**parameters.defaults("02_empirical_comparison"), "dataset": "cifar10", "data_path": str(tmp_path)})
    assert ident["data_dir"] == str(tmp_path.resolve()) and ident["generator"].startswith("torchvision")


def test_image_dataset_sizes_are_checked_before_any_training():
    params = {**parameters.defaults("02_empirical_comparison"), "dataset": "cifar10", "model": "cnn2d", "n_train": 49000, "n_val": 2000}
    _, problems = parameters.check_params("02_empirical_comparison", params)
    assert any("n_train + n_val = 51000 exceeds the 50000 training images" in p for p in problems)


# ---------------------------------------------------------------------------------------------------------------
# the user's own .npz


def npz(path: Path, **arrays) -> str:
    np.savez(path, **arrays)
    return str(path)


def check(path: str, **over) -> list[str]:
    params = {**parameters.defaults("02_empirical_comparison"), "dataset": "npz", "data_path": path, "n_train": 80, "n_val": 20, "n_test": 20,
              "batch_size": 16, **over}
    return parameters.check_params("02_empirical_comparison", params)[1]


@pytest.fixture
def good(tmp_path):
    rng = np.random.default_rng(0)
    y = np.arange(200) % 4
    x = (y[:, None, None] + 0.1 * rng.standard_normal((200, 6, 6))).astype(np.float32)
    return x, y


def test_a_valid_npz_loads_with_its_own_splits_or_cuts_them_from_x(tmp_path, good):
    x, y = good
    d = data.load("npz", 80, 20, 20, data_path=npz(tmp_path / "a.npz", x=x, y=y))
    assert d.input_shape == (6, 6) and d.n_classes == 4 and len(d.y_train) == 80
    path = npz(tmp_path / "b.npz", x=x[:100], y=y[:100], x_val=x[100:150], y_val=y[100:150], x_test=x[150:] + 10,
               y_test=y[150:])
    assert check(path) == []
    d = data.load("npz", 80, 20, 20, data_path=path)
    assert float(d.x_test.mean()) > float(d.x_train.mean()) + 5  # the test split is the file's own (shifted) one
    net = models.build("cnn2d", d.input_shape, d.n_classes, 4)  # (H, W) examples are one-channel images
    assert net(d.x_train[:3]).shape == (3, 4)


@pytest.mark.parametrize("arrays,words", [
    (lambda x, y: {"x": x}, "has no array 'y'"),
    (lambda x, y: {"x": x, "y": y[:-1]}, "y has shape (199,): expected one label per example of x"),
    (lambda x, y: {"x": x, "y": y + 0.5}, "non-integer values: expected integer labels 0 to k-1"),
    (lambda x, y: {"x": x, "y": y - 1}, "labels include -1: expected integers from 0 to k-1"),
    (lambda x, y: {"x": x, "y": np.where(y == 2, 3, y)}, "never take the values [2]"),
    (lambda x, y: {"x": np.where(np.arange(200)[:, None, None] == 7, np.nan, x), "y": y}, "36 non-finite values"),
    (lambda x, y: {"x": x[:100], "y": y[:100]}, "x has 100 examples, fewer than the 120 asked for"),
    (lambda x, y: {"x": x, "y": y, "x_val": x[:, :3], "y_val": y}, "x_val has examples of shape (3, 6)"),
    (lambda x, y: {"x": x, "y": y, "x_val": x}, "only one of x_val and y_val"),
])
def test_a_bad_npz_is_refused_before_training_with_what_is_wrong(tmp_path, good, arrays, words):
    problems = check(npz(tmp_path / "bad.npz", **arrays(*good)))
    assert any(words in p for p in problems), problems
    with pytest.raises(ValueError):
        data.load("npz", 80, 20, 20, data_path=str(tmp_path / "bad.npz"))


def test_too_few_examples_for_the_batch_size_and_a_missing_file_are_refused(tmp_path, good):
    path = npz(tmp_path / "a.npz", x=good[0][:50], y=good[1][:50], x_val=good[0], y_val=good[1],
               x_test=good[0], y_test=good[1])
    assert any("batch_size = 64 is larger than the 40 training examples" in p
               for p in check(path, n_train=40, batch_size=64))
    assert any("no such file" in p for p in check(str(tmp_path / "nope.npz")))
    assert any("needs data_path" in p for p in check(""))


def test_a_model_that_needs_images_is_refused_for_flat_data():
    _, problems = parameters.check_params("02_empirical_comparison", {**parameters.defaults("02_empirical_comparison"), "model": "resnet"})
    assert any("model = 'resnet' needs image inputs" in p and "'mnist1d'" in p for p in problems), problems
    _, ok = parameters.check_params("02_empirical_comparison",
                                {**parameters.defaults("02_empirical_comparison"), "model": "resnet", "dataset": "cifar10", "width": 16})
    assert ok == []


# ---------------------------------------------------------------------------------------------------------------
# image models through training, gradient noise and curvature


def test_resnet20_has_the_size_of_he_et_al_and_cnn2d_is_small():
    assert models.n_params(models.build("resnet", (3, 32, 32), 10, 16)) == 272_474  # ResNet-20: 0.27 M
    assert models.n_params(models.build("cnn2d", (1, 28, 28), 10, 16)) < 30_000


def test_ghost_batch_norm_2d_normalises_each_chunk_on_its_own():
    torch.manual_seed(0)
    x = torch.randn(32, 3, 4, 4) * 3 + 1
    from bsnb.models import GhostBatchNorm2d

    ghost = GhostBatchNorm2d(3, ghost=8).train()
    out = ghost(x)
    for chunk in out.split(8):
        assert torch.allclose(chunk.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(GhostBatchNorm2d(3, ghost=64).train()(x), torch.nn.BatchNorm2d(3).train()(x))


def test_resnet_trains_and_its_gradient_noise_and_curvature_are_measured(cifar_dir, offline):
    d = data.load("cifar10", 150, 50, 60, data_path=str(cifar_dir))
    spec = train.TrainSpec(batch_size=32, lr=0.01, model="resnet", width=4, epochs=6, log_points=5, noise_points=3)
    run = train.train(spec, d, seed=0)
    assert run.history[-1]["train_loss"] < run.history[0]["train_loss"]
    assert len(run.noise) > 0
    torch.manual_seed(0)
    net = models.build("resnet", d.input_shape, d.n_classes, 4)
    net.load_state_dict(run.states["final"])
    before = {k: v.clone() for k, v in net.state_dict().items()}
    stats = noise.gradient_stats(net, d.x_train[:64], d.y_train[:64], chunk=16)
    assert stats.tr_sigma > 0 and stats.g2 > 0 and stats.examples == 64
    # per-example mean = batch gradient: an identity, checked in float64 (in float32 the convolutions' summation
    # order differs by CPU: 5.4e-4 relative on one machine with AVX-512, against 6e-16 in float64 there)
    x64, y64 = d.x_train[:64].double(), d.y_train[:64]
    net64 = copy.deepcopy(net).double()
    g = noise.batch_gradient(net64, x64, y64)
    assert (g - noise.gradient_stats(net64, x64, y64, chunk=16).full_gradient).norm() <= 1e-10 * g.norm()
    with sharpness.Hessian(net, d.x_train[:64], d.y_train[:64]) as h:
        eig = sharpness.top_eigenvalues(h, k=1, tol=1e-3)
    assert eig.values[0] > 0
    record, tables = sharpness.measure(net, d.x_train[:64], d.y_train[:64], top_k=2, trace_samples=4,
                                       epsilons=[1e-3], subspace_dim=10, lbfgs_iters=2, slice_points=3)
    assert record["lambda_max"] == pytest.approx(eig.values[0], rel=1e-2)
    # a trace estimate from 4 probes at a non-convex point may have either sign (its accuracy is
    # tested against the exact trace in test_sharpness.py); here it must only be measured
    assert math.isfinite(record["trace"]) and record["trace_stderr"] >= 0
    assert record["eps_full_0.001"] >= 0 and len(tables["slices"]) == 3
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # nothing moved, BN included


def test_cnn2d_trains_on_fashion_mnist_files(tmp_path, offline):
    write_mnist_like(tmp_path, "FashionMNIST")
    params = {**parameters.defaults("02_empirical_comparison"), "dataset": "fashion_mnist", "data_path": str(tmp_path), "model": "cnn2d",
              "width": 4, "n_train": 200, "n_val": 50, "n_test": 50, "epochs": 3, "batch_size": 20, "lr": 0.05,
              "seeds": [0], "device": "cpu"}
    (run,) = train.train_seeds(params, progress=False)
    assert run.summary["min_val_loss"] < run.history[0]["val_loss"]


# ---------------------------------------------------------------------------------------------------------------
# the whole path: a profile on image files, swept by papermill, found and reported


@pytest.mark.slow
def test_a_profile_on_fashion_mnist_files_runs_end_to_end(tmp_path):
    import json
    import os
    import subprocess
    import sys

    import yaml

    write_mnist_like(tmp_path / "data", "FashionMNIST", n_train=300, n_test=100)
    profile = {
        "name": "images-tiny", "notebooks": {"02_empirical_comparison": {}},
        "scientific": {"batch_size": [20, 100]},
        "nuisance": {"lr": 0.05, "seeds": [0, 1]},
        "fixed": {"dataset": "fashion_mnist", "data_path": str(tmp_path / "data"), "n_train": 200, "n_val": 50,
                  "n_test": 50, "model": "cnn2d", "width": 4, "epochs": 3, "device": "cpu", "noise_points": 0,
                  "small_batch": 20, "large_batch": 100},
    }
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(profile))
    # no network: torchvision must find the files, and BSNB_DATA points nowhere useful
    env = {**os.environ, "BSNB_DATA": str(tmp_path / "empty")}
    proc = subprocess.run([sys.executable, "-m", "bsnb.cli", "run", str(tmp_path / "p.yaml"), "--out",
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    runs = sorted((tmp_path / "out" / "runs").glob("02-*"))
    assert len(runs) == 2
    summary = json.loads((runs[0] / "summary.json").read_text())
    assert all(s["n_params"] == models.n_params(models.build("cnn2d", (1, 28, 28), 10, 4)) for s in summary["seeds"])
    assert (tmp_path / "out" / "index.html").exists()


def test_a_profile_whose_image_files_are_absent_stops_before_any_job(tmp_path, offline):
    """Missing data is found at validation: one line naming the folder and what to put there, nothing run."""
    import yaml

    from bsnb import parameters, profiles, sweep

    profile = {
        "name": "images-absent", "notebooks": {"02_empirical_comparison": {}},
        "scientific": {"batch_size": [20, 100]},
        "nuisance": {"lr": 0.05, "seeds": [0, 1]},
        "fixed": {"dataset": "fashion_mnist", "data_path": str(tmp_path / "nothing"), "n_train": 200, "n_val": 50,
                  "n_test": 50, "model": "cnn2d", "width": 4, "epochs": 3, "small_batch": 20, "large_batch": 100},
    }
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(profile))
    with pytest.raises(parameters.ProfileError) as caught:
        sweep.plan(profiles.load_profile(tmp_path / "p.yaml"), tmp_path / "out")
    (line,) = caught.value.problems
    assert str(tmp_path / "nothing") in line and "FashionMNIST" in line and "\n" not in line
    assert not (tmp_path / "out").exists()
    write_mnist_like(tmp_path / "nothing", "FashionMNIST", n_train=300, n_test=100)  # the files put there: it plans
    assert len(sweep.plan(profiles.load_profile(tmp_path / "p.yaml"), tmp_path / "out")) == 2
