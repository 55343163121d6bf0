"""Image classification data: readers of CIFAR-10/100, SVHN, STL-10 and
ImageNet in their official formats, the pipeline's transforms, the
top-k accuracy metric and generators of small datasets in those formats.

Registered in mmseg's registries (configs use ``default_scope='mmseg'``):
datasets ``CIFAR10Dataset``, ``CIFAR100Dataset``, ``SVHNDataset``,
``STL10Dataset``, ``ImageNetDataset``; transforms ``RandomCropWithPadding``,
``RandomResizedCropCls``, ``ResizeCenterCrop``, ``PackClsInputs``; metric
``ClsAccuracy``.
"""
from .base import (ClsDataFormatError, ClsDataNotFoundError,
                   InMemoryClsDataset)
from .cifar import CIFAR10Dataset, CIFAR100Dataset
from .formatting import PackClsInputs
from .imagenet import ImageNetDataset
from .metric import ClsAccuracy
from .stl10 import STL10Dataset
from .structures import ClsDataSample
from .svhn import SVHNDataset
from .synthetic import (class_pattern_images, make_synthetic_cifar10,
                        make_synthetic_cifar100, make_synthetic_imagenet,
                        make_synthetic_stl10, make_synthetic_svhn,
                        write_cifar_batch, write_stl10_bin, write_svhn_mat)
from .transforms import (RandomCropWithPadding, RandomResizedCropCls,
                         ResizeCenterCrop)

__all__ = [
    'ClsDataNotFoundError', 'ClsDataFormatError', 'InMemoryClsDataset',
    'ClsDataSample', 'CIFAR10Dataset', 'CIFAR100Dataset', 'SVHNDataset',
    'STL10Dataset', 'ImageNetDataset', 'RandomCropWithPadding',
    'RandomResizedCropCls', 'ResizeCenterCrop', 'PackClsInputs',
    'ClsAccuracy', 'class_pattern_images', 'make_synthetic_cifar10',
    'make_synthetic_cifar100', 'make_synthetic_svhn', 'make_synthetic_stl10',
    'make_synthetic_imagenet', 'write_cifar_batch', 'write_svhn_mat',
    'write_stl10_bin'
]
