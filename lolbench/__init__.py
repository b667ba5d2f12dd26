"""lolbench: measure and fix sink-collapse in long autoregressive video generation."""

__version__ = "0.1.0"
