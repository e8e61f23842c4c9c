"""Measure what deep-learning trainings cost in energy while their hyperparameters are mutated."""

__version__ = "0.1.0"
