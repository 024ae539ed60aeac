"""Training: data sources and latent caches, the trainers of each network, checkpoints,
distributed runs and the whole recipe."""
