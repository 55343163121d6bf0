"""STL-10 from the official binary files.

``stl10_binary.tar.gz`` extracts to ``stl10_binary/`` holding
``train_X.bin`` / ``train_y.bin`` (5000 images), ``test_X.bin`` /
``test_y.bin`` (8000), ``unlabeled_X.bin`` (not read) and
``class_names.txt``:

* ``*_X.bin``: raw uint8, 27648 = 3 x 96 x 96 bytes per image; each image
  is stored **column-major** (MATLAB order): the R, G, B planes one after
  the other, each plane transposed (column after column). numpy:
  ``x.reshape(-1, 3, 96, 96).transpose(0, 3, 2, 1)`` is ``(N, 96, 96, 3)``
  RGB.
* ``*_y.bin``: raw uint8 labels ``1..10``, one per image.
* ``class_names.txt``: the 10 class names, one a line.

The reader gives ``(96, 96, 3)`` uint8 **BGR** images and labels 0..9
(the file's label minus 1).
"""
import os.path as osp
from typing import List, Optional, Tuple

import numpy as np

from mmseg.registry import DATASETS
from .base import (ClsDataFormatError, InMemoryClsDataset, check_labels,
                   find_files)

STL10_SIZE = 96
STL10_BYTES = 3 * STL10_SIZE * STL10_SIZE
STL10_CLASSES = ('airplane', 'bird', 'car', 'cat', 'deer', 'dog', 'horse',
                 'monkey', 'ship', 'truck')


def stl10_to_bgr(raw: np.ndarray) -> np.ndarray:
    """Flat uint8 bytes of column-major images to ``(N, 96, 96, 3)`` BGR
    (contiguous)."""
    rgb = raw.reshape(-1, 3, STL10_SIZE, STL10_SIZE).transpose(0, 3, 2, 1)
    return np.ascontiguousarray(rgb[..., ::-1])


def read_class_names(path: str) -> Optional[List[str]]:
    """The 10 non-empty lines of ``class_names.txt``; ``None`` if it is
    missing. Another number of names raises :class:`ClsDataFormatError`."""
    if not osp.isfile(path):
        return None
    with open(path, encoding='utf-8') as f:
        names = [line.strip() for line in f if line.strip()]
    if len(names) != len(STL10_CLASSES):
        raise ClsDataFormatError(
            f'{path}: holds {len(names)} class names; expected '
            f'{len(STL10_CLASSES)}, one a line.')
    return names


@DATASETS.register_module()
class STL10Dataset(InMemoryClsDataset):
    """STL-10 labelled images (96x96, 10 classes).

    Items: ``img`` ``(96, 96, 3)`` uint8 BGR, ``gt_label`` 0..9.

    Args:
        split (str, optional): ``'train'`` or ``'test'``; default
            ``'test'`` when ``test_mode`` else ``'train'``.
        data_root (str): the folder holding ``stl10_binary/`` or the files
            themselves (default ``data/stl10``; relative to the working
            directory).
        metainfo (dict, optional): ``classes`` overrides the names (else
            ``class_names.txt`` when present, else the official names).
        **kwargs: mmengine ``BaseDataset`` arguments.
    """

    DEFAULT_ROOT = 'data/stl10'
    METAINFO = dict(classes=STL10_CLASSES)

    def load_arrays(self) -> Tuple[np.ndarray, np.ndarray]:
        x_name, y_name = f'{self.split}_X.bin', f'{self.split}_y.bin'
        folder = find_files(self.data_root, [x_name, y_name],
                            subdirs=('stl10_binary', ''), dataset='STL-10',
                            archive='stl10_binary.tar.gz')
        names = read_class_names(osp.join(folder, 'class_names.txt'))
        if names is not None:
            self.set_classes(names)
        x_path, y_path = osp.join(folder, x_name), osp.join(folder, y_name)
        raw = np.fromfile(x_path, dtype=np.uint8)
        if raw.size % STL10_BYTES:
            raise ClsDataFormatError(
                f'{x_path}: {raw.size} bytes is not a multiple of '
                f'{STL10_BYTES} (one 3 x {STL10_SIZE} x {STL10_SIZE} uint8 '
                'image); the file is truncated or not an STL-10 X file.')
        labels = np.fromfile(y_path, dtype=np.uint8).astype(np.int64)
        num = raw.size // STL10_BYTES
        if labels.size != num:
            raise ClsDataFormatError(
                f'{y_path}: holds {labels.size} labels for the {num} images '
                f'of {x_path}; expected one uint8 label per image.')
        check_labels(labels, 10, y_path, low=1,
                     note=' (STL-10 labels are 1-based)')
        return stl10_to_bgr(raw), labels - 1
