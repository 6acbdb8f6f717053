"""Examples per second of the bsnb training loop on each device present, per batch size, side by side.

The same code (``bsnb.train.train``), model and synthetic data of the chosen shape on the CPU and,
when present, on the GPU; each (device, batch size) trains ``--epochs`` epochs after one warm-up
epoch, and the GPU / CPU ratio is printed per batch size. Synthetic data is enough here: the
speed of a training step does not depend on what the pixels show.

    python benchmarks/devices.py                               # ResNet-20 on CIFAR-10-shaped data
    python benchmarks/devices.py --model cnn2d --shape 1 28 28 --width 8 --n 4000

On the CPU use few examples (``--n``): a ResNet-20 epoch of 45,000 images takes minutes there.
"""

from __future__ import annotations

import argparse

import torch

from bsnb import data, train


def throughput(model: str, width: int, shape, n: int, batch_size: int, device: str, epochs: int) -> float:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, *shape, generator=gen)
    y = torch.randint(0, 10, (n,), generator=gen)
    small = slice(0, min(n, 512))
    ds = data.Data("synthetic", x, y, x[small], y[small], x[small], y[small], 10).to(device)
    spec = train.TrainSpec(batch_size=batch_size, model=model, width=width, epochs=1, log_points=2)
    train.train(spec, ds, seed=0)  # warm-up: kernels chosen, memory allocated
    spec = train.TrainSpec(batch_size=batch_size, model=model, width=width, epochs=epochs, log_points=2)
    run = train.train(spec, ds, seed=0)
    rows = [r for r in run.history if r["epoch"] > 0]
    return sum(r["examples_per_second"] for r in rows) / len(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet")
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--shape", type=int, nargs="+", default=[3, 32, 32])
    ap.add_argument("--n", type=int, default=2048, help="training examples (synthetic)")
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 128, 512, 2048])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    name = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    print(f"{args.model} (width {args.width}) on {tuple(args.shape)} inputs, {args.n} examples; torch "
          f"{torch.__version__}, {torch.get_num_threads()} CPU threads, {name}")
    print(f"{'batch':>6} " + " ".join(f"{d + ' ex/s':>12}" for d in devices) + ("   cuda/cpu" if len(devices) > 1 else ""))
    for b in args.batch_sizes:
        if b > args.n:
            continue
        speeds = [throughput(args.model, args.width, args.shape, args.n, b, d, args.epochs) for d in devices]
        ratio = f"   {speeds[1] / speeds[0]:8.1f}x" if len(speeds) > 1 else ""
        print(f"{b:>6} " + " ".join(f"{s:>12,.0f}" for s in speeds) + ratio, flush=True)


if __name__ == "__main__":
    main()
