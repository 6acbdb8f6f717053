"""Examples per second: the bsnb training loop against a plain PyTorch DataLoader loop.

Same data (MNIST-1D, 4000 training examples), model (the 5,210-parameter CNN), optimiser (SGD,
momentum 0.9, lr 0.01) and thread count. Each round trains both loops for two epochs (the first
is warm-up) one after the other; the ratio is the median over rounds of the paired ratios, which
cancels the slow drift of a shared machine.

    python benchmarks/training_loop.py [--batch-sizes 16 128 1024] [--rounds 8] [--threads 1]

bsnb keeps the data as tensors on the device and draws each batch by indexing with a slice of a
permutation; the DataLoader fetches examples one by one and collates them. The last column is
the most any loop could gain over the DataLoader loop at that batch size: the plain loop's epoch
time over the same time without its fetching and collating (measured by iterating the
DataLoader alone). Where the model step dominates, no data pipeline can do better than that.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from bsnb import data, models, train


def plain_epochs(ds: data.Data, batch_size: int, epochs: int, seed: int) -> list[float]:
    """The textbook loop: TensorDataset + DataLoader(shuffle=True). Seconds per epoch."""
    torch.manual_seed(seed)
    model = models.build("cnn", ds.input_shape, ds.n_classes, width=25)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loader = DataLoader(TensorDataset(ds.x_train, ds.y_train), batch_size=batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    seconds = []
    for _ in range(epochs):
        model.train()
        start = time.perf_counter()
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        seconds.append(time.perf_counter() - start)
    return seconds


def fetch_only(ds: data.Data, batch_size: int, seed: int) -> float:
    """Seconds to iterate the same DataLoader for one epoch without training."""
    loader = DataLoader(TensorDataset(ds.x_train, ds.y_train), batch_size=batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    start = time.perf_counter()
    for _ in loader:
        pass
    return time.perf_counter() - start


def bsnb_epochs(ds: data.Data, batch_size: int, epochs: int, seed: int) -> list[float]:
    """The study's own loop (bsnb.train.train, as the notebooks run it). Training seconds per epoch.

    A real run samples 200 steps out of thousands; in a two-epoch run that would be every step,
    so the sampling here is kept to the same density (about one step in sixteen) as a 100-epoch
    run at batch 128.
    """
    steps = epochs * -(-len(ds.y_train) // batch_size)
    spec = train.TrainSpec(batch_size=batch_size, lr=0.01, momentum=0.9, epochs=epochs, log_points=max(2, steps // 16))
    run = train.train(spec, ds, seed)
    return [r["seconds"] for r in run.history[1:]]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 128, 1024])
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    ds = data.load("mnist1d", 4000, 1000, 1000, data_seed=0)
    n = len(ds.y_train)
    print(f"torch {torch.__version__}, {args.threads} thread(s), {n} training examples, {args.rounds} paired rounds "
          f"of 2 epochs per loop (the first is warm-up)")
    print(f"{'batch':>6} {'bsnb ex/s':>11} {'DataLoader ex/s':>16} {'ratio':>7} {'ceiling':>8}")
    for b in args.batch_sizes:
        ours, theirs, ratios, ceilings = [], [], [], []
        for r in range(args.rounds):
            o = bsnb_epochs(ds, b, 2, seed=r)[-1]
            t = plain_epochs(ds, b, 2, seed=r)[-1]
            f = fetch_only(ds, b, seed=r)
            ours.append(n / o)
            theirs.append(n / t)
            ratios.append(t / o)
            ceilings.append(t / max(t - f, 1e-9))
        print(f"{b:>6} {statistics.median(ours):>11,.0f} {statistics.median(theirs):>16,.0f} "
              f"{statistics.median(ratios):>6.2f}x {statistics.median(ceilings):>7.2f}x", flush=True)


if __name__ == "__main__":
    main()
