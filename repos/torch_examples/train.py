#!/usr/bin/env python3
"""A small PyTorch training for proving GPU energy measurement: synthetic data, no downloads.

Models: `mlp` (two hidden layers) and `convnet` (three conv layers) on a generated 10-class image
set (fixed seed, 32x32x3). Runs on the GPU when CUDA is there (or as --device says), else on the
CPU. Prints per-epoch loss and a final test_accuracy; `--gpu-memory-mib` makes it hold that much
GPU memory, to play a background that crowds the foreground.
"""

from __future__ import annotations

import argparse
import sys
import time

try:
    import torch
    from torch import nn
except ImportError:
    print("error: PyTorch is not installed in this interpreter; set `python` for torch_examples in "
          "repos/models.json to one that has it", file=sys.stderr)
    sys.exit(2)

DATA_SEED = 1234
CLASSES = 10
TRAIN, TEST = 8192, 2048
SIGNAL = 0.5
MAX_SHIFT = 12


def dataset(device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Images whose class is encoded by a per-class pattern plus noise: learnable, not trivial."""
    generator = torch.Generator().manual_seed(DATA_SEED)
    # Smooth (8x8, upsampled) class patterns under strong pixel noise: shapes a convnet can find.
    coarse = torch.randn(CLASSES, 3, 8, 8, generator=generator)
    patterns = nn.functional.interpolate(coarse, size=(32, 32), mode="bilinear", align_corners=False)
    labels = torch.randint(0, CLASSES, (TRAIN + TEST,), generator=generator)
    shifts = torch.randint(-MAX_SHIFT, MAX_SHIFT + 1, (TRAIN + TEST, 2), generator=generator)
    # Each image shows its pattern shifted: a convnet finds it anywhere, a plain MLP has to work for it.
    placed = torch.stack([torch.roll(patterns[label], (int(dy), int(dx)), dims=(1, 2))
                          for label, (dy, dx) in zip(labels.tolist(), shifts.tolist(), strict=True)])
    images = SIGNAL * placed + torch.randn(TRAIN + TEST, 3, 32, 32, generator=generator)
    images, labels = images.to(device), labels.to(device)
    return images[:TRAIN], labels[:TRAIN], images[TRAIN:], labels[TRAIN:]


def model(name: str) -> nn.Module:
    if name == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(),
                             nn.Linear(256, CLASSES))
    return nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(128, CLASSES))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", choices=["mlp", "convnet"], required=True)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--gpu-memory-mib", type=int, default=0, help="extra GPU memory to hold (MiB)")
    args = parser.parse_args()
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          "cpu" if args.device == "auto" else args.device)
    torch.manual_seed(args.seed)
    ballast = torch.empty(args.gpu_memory_mib * 2**20, dtype=torch.uint8, device=device) \
        if args.gpu_memory_mib and device.type == "cuda" else None
    train_x, train_y, test_x, test_y = dataset(device)
    network = model(args.model).to(device)
    optimiser = torch.optim.Adam(network.parameters(), lr=args.lr)
    loss_function = nn.CrossEntropyLoss()
    print(f"model={args.model} device={device} epochs={args.epochs} lr={args.lr} batch_size={args.batch_size}")
    started = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        order = torch.randperm(TRAIN, device=device)
        total = 0.0
        for start in range(0, TRAIN, args.batch_size):
            batch = order[start:start + args.batch_size]
            optimiser.zero_grad()
            loss = loss_function(network(train_x[batch]), train_y[batch])
            loss.backward()
            optimiser.step()
            total += float(loss) * len(batch)
        train_loss = total / TRAIN
        if not torch.isfinite(torch.tensor(train_loss)):
            print(f"error: training diverged at epoch {epoch}; try a smaller --lr", file=sys.stderr)
            return 3
        print(f"epoch {epoch}/{args.epochs} train_loss={train_loss:.4f}", flush=True)
    with torch.no_grad():
        accuracy = float((network(test_x).argmax(dim=1) == test_y).float().mean())
    if device.type == "cuda":
        torch.cuda.synchronize()
    print(f"test_accuracy: {accuracy:.4f}")
    print(f"train_time_s: {time.perf_counter() - started:.3f}")
    del ballast
    return 0


if __name__ == "__main__":
    sys.exit(main())
