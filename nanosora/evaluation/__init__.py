"""Evaluation: the benchmark run and scoring of a model, the autoencoder's evaluation, and
image-quality metrics."""
