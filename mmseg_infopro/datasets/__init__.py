"""Datasets: mmseg's Cityscapes with clear errors for bad input, and the
synthetic Cityscapes-format generator."""
from .checked_cityscapes import (BadSampleError, CheckedCityscapesDataset,
                                 CityscapesLayoutError)
from .synthetic_cityscapes import make_synthetic_cityscapes

__all__ = [
    'CheckedCityscapesDataset', 'BadSampleError', 'CityscapesLayoutError',
    'make_synthetic_cityscapes'
]
