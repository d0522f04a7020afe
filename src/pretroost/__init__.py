"""pretroost: pretrain structure-agnostic Roost models and benchmark them on Matbench."""

__version__ = "0.1.0"
