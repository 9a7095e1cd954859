"""Recommended Tools & Platforms: one module per line of the list, one Experiment per tool."""
