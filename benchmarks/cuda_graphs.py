"""Seconds per training epoch on a GPU: the stacked training step captured once as a CUDA graph and replayed,
against the same step run eagerly (issue "Protocol v4 at no extra cost", its GPU part).

    python benchmarks/cuda_graphs.py [--models 8] [--batch-sizes 16 32 256 1024] [--rounds 3] [--device cuda]

On the GPU the default profile's steps are bound by kernel launches (one step of the 1-D CNN at batch 16 took
about 2.8 ms on an H200): a graph launches the whole step (gather the batch, forward, backward, the optimiser's
update) at once. The MNIST-1D data and the CNN of the default profile, M seeds stacked (``bsnb.stacking``), SGD
with momentum 0.9 at one rate. Each round times one epoch of each way, in alternating order, after warm-up; the
ratio is the median of the paired ratios graph / eager (below 1: the graph is faster). Both ways take only the
epoch's whole batches (a graph replays one shape); the last column is the largest difference between the two
ways' weights after the same steps from the same start (0 or rounding: the graph computes what eager computes).

Without CUDA (``--device cpu``) it times the eager way alone and says so: CUDA graphs need a CUDA device.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from bsnb import data, models, stacking, train


def _loss(net, x, y, idx) -> torch.Tensor:
    """The training loop's loss: each model its own batch (``idx``: [M, B]), the sum of their means."""
    m = idx.shape[0]
    return F.cross_entropy(net(x[idx]).flatten(0, 1), y[idx].flatten(), reduction="none").view(m, -1).mean(1).sum()


class Way:
    """M stacked models and their optimiser, stepped eagerly or by replaying a captured graph."""

    def __init__(self, ds, args, m: int, batch: int, graph: bool):
        seeds = list(range(m))
        self.net = stacking.replicas(stacking.build("cnn", ds.input_shape, ds.n_classes, args.width, False, 0, seeds,
                                                    ds.device), True)
        self.opt = stacking.optimizer(self.net, "sgd", [0.01] * m, 0.9, 0.0)
        self.x, self.y, self.batch = ds.x_train, ds.y_train, batch
        self.gens = [torch.Generator().manual_seed(s) for s in seeds]
        self.idx = torch.zeros((m, batch), dtype=torch.long, device=ds.device)  # the graph's static input
        self.graph = None
        if graph:
            self._capture()

    def _step(self):
        self.opt.zero_grad()
        _loss(self.net, self.x, self.y, self.idx).backward()
        self.opt.step()

    def _capture(self):
        """Warm up on a side stream (the optimiser's momentum buffers are made there), then capture one step."""
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                self._step()
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        self.opt.zero_grad()
        with torch.cuda.graph(self.graph):
            _loss(self.net, self.x, self.y, self.idx).backward()
            self.opt.step()

    def epoch(self) -> float:
        n = len(self.y)
        perms = torch.stack([torch.randperm(n, generator=g) for g in self.gens]).to(self.x.device)
        models.sync(self.x.device)
        start = time.perf_counter()
        for i in range(n // self.batch):
            self.idx.copy_(perms[:, i * self.batch:(i + 1) * self.batch])
            if self.graph is not None:
                self.graph.replay()
            else:
                self._step()
        models.sync(self.x.device)
        return time.perf_counter() - start

    def weights(self) -> list[torch.Tensor]:
        return self.net.weights()


def same_steps(ds, args, m: int, batch: int) -> float:
    """The largest difference between the weights of the two ways after 2 epochs from the same start."""
    ways = [Way(ds, args, m, batch, graph=False), Way(ds, args, m, batch, graph=True)]
    eager, graph = ways
    # the graph's warm-up took 3 steps: give eager the same 3 on the same (zero) batch indices
    for _ in range(3):
        eager._step()
    for way in ways:
        way.epoch(), way.epoch()
    return max(float((a - b).abs().max()) for a, b in zip(eager.weights(), graph.weights()))


def measure(ds, args, m: int, batch: int) -> tuple[float, float, float]:
    """Median seconds per epoch eagerly and by graph, and the median paired ratio graph / eager."""
    use_graph = ds.device.type == "cuda"
    ways = {"eager": Way(ds, args, m, batch, graph=False)}
    if use_graph:
        ways["graph"] = Way(ds, args, m, batch, graph=True)
    for way in ways.values():
        way.epoch()  # warm-up
    times = {name: [] for name in ways}
    for r in range(args.rounds):
        for name in (list(ways) if r % 2 == 0 else list(ways)[::-1]):
            times[name].append(ways[name].epoch())
    eager = statistics.median(times["eager"])
    if not use_graph:
        return eager, float("nan"), float("nan")
    ratio = statistics.median(g / e for g, e in zip(times["graph"], times["eager"]))
    return eager, statistics.median(times["graph"]), ratio


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=int, nargs="+", default=[8])
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 32, 256, 1024])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--width", type=int, default=25)
    args = ap.parse_args(argv)
    device = train.resolve_device(args.device)
    ds = data.load("mnist1d", 4000, 1000, 1000, 0, device)
    cuda = device.type == "cuda"
    name = torch.cuda.get_device_name(device) if cuda else f"{device.type} (no CUDA: the eager way alone)"
    print(f"cnn, MNIST-1D 4000 examples, torch {torch.__version__}, {name}; seconds per epoch of whole batches, "
          f"median of {args.rounds} rounds")
    print(f"{'M':>3} {'batch':>6} {'eager':>8} {'graph':>8} {'ratio':>6} {'max |dw|':>9}")
    for m in args.models:
        for batch in args.batch_sizes:
            eager, graph, ratio = measure(ds, args, m, batch)
            diff = same_steps(ds, args, m, batch) if cuda else float("nan")
            print(f"{m:>3} {batch:>6} {eager:>8.3f} {graph:>8.3f} {ratio:>6.2f} {diff:>9.2g}", flush=True)


if __name__ == "__main__":
    main()
