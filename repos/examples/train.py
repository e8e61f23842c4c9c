#!/usr/bin/env python3
"""A small, real training in NumPy: classify points of three interleaved spirals.

Models: `softmax` (linear), `mlp` (one hidden layer), `deep_mlp` (three hidden layers), trained by
mini-batch SGD with momentum, weight decay and dropout. The data set is generated from a fixed seed
(the same for every run, whatever --seed is), so runs differ only by their hyperparameters.
Nothing is downloaded. Exits with status 3 if the loss diverges.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time

import numpy as np

DATA_SEED = 20241124
POINTS_PER_CLASS = 10000
CLASSES = 3
TEST_FRACTION = 0.2
HIDDEN_UNITS = 64
MOMENTUM = 0.9
DIVERGED_LOSS = 10 * np.log(CLASSES)
"""Ten times the loss of a uniform guess: no training that is learning gets there."""

LAYERS = {"softmax": [], "mlp": [HIDDEN_UNITS], "deep_mlp": [HIDDEN_UNITS, HIDDEN_UNITS, HIDDEN_UNITS]}


def spirals() -> tuple[np.ndarray, np.ndarray]:
    """Three noisy spiral arms in the plane, plus their squared radius as a third feature."""
    rng = np.random.default_rng(DATA_SEED)
    features, labels = [], []
    for label in range(CLASSES):
        radius = np.linspace(0.05, 1.0, POINTS_PER_CLASS)
        angle = radius * 4.0 + label * 2 * np.pi / CLASSES + rng.normal(0, 0.2, POINTS_PER_CLASS)
        x, y = radius * np.cos(angle), radius * np.sin(angle)
        features.append(np.stack([x, y, x * x + y * y], axis=1))
        labels.append(np.full(POINTS_PER_CLASS, label))
    order = rng.permutation(CLASSES * POINTS_PER_CLASS)
    return np.concatenate(features)[order], np.concatenate(labels)[order]


class Network:
    """Fully connected ReLU layers and a softmax output; inverted dropout on every layer's input."""

    def __init__(self, sizes: list[int], dropout: float, rng: np.random.Generator):
        self.weights = [rng.normal(0, np.sqrt(2.0 / n_in), (n_in, n_out)) for n_in, n_out in itertools.pairwise(sizes)]
        self.biases = [np.zeros(n_out) for n_out in sizes[1:]]
        self.velocity = [np.zeros_like(p) for p in self.weights + self.biases]
        self.dropout = dropout
        self.rng = rng

    def forward(self, x: np.ndarray, train: bool) -> tuple[np.ndarray, list[np.ndarray]]:
        inputs = []
        for layer, (w, b) in enumerate(zip(self.weights, self.biases)):
            if train and self.dropout > 0:
                keep = self.rng.random(x.shape) >= self.dropout
                x = x * keep / (1.0 - self.dropout)
            inputs.append(x)
            x = x @ w + b
            if layer < len(self.weights) - 1:
                x = np.maximum(x, 0.0)
        shifted = x - x.max(axis=1, keepdims=True)
        log_probabilities = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        return log_probabilities, inputs

    def step(self, x: np.ndarray, y: np.ndarray, learning_rate: float, weight_decay: float) -> float:
        log_probabilities, inputs = self.forward(x, train=True)
        # Exact cross-entropy from log-probabilities: no epsilon that would cap a diverging loss.
        loss = -log_probabilities[np.arange(len(y)), y].mean()
        grad = np.exp(log_probabilities)
        grad[np.arange(len(y)), y] -= 1.0
        grad /= len(y)
        grads_w, grads_b = [], []
        for layer in reversed(range(len(self.weights))):
            grads_w.insert(0, inputs[layer].T @ grad + weight_decay * self.weights[layer])
            grads_b.insert(0, grad.sum(axis=0))
            if layer > 0:
                grad = (grad @ self.weights[layer].T) * (inputs[layer] > 0)
        for i, (param, g) in enumerate(zip(self.weights + self.biases, grads_w + grads_b)):
            self.velocity[i] = MOMENTUM * self.velocity[i] - learning_rate * g
            param += self.velocity[i]
        return float(loss)

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        log_probabilities, _ = self.forward(x, train=False)
        loss = -log_probabilities[np.arange(len(y)), y].mean()
        return float(loss), float((log_probabilities.argmax(axis=1) == y).mean())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", choices=sorted(LAYERS), required=True)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--lr", type=float, default=0.05, help="learning rate")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    if not 0 <= args.dropout < 1:
        parser.error("--dropout must be in [0, 1)")

    features, labels = spirals()
    split = int(len(labels) * (1 - TEST_FRACTION))
    train_x, train_y, test_x, test_y = features[:split], labels[:split], features[split:], labels[split:]
    rng = np.random.default_rng(args.seed)
    network = Network([features.shape[1], *LAYERS[args.model], CLASSES], args.dropout, rng)
    print(f"model={args.model} epochs={args.epochs} lr={args.lr} batch_size={args.batch_size} "
          f"dropout={args.dropout} weight_decay={args.weight_decay} seed={args.seed} "
          f"train={len(train_y)} test={len(test_y)}")

    started = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        epoch_started = time.perf_counter()
        order = rng.permutation(len(train_y))
        losses = []
        for start in range(0, len(order), args.batch_size):
            batch = order[start:start + args.batch_size]
            losses.append(network.step(train_x[batch], train_y[batch], args.lr, args.weight_decay))
        train_loss = float(np.mean(losses))
        if not np.isfinite(train_loss) or train_loss > DIVERGED_LOSS:
            print(f"error: training diverged at epoch {epoch} (train_loss={train_loss}); "
                  f"try a smaller --lr than {args.lr}", file=sys.stderr)
            return 3
        _, train_accuracy = network.evaluate(train_x, train_y)
        print(f"epoch {epoch}/{args.epochs} train_loss={train_loss:.4f} train_accuracy={train_accuracy:.4f} "
              f"time_s={time.perf_counter() - epoch_started:.3f}")

    test_loss, test_accuracy = network.evaluate(test_x, test_y)
    print(f"test_loss: {test_loss:.4f}")
    print(f"test_accuracy: {test_accuracy:.4f}")
    print(f"train_time_s: {time.perf_counter() - started:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
