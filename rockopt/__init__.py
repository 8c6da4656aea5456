"""rockopt: find the best way to train a rock-type classifier, and blend the best models."""

__version__ = "0.1.0"
