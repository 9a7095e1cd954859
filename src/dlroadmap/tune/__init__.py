"""Hyperparameter search over a node's own Config: search spaces, grid and random search."""
