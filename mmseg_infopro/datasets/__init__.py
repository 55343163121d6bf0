"""Datasets: mmseg's Cityscapes with clear errors for bad input."""
from .checked_cityscapes import (BadSampleError, CheckedCityscapesDataset,
                                 CityscapesLayoutError)

__all__ = [
    'CheckedCityscapesDataset', 'BadSampleError', 'CityscapesLayoutError'
]
