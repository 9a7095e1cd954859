"""Reinforcement learning: tabular methods, policy gradients, DQN (Phase 3)."""
