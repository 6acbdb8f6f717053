"""Wall time per epoch measured alone: the small and the large batch timed in turn, on one thread.

The training runs time their epochs too, but while other jobs of the sweep share the machine, so
their times say as much about the neighbours as about the batch size. C3 is decided from this
measurement instead, taken by the findings after the sweep, when nothing else runs: each repeat
times one epoch of each batch size, the order alternating, so a drift in the machine's speed
falls on both alike and the ratio is paired by repeat.
"""

from __future__ import annotations

import math
import time

import pandas as pd
import torch
import torch.nn.functional as F

from bsnb import data as data_mod
from bsnb import models, stacking


def _one_epoch(model, opt, x, y, batch: int, generator) -> float:
    perm = torch.randperm(len(y), generator=generator).to(x.device)
    models.sync(x.device)
    start = time.perf_counter()
    for i in range(math.ceil(len(y) / batch)):
        idx = perm[i * batch:(i + 1) * batch]
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    models.sync(x.device)
    return time.perf_counter() - start


def interleaved_epochs(params: dict, batch_sizes, repeats: int = 5, threads: int = 1,
                       device: str = "cpu") -> pd.DataFrame:
    """Seconds per training epoch of each batch size, ``repeats`` times in alternating order, after one warm-up
    epoch each; one row per (repeat, batch size). ``params`` is a training run's setting (its ``params.json``)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        dev = torch.device(device)
        ds = data_mod.of_job(params, dev)
        setups = {}
        for b in batch_sizes:
            torch.manual_seed(0)
            model = models.of_job(params, ds)
            opt = stacking.torch_optimizer(params["optimizer"], model.parameters(), params["lr"], params["momentum"],
                                           beta2=params.get("beta2", 0.999))
            setups[b] = (model, opt, torch.Generator().manual_seed(b))
            _one_epoch(model, opt, ds.x_train, ds.y_train, b, setups[b][2])  # warm-up
        rows = []
        for r in range(repeats):
            order = list(batch_sizes) if r % 2 == 0 else list(reversed(batch_sizes))
            for b in order:
                model, opt, gen = setups[b]
                seconds = _one_epoch(model, opt, ds.x_train, ds.y_train, b, gen)
                rows.append({"repeat": r, "batch_size": b, "seconds_per_epoch": seconds,
                             "examples_per_second": len(ds.y_train) / seconds, "threads": threads,
                             "device": str(dev)})
        return pd.DataFrame(rows)
    finally:
        torch.set_num_threads(previous)
