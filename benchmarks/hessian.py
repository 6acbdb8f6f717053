"""Hessian eigenvalues and trace: bsnb.sharpness against PyHessian, same model, data and tolerance.

    pip install pyhessian   # the benchmark's only extra (the `bench` extra of pyproject.toml)
    python benchmarks/hessian.py [--examples 4000] [--repeats 3] [--threads 1]

The model is the study's CNN trained for 20 epochs at batch size 128 on MNIST-1D; the Hessian is
of the mean cross-entropy over ``--examples`` training examples, model in eval mode. Both tools
keep the gradient's graph and differentiate it again, so a Hessian-vector product costs the same
in both: the difference is the algorithm (Lanczos for bsnb; power iteration with deflation for
PyHessian). For the eigenvalues, PyHessian runs with its default tolerance (1e-3 relative change)
and bsnb's Lanczos tolerance is set so that its largest residual ||Hv - lambda v|| is no larger
than PyHessian's; both residuals are measured with the same operator and printed. For the trace,
both use Hutchinson's estimator: PyHessian until its running mean changes by less than 1e-3,
bsnb with the same number of probes. Times are medians over ``--repeats`` alternating runs.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from bsnb import data, models, sharpness, train


def trained_state(ds):
    spec = train.TrainSpec(batch_size=128, lr=0.01, momentum=0.9, epochs=20, log_points=2)
    return train.train(spec, ds, seed=0).states["final"]


def fresh(ds, state):
    net = models.build("cnn", ds.input_shape, ds.n_classes, width=25)
    net.load_state_dict(state)
    return net.eval()


def flat(vectors) -> np.ndarray:
    return torch.cat([v.reshape(-1) for v in vectors]).detach().double().numpy()


def residuals(ds_x, ds_y, state, ds, values, vectors) -> np.ndarray:
    """||Hv - lambda v|| for unit v, measured with one operator for both tools."""
    v = np.stack([x / np.linalg.norm(x) for x in vectors], axis=1)
    with sharpness.Hessian(fresh(ds, state), ds_x, ds_y) as h:
        return np.linalg.norm(h.matmat(v) - v * np.asarray(values), axis=0)


def pyhessian_run(ds, state, x, y, what: str, k: int = 1):
    import sys

    import pyhessian  # noqa: F401  (its package name shadows the module with the class)

    ph = sys.modules["pyhessian.hessian"]

    calls = {"n": 0}
    original = ph.hessian_vector_product

    def counted(*args, **kw):
        calls["n"] += 1
        return original(*args, **kw)

    ph.hessian_vector_product = counted
    try:
        torch.manual_seed(0)
        start = time.perf_counter()
        h = ph.hessian(fresh(ds, state), torch.nn.CrossEntropyLoss(), data=(x, y), cuda=False)
        if what == "eig":
            values, vectors = h.eigenvalues(top_n=k, tol=1e-3, maxIter=100)
            out = (np.asarray(values), [flat(v) for v in vectors])
        else:
            estimates = h.trace(maxIter=100, tol=1e-3)
            out = (float(np.mean(estimates)), len(estimates))
        return time.perf_counter() - start, calls["n"], out
    finally:
        ph.hessian_vector_product = original


def bsnb_eig(ds, state, x, y, k: int, tol: float):
    start = time.perf_counter()
    with sharpness.Hessian(fresh(ds, state), x, y) as h:
        eig = sharpness.top_eigenvalues(h, k=k, tol=tol)
    return time.perf_counter() - start, eig.matvecs, eig


def bsnb_trace(ds, state, x, y, samples: int):
    start = time.perf_counter()
    with sharpness.Hessian(fresh(ds, state), x, y) as h:
        tr = sharpness.hutchinson(h, samples=samples)
    return time.perf_counter() - start, tr.matvecs, tr


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=4000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    ds = data.load("mnist1d", max(args.examples, 1000), 1000, 1000, data_seed=0)
    x, y = ds.x_train[:args.examples], ds.y_train[:args.examples]
    state = trained_state(ds)
    print(f"torch {torch.__version__}, {args.threads} thread(s), CNN with {models.n_params(fresh(ds, state))} "
          f"parameters, Hessian over {len(y)} examples, median of {args.repeats} runs")
    print(f"{'task':8} {'tool':10} {'seconds':>8} {'HVPs':>5} {'max residual':>13}  result")
    for k in (1, 5):
        ph_times, ours_times = [], []
        for _ in range(args.repeats):
            t, n_ph, (values, vectors) = pyhessian_run(ds, state, x, y, "eig", k)
            ph_times.append(t)
        res_ph = residuals(x, y, state, ds, values, vectors)
        tol = float(res_ph.max() / abs(values).max())
        for _ in range(args.repeats):
            t, n_ours, eig = bsnb_eig(ds, state, x, y, k, tol)
            ours_times.append(t)
        a, b = statistics.median(ph_times), statistics.median(ours_times)
        print(f"top-{k:<4} {'PyHessian':10} {a:8.2f} {n_ph:5d} {res_ph.max():13.2e}  {np.round(values, 4).tolist()}")
        print(f"top-{k:<4} {'bsnb':10} {b:8.2f} {n_ours:5d} {eig.residuals.max():13.2e}  "
              f"{np.round(eig.values, 4).tolist()}")
        print(f"top-{k:<4} ratio: bsnb takes {b / a:.2f}x PyHessian's time and {n_ours / n_ph:.2f}x its HVPs; "
              f"residual {'<=' if eig.residuals.max() <= res_ph.max() else '>'} PyHessian's")
    ph_times, ours_times = [], []
    for _ in range(args.repeats):
        t, n_ph, (tr_ph, probes) = pyhessian_run(ds, state, x, y, "trace")
        ph_times.append(t)
    for _ in range(args.repeats):
        t, n_ours, tr = bsnb_trace(ds, state, x, y, probes)
        ours_times.append(t)
    a, b = statistics.median(ph_times), statistics.median(ours_times)
    print(f"{'trace':8} {'PyHessian':10} {a:8.2f} {n_ph:5d} {'':>13}  {tr_ph:.3f} ({probes} probes)")
    print(f"{'trace':8} {'bsnb':10} {b:8.2f} {n_ours:5d} {'':>13}  {tr.estimate:.3f} +- {tr.stderr:.3f} (standard error)")
    print(f"trace    ratio: bsnb takes {b / a:.2f}x PyHessian's time for the same probes, and reports a standard error")


if __name__ == "__main__":
    main()
