"""Hessian-vector products of M seeds: one after another (bsnb.sharpness.Hessian, the gradient's graph kept
between products) against one vectorised computation over the stacked seeds (torch.func: vmap over
forward-over-reverse, the issue "eight seeds for the price of three"'s lever for measurement).

    python benchmarks/hessian_seeds.py [--seeds 8] [--examples 4096] [--rounds 5] [--threads 1]

Both sides take the same M models of the study's CNN (initial weights of seeds 0 to M-1), the same examples and
the same random vectors, in turn in one process; it prints the time of one round of M products each way, their
ratio, and the largest relative difference of the products.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, jvp, stack_module_state, vmap

from bsnb import data, models, sharpness


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--examples", type=int, default=4096)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ds = data.load("mnist1d", max(args.examples, 1000), 1000, 1000, 0)
    x, y = ds.x_train[:args.examples], ds.y_train[:args.examples]
    nets = []
    for seed in range(args.seeds):
        torch.manual_seed(seed)
        nets.append(models.build("cnn", ds.input_shape, ds.n_classes, 25).eval())
    gen = torch.Generator().manual_seed(0)
    vs = [torch.randn(models.n_params(n), generator=gen) for n in nets]

    start = time.perf_counter()
    hessians = [sharpness.Hessian(n, x, y) for n in nets]
    build = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(args.rounds):
        one_by_one = [h.hvp(v) for h, v in zip(hessians, vs)]
    sequential = (time.perf_counter() - start) / args.rounds
    for h in hessians:
        h.close()

    params, buffers = stack_module_state(nets)
    names, base = list(params), nets[0]

    def loss(p, b):
        return F.cross_entropy(functional_call(base, (p, b), (x,)), y)

    def hvp(p, b, v):
        return jvp(lambda q: grad(loss)(q, b), (p,), (v,))[1]

    def split(v):
        return dict(zip(names, (part.view(params[k].shape[1:]) for k, part in
                                zip(names, v.split([params[k][0].numel() for k in names])))))

    stacked_v = {k: torch.stack([split(v)[k] for v in vs]) for k in names}
    batched = vmap(hvp)
    with torch.no_grad():
        params = {k: p.detach() for k, p in params.items()}
    batched(params, buffers, stacked_v)  # warm-up
    start = time.perf_counter()
    for _ in range(args.rounds):
        together = batched(params, buffers, stacked_v)
    vectorised = (time.perf_counter() - start) / args.rounds
    flat = [torch.cat([together[k][j].reshape(-1) for k in names]) for j in range(args.seeds)]
    diff = max(float((a - b).norm() / b.norm()) for a, b in zip(flat, one_by_one))
    print(f"{args.seeds} seeds x {args.examples} examples, {args.threads} thread(s): one round of {args.seeds} "
          f"Hessian-vector products one after another {sequential * 1e3:.0f} ms (+{build * 1e3:.0f} ms to build the "
          f"graphs once), vectorised over the seeds {vectorised * 1e3:.0f} ms; ratio vectorised / one after another "
          f"{vectorised / sequential:.2f}; largest relative difference of the products {diff:.1e}")


if __name__ == "__main__":
    main()
