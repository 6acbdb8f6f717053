"""Seconds per training epoch: M models stacked (bsnb.stacking) against the same M one after another.

    python benchmarks/stacking.py [--models 1 3 12] [--batch-sizes 16 32 64 128 256 1024] [--rounds 3]
                                  [--threads 1] [--device cpu] [--model cnn] [--batch-norm]

The MNIST-1D data and the model of the default profile. Each round times one epoch of each way,
in alternating order, after a warm-up epoch; the ratio is the median over rounds of the paired
ratios stacked / one after another (below 1: stacking is faster). The last column is what
``stack: auto`` picks for the seeds of a setting (M = 3) or for a search (M = 12) on this device.
Each epoch is the training loop's step: each model its own batch order, forward, backward of the
summed losses, the optimiser; no evaluation. One after another is the loop's unstacked way
(``stacking.Separate``): each model's own step in turn.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch
import torch.nn.functional as F

from bsnb import data, models, stacking, train


def _epoch(net, opt, x, y, batch: int, generators) -> float:
    n, m = len(y), net.m
    perms = torch.stack([torch.randperm(n, generator=g) for g in generators]).to(x.device)
    models.sync(x.device)
    start = time.perf_counter()
    for i in range(math.ceil(n / batch)):
        idx = perms[:, i * batch:(i + 1) * batch]
        losses = F.cross_entropy(net(x[idx]).flatten(0, 1), y[idx].flatten(), reduction="none").view(m, -1).mean(1)
        opt.zero_grad()
        losses.sum().backward()
        opt.step()
    models.sync(x.device)
    return time.perf_counter() - start


def _setup(ds, args, seeds, stacked: bool):
    modules = stacking.build(args.model, ds.input_shape, ds.n_classes, args.width, args.batch_norm, 0, seeds,
                             ds.device)
    net = stacking.replicas(modules, stacked)
    return [(net, stacking.optimizer(net, "sgd", [0.01] * net.m, 0.9, 0.0),
             [torch.Generator().manual_seed(s) for s in seeds])]


def measure(ds, args, m: int, batch: int) -> tuple[float, float, float]:
    """Median seconds per epoch stacked, one after another, and the median paired ratio."""
    seeds = list(range(m))
    ways = {"stacked": _setup(ds, args, seeds, True), "alone": _setup(ds, args, seeds, False)}

    def run(way):
        return sum(_epoch(net, opt, ds.x_train, ds.y_train, batch, gens) for net, opt, gens in ways[way])

    run("stacked"), run("alone")  # warm-up
    times = {"stacked": [], "alone": []}
    for r in range(args.rounds):
        for way in (("stacked", "alone") if r % 2 == 0 else ("alone", "stacked")):
            times[way].append(run(way))
    ratio = statistics.median(s / a for s, a in zip(times["stacked"], times["alone"]))
    return statistics.median(times["stacked"]), statistics.median(times["alone"]), ratio


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=int, nargs="+", default=[1, 3, 12])
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 32, 64, 128, 256, 1024])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--model", default="cnn")
    ap.add_argument("--width", type=int, default=25)
    ap.add_argument("--batch-norm", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = train.resolve_device(args.device)
    ds = data.load("mnist1d", 4000, 1000, 1000, 0, device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{device.type}, {args.threads} thread(s)"
    print(f"{args.model}{' + batch norm' if args.batch_norm else ''}, MNIST-1D 4000 examples, torch "
          f"{torch.__version__}, {name}; seconds per epoch, median of {args.rounds} rounds")
    print(f"{'M':>3} {'batch':>6} {'stacked':>9} {'one by one':>11} {'ratio':>6}  auto")
    for m in args.models:
        for batch in args.batch_sizes:
            s, a, ratio = measure(ds, args, m, batch)
            way = stacking.path(args.model, args.batch_norm)
            auto = "stack" if stacking.use_stack("auto", m, batch, device, way) else "one by one"
            print(f"{m:>3} {batch:>6} {s:>9.3f} {a:>11.3f} {ratio:>6.2f}  {auto if m > 1 else '-'}", flush=True)


if __name__ == "__main__":
    main()
