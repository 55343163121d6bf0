"""CIFAR-10 and CIFAR-100 from the official python pickle batches.

The official ``cifar-10-python.tar.gz`` extracts to
``cifar-10-batches-py/`` holding ``data_batch_1`` .. ``data_batch_5``,
``test_batch`` and ``batches.meta``; ``cifar-100-python.tar.gz`` extracts
to ``cifar-100-python/`` holding ``train``, ``test`` and ``meta``. Each
file is a dict pickled by Python 2 (keys are ``bytes`` when loaded with
``encoding='bytes'``):

* a batch: ``b'data'`` ``(N, 3072)`` uint8, a row being the R plane
  (1024 values, row-major 32x32), then G, then B; ``b'labels'`` (CIFAR-10)
  or ``b'fine_labels'`` (CIFAR-100), ``N`` ints;
* the meta file: ``b'label_names'`` (CIFAR-10) or ``b'fine_label_names'``
  (CIFAR-100), the class names as ``bytes``.

The readers give ``(32, 32, 3)`` uint8 **BGR** images (mmcv's convention;
``ImgDataPreprocessor(bgr_to_rgb=True)`` turns them back to RGB).
"""
import os.path as osp
from typing import List, Optional, Tuple

import numpy as np

from mmseg.registry import DATASETS
from ...safe_loading import (plain_data_globals, refused_global,
                             restricted_pickle_load)
from .base import (ClsDataFormatError, InMemoryClsDataset, check_labels,
                   find_files)


def load_pickle(path: str, what: str) -> dict:
    """The dict pickled in ``path`` (Python 2 pickles: ``encoding='bytes'``)
    with its ``bytes`` keys decoded to ``str``.

    The file is unpickled without running code: the only globals it may
    name are numpy's array pickling (what the official batches hold beside
    dicts, lists, bytes, str and ints).

    Raises:
        ClsDataFormatError: the file cannot be unpickled, names another
            global, or holds no dict.
    """
    try:
        with open(path, 'rb') as f:
            obj = restricted_pickle_load(f, plain_data_globals(),
                                         encoding='bytes')
    except Exception as error:  # truncated file, not a pickle, ...
        refused = refused_global(error)
        if refused is not None:
            raise ClsDataFormatError(
                f'{path}: refused to unpickle it: it names the global '
                f'`{refused}`, which an official CIFAR file never holds '
                '(only dicts, lists, bytes, str, ints and numpy arrays); '
                f'unpickling it could run code. Expected {what}.') from error
        raise ClsDataFormatError(
            f'{path}: cannot unpickle it ({type(error).__name__}: {error}); '
            f'expected {what}.') from error
    if not isinstance(obj, dict):
        raise ClsDataFormatError(
            f'{path}: holds a {type(obj).__name__}; expected {what} (a '
            'pickled dict).')
    return {k.decode('latin1') if isinstance(k, bytes) else k: v
            for k, v in obj.items()}


def _get(entry: dict, key: str, path: str, what: str):
    if key not in entry:
        raise ClsDataFormatError(
            f'{path}: has no key {key!r} (keys: {sorted(entry)}); expected '
            f'{what}.')
    return entry[key]


def cifar_rows_to_bgr(data: np.ndarray, image_size: int = 32) -> np.ndarray:
    """``(N, 3*S*S)`` rows (R, G, B planes, each row-major ``S x S``) to
    ``(N, S, S, 3)`` uint8 BGR (contiguous)."""
    rgb = data.reshape(-1, 3, image_size, image_size).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(rgb[..., ::-1])


class _CIFARDataset(InMemoryClsDataset):
    """The reader shared by CIFAR-10 and CIFAR-100 (see the module
    docstring for the format).

    Args:
        split (str, optional): ``'train'`` or ``'test'``; default
            ``'test'`` when ``test_mode`` else ``'train'``.
        data_root (str): the folder holding the extracted archive's folder
            (``ARCHIVE_DIR``) or the files themselves; the archive's folder
            is looked in first. Relative to the working directory.
        metainfo (dict, optional): ``classes`` overrides the names read
            from the meta file.
        image_size (int): side of the images; 32 for the real data (other
            values only for generated data).
        **kwargs: mmengine ``BaseDataset`` arguments.
    """

    NAME = ''
    ARCHIVE = ''
    ARCHIVE_DIR = ''
    NUM_CLASSES = 0
    SPLIT_FILES = {}
    META_FILE = ''
    LABELS_KEY = ''
    NAMES_KEY = ''

    def __init__(self,
                 split: Optional[str] = None,
                 data_root: Optional[str] = None,
                 metainfo: Optional[dict] = None,
                 image_size: int = 32,
                 **kwargs) -> None:
        self.image_size = image_size
        super().__init__(split=split, data_root=data_root,
                         metainfo=metainfo, **kwargs)

    def load_arrays(self) -> Tuple[np.ndarray, np.ndarray]:
        names = list(self.SPLIT_FILES[self.split])
        folder = find_files(self.data_root, names + [self.META_FILE],
                            subdirs=(self.ARCHIVE_DIR, ''),
                            dataset=self.NAME, archive=self.ARCHIVE)
        self.set_classes(self.read_class_names(
            osp.join(folder, self.META_FILE)))
        images, labels = [], []
        for name in names:
            batch_images, batch_labels = self.read_batch(
                osp.join(folder, name))
            images.append(batch_images)
            labels.append(batch_labels)
        return np.concatenate(images), np.concatenate(labels)

    def read_class_names(self, path: str) -> List[str]:
        """The ``NUM_CLASSES`` class names of the meta file."""
        what = (f'the {self.NAME} meta file (a dict with '
                f'{self.NAMES_KEY!r}: {self.NUM_CLASSES} names)')
        names = _get(load_pickle(path, what), self.NAMES_KEY, path, what)
        names = [n.decode('utf-8') if isinstance(n, bytes) else str(n)
                 for n in names]
        if len(names) != self.NUM_CLASSES:
            raise ClsDataFormatError(
                f'{path}: {self.NAMES_KEY!r} holds {len(names)} names; '
                f'expected {self.NUM_CLASSES} ({self.NAME}).')
        return names

    def read_batch(self, path: str) -> Tuple[np.ndarray, np.ndarray]:
        """``(N, S, S, 3)`` uint8 BGR images and ``(N,)`` int64 labels of
        one pickled batch."""
        size = self.image_size
        row = 3 * size * size
        what = (f'a {self.NAME} python batch (a dict with \'data\': (N, '
                f'{row}) uint8 and {self.LABELS_KEY!r}: N labels)')
        entry = load_pickle(path, what)
        data = np.asarray(_get(entry, 'data', path, what))
        labels = np.asarray(_get(entry, self.LABELS_KEY, path, what))
        if data.ndim != 2 or data.shape[1] != row:
            raise ClsDataFormatError(
                f'{path}: \'data\' has shape {data.shape}; expected (N, '
                f'{row}): rows of length {row} = 3 x {size} x {size} (R, G, '
                'B planes).')
        if data.dtype != np.uint8:
            raise ClsDataFormatError(
                f'{path}: \'data\' is {data.dtype}; expected uint8.')
        if labels.ndim != 1 or labels.shape[0] != data.shape[0]:
            raise ClsDataFormatError(
                f'{path}: {self.LABELS_KEY!r} holds {labels.size} labels '
                f'(shape {labels.shape}) for {data.shape[0]} images; '
                'expected one label per image.')
        if labels.size and labels.dtype.kind not in 'iu':
            raise ClsDataFormatError(
                f'{path}: {self.LABELS_KEY!r} holds {labels.dtype} values; '
                'expected integers.')
        labels = labels.astype(np.int64)
        check_labels(labels, self.NUM_CLASSES, path)
        return cifar_rows_to_bgr(data, size), labels


@DATASETS.register_module()
class CIFAR10Dataset(_CIFARDataset):
    """CIFAR-10 (50000 train / 10000 test images, 10 classes) from the
    python batches: ``data_batch_1`` .. ``data_batch_5`` (train),
    ``test_batch`` (test), ``batches.meta`` (class names). Items:
    ``img`` ``(32, 32, 3)`` uint8 BGR, ``gt_label`` 0..9. Default
    ``data_root``: ``data/cifar10`` (``cifar-10-batches-py/`` in it, or
    the files directly). See :class:`_CIFARDataset` for the arguments."""

    NAME = 'CIFAR-10'
    METAINFO = dict(classes=('airplane', 'automobile', 'bird', 'cat',
                             'deer', 'dog', 'frog', 'horse', 'ship',
                             'truck'))
    ARCHIVE = 'cifar-10-python.tar.gz'
    ARCHIVE_DIR = 'cifar-10-batches-py'
    DEFAULT_ROOT = 'data/cifar10'
    NUM_CLASSES = 10
    SPLIT_FILES = dict(
        train=tuple(f'data_batch_{i}' for i in range(1, 6)),
        test=('test_batch', ))
    META_FILE = 'batches.meta'
    LABELS_KEY = 'labels'
    NAMES_KEY = 'label_names'


@DATASETS.register_module()
class CIFAR100Dataset(_CIFARDataset):
    """CIFAR-100 (50000 train / 10000 test images, 100 fine classes) from
    the python files ``train``, ``test`` and ``meta`` (labels
    ``fine_labels``, names ``fine_label_names``; the coarse labels are not
    read). Items: ``img`` ``(32, 32, 3)`` uint8 BGR, ``gt_label`` 0..99.
    Default ``data_root``: ``data/cifar100`` (``cifar-100-python/`` in it,
    or the files directly)."""

    NAME = 'CIFAR-100'
    ARCHIVE = 'cifar-100-python.tar.gz'
    ARCHIVE_DIR = 'cifar-100-python'
    DEFAULT_ROOT = 'data/cifar100'
    NUM_CLASSES = 100
    SPLIT_FILES = dict(train=('train', ), test=('test', ))
    META_FILE = 'meta'
    LABELS_KEY = 'fine_labels'
    NAMES_KEY = 'fine_label_names'
