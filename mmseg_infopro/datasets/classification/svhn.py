"""SVHN (cropped digits) from the official ``.mat`` files.

``train_32x32.mat`` (73257 images), ``test_32x32.mat`` (26032) and
``extra_32x32.mat`` (531131) are MATLAB files holding

* ``X``: ``(32, 32, 3, N)`` uint8, RGB;
* ``y``: ``(N, 1)`` labels ``1..10``, where ``10`` is the digit 0.

The reader gives ``(32, 32, 3)`` uint8 **BGR** images and labels 0..9 equal
to the digit (``10`` -> ``0``).
"""
import os.path as osp
from typing import Tuple

import numpy as np

from mmseg.registry import DATASETS
from .base import (ClsDataFormatError, InMemoryClsDataset, check_labels,
                   find_files)

SVHN_URL = 'http://ufldl.stanford.edu/housenumbers/'


def load_mat(path: str) -> dict:
    """``scipy.io.loadmat(path)``; an unreadable file raises
    :class:`ClsDataFormatError` naming it."""
    from scipy.io import loadmat
    try:
        return loadmat(path)
    except Exception as error:  # not a .mat, truncated, MATLAB v7.3, ...
        raise ClsDataFormatError(
            f'{path}: cannot read it with scipy.io.loadmat '
            f'({type(error).__name__}: {error}); expected an SVHN .mat file '
            "(MATLAB v5, 'X': (32, 32, 3, N) uint8, 'y': (N, 1)).") from error


@DATASETS.register_module()
class SVHNDataset(InMemoryClsDataset):
    """SVHN cropped digits, 10 classes (the digits ``'0'`` .. ``'9'``).

    Items: ``img`` ``(32, 32, 3)`` uint8 BGR, ``gt_label`` 0..9 (the
    digit).

    Args:
        split (str, optional): ``'train'``, ``'test'`` or ``'extra'``
            (``<split>_32x32.mat``); default ``'test'`` when ``test_mode``
            else ``'train'``.
        data_root (str): the folder holding the ``.mat`` files (default
            ``data/svhn``; relative to the working directory).
        metainfo (dict, optional): e.g. ``classes``.
        **kwargs: mmengine ``BaseDataset`` arguments.
    """

    SPLITS = ('train', 'test', 'extra')
    DEFAULT_ROOT = 'data/svhn'
    METAINFO = dict(classes=tuple(str(d) for d in range(10)))

    def load_arrays(self) -> Tuple[np.ndarray, np.ndarray]:
        name = f'{self.split}_32x32.mat'
        folder = find_files(self.data_root, [name], subdirs=('', ),
                            dataset='SVHN',
                            archive=f'{name} (from {SVHN_URL})')
        path = osp.join(folder, name)
        mat = load_mat(path)
        for key in ('X', 'y'):
            if key not in mat:
                keys = sorted(k for k in mat if not k.startswith('__'))
                raise ClsDataFormatError(
                    f'{path}: has no variable {key!r} (variables: {keys}); '
                    "expected 'X': (32, 32, 3, N) uint8 and 'y': (N, 1).")
        images, labels = np.asarray(mat['X']), np.asarray(mat['y'])
        if images.ndim != 4 or images.shape[:3] != (32, 32, 3):
            raise ClsDataFormatError(
                f"{path}: 'X' has shape {images.shape}; expected (32, 32, 3, "
                'N).')
        if images.dtype != np.uint8:
            raise ClsDataFormatError(
                f"{path}: 'X' is {images.dtype}; expected uint8.")
        num = images.shape[3]
        if labels.size != num or labels.ndim > 2 or (
                labels.ndim == 2 and 1 not in labels.shape):
            raise ClsDataFormatError(
                f"{path}: 'y' has shape {labels.shape} for {num} images; "
                f'expected ({num}, 1).')
        labels = labels.reshape(-1)
        if labels.size and (labels.dtype.kind not in 'iuf' or np.any(
                labels != np.round(labels))):
            raise ClsDataFormatError(
                f"{path}: 'y' holds {labels.dtype} values that are not "
                'integers; expected labels 1..10.')
        labels = labels.astype(np.int64)
        check_labels(labels, 10, path, low=1,
                     note=' (SVHN writes the digit 0 as 10)')
        rgb = images.transpose(3, 0, 1, 2)
        return np.ascontiguousarray(rgb[..., ::-1]), labels % 10
