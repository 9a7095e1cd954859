"""dlroadmap: the deep-learning roadmap as one runnable, verified Python system."""

__version__ = "0.1.0"
