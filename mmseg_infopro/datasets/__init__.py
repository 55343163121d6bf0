"""Datasets: mmseg's Cityscapes with clear errors for bad input, the
synthetic Cityscapes-format generator, and the image classification data
(:mod:`.classification`: CIFAR / SVHN / STL-10 / ImageNet readers,
transforms, metric, generators)."""
from . import classification
from .checked_cityscapes import (BadSampleError, CheckedCityscapesDataset,
                                 CityscapesLayoutError)
from .classification import (CIFAR10Dataset, CIFAR100Dataset, ClsAccuracy,
                             ClsDataFormatError, ClsDataNotFoundError,
                             ClsDataSample, ImageNetDataset, PackClsInputs,
                             RandomCropWithPadding, RandomResizedCropCls,
                             ResizeCenterCrop, STL10Dataset, SVHNDataset,
                             make_synthetic_cifar10, make_synthetic_cifar100,
                             make_synthetic_imagenet, make_synthetic_stl10,
                             make_synthetic_svhn)
from .synthetic_cityscapes import make_synthetic_cityscapes

__all__ = [
    'CheckedCityscapesDataset', 'BadSampleError', 'CityscapesLayoutError',
    'make_synthetic_cityscapes', 'classification', 'CIFAR10Dataset',
    'CIFAR100Dataset', 'SVHNDataset', 'STL10Dataset', 'ImageNetDataset',
    'ClsDataNotFoundError', 'ClsDataFormatError', 'ClsDataSample',
    'RandomCropWithPadding', 'RandomResizedCropCls', 'ResizeCenterCrop',
    'PackClsInputs', 'ClsAccuracy', 'make_synthetic_cifar10',
    'make_synthetic_cifar100', 'make_synthetic_svhn', 'make_synthetic_stl10',
    'make_synthetic_imagenet'
]
