"""Utilities: synthetic data, memory measurement, split planning."""
from .synthetic_cityscapes import make_synthetic_cityscapes

__all__ = ['make_synthetic_cityscapes']
