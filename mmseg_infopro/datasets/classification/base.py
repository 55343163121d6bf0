"""What the classification readers share: their errors, the file lookup
and the in-memory dataset base class.

Every reader is an mmengine ``BaseDataset`` whose data infos carry
``gt_label`` (``int``, ``0..num_classes-1``) and either ``img_path`` (files
loaded by the pipeline's ``LoadImageFromFile``) or ``img`` (an in-memory
``(H, W, 3)`` uint8 **BGR** array, as mmcv's loaders give, plus
``img_shape`` / ``ori_shape`` ``(H, W)``; no loading transform then).
"""
import os
import os.path as osp
from typing import List, Optional, Sequence

import numpy as np
from mmengine.dataset import BaseDataset


class ClsDataNotFoundError(FileNotFoundError):
    """A file or folder the dataset needs is not there, or a class folder
    tree holds no images. The message lists what was expected and where
    it was looked for."""


class ClsDataFormatError(ValueError):
    """A dataset file is there but does not hold what its format says:
    wrong array shape or row length, a label out of range, a malformed
    list-file line, an unreadable pickle / .mat file. The message names
    the file and what was expected."""


def find_files(data_root: str, names: Sequence[str],
               subdirs: Sequence[str], dataset: str, archive: str) -> str:
    """The first folder of ``data_root/<subdir>`` (in ``subdirs`` order;
    ``''`` is ``data_root`` itself) that holds all ``names``.

    Raises:
        ClsDataNotFoundError: no folder holds them all; the message lists
            the files, the folders looked in, what each lacks, and the
            official archive.
    """
    looked = []
    for subdir in subdirs:
        folder = osp.join(data_root, subdir) if subdir else data_root
        missing = [n for n in names if not osp.isfile(osp.join(folder, n))]
        if not missing:
            return folder
        looked.append(f'    {folder}: missing {", ".join(missing)}'
                      if osp.isdir(folder) else
                      f'    {folder}: no such directory')
    raise ClsDataNotFoundError(
        f'{dataset}: cannot find the files {", ".join(names)}.\n'
        'Looked in:\n' + '\n'.join(looked) + '\n'
        f'Expected the official {archive} extracted there '
        f'(data_root={data_root!r}).')


def check_labels(labels: np.ndarray, num_classes: int, file: str,
                 low: int = 0, note: str = '') -> None:
    """Raise :class:`ClsDataFormatError` naming ``file``, the first bad
    index, its value and the allowed range if a label is outside
    ``low..low+num_classes-1``."""
    high = low + num_classes - 1
    bad = np.flatnonzero((labels < low) | (labels > high))
    if bad.size:
        i = int(bad[0])
        raise ClsDataFormatError(
            f'{file}: label {int(labels[i])} at index {i} is out of range '
            f'{low}..{high}{note} ({bad.size} bad label(s) in all).')


class InMemoryClsDataset(BaseDataset):
    """Base of the readers whose files hold all images in arrays
    (CIFAR, SVHN, STL-10).

    Subclasses implement :meth:`load_arrays`, returning the split's images
    ``(N, H, W, 3)`` uint8 **BGR** and labels ``(N,)`` int64 in
    ``0..num_classes-1``. The images are kept in one array
    (``self.images``) outside the serialised data list; each data info
    holds ``img_index`` and ``gt_label``, and :meth:`get_data_info` adds
    ``img`` (a copy, ``(H, W, 3)`` uint8 BGR), ``img_shape`` and
    ``ori_shape`` (``(H, W)``).

    Args:
        split (str, optional): one of ``SPLITS``; default ``'test'`` when
            ``test_mode`` else ``'train'``.
        data_root (str): the folder holding the files (relative paths are
            relative to the working directory). Defaults to
            ``DEFAULT_ROOT``.
        metainfo (dict, optional): overrides, e.g. ``classes``.
        **kwargs: mmengine ``BaseDataset`` arguments (``pipeline``,
            ``test_mode``, ``indices``, ``lazy_init``, ...).
    """

    SPLITS = ('train', 'test')
    DEFAULT_ROOT = ''

    def __init__(self,
                 split: Optional[str] = None,
                 data_root: Optional[str] = None,
                 metainfo: Optional[dict] = None,
                 test_mode: bool = False,
                 **kwargs) -> None:
        self.split = resolve_split(self, split, test_mode, self.SPLITS,
                                   'test')
        self.images: Optional[np.ndarray] = None
        self._classes_given = bool(metainfo) and 'classes' in metainfo
        super().__init__(
            data_root=self.DEFAULT_ROOT if data_root is None else data_root,
            metainfo=metainfo,
            test_mode=test_mode,
            **kwargs)

    def load_arrays(self):
        """Return ``(images, labels)``: ``(N, H, W, 3)`` uint8 BGR and
        ``(N,)`` int64."""
        raise NotImplementedError

    def set_classes(self, classes: Sequence[str]) -> None:
        """Use the class names read from the dataset's files, unless the
        config's ``metainfo`` gave ``classes``."""
        if not self._classes_given:
            self._metainfo['classes'] = tuple(classes)

    def load_data_list(self) -> List[dict]:
        images, labels = self.load_arrays()
        self.images = np.ascontiguousarray(images)
        return [
            dict(img_index=i, gt_label=int(label))
            for i, label in enumerate(labels)
        ]

    def get_data_info(self, idx: int) -> dict:
        info = super().get_data_info(idx)
        img = self.images[info['img_index']].copy()
        info['img'] = img
        info['img_shape'] = img.shape[:2]
        info['ori_shape'] = img.shape[:2]
        return info


def resolve_split(dataset, split: Optional[str], test_mode: bool,
                  allowed: Sequence[str], test_split: str) -> str:
    """``split``, or ``test_split`` / ``'train'`` by ``test_mode`` when it
    is None; ``ValueError`` naming the dataset and the allowed splits."""
    if split is None:
        split = test_split if test_mode else 'train'
    if split not in allowed:
        raise ValueError(f'{type(dataset).__name__}: split must be one of '
                         f'{tuple(allowed)}, got {split!r}')
    return split


def list_dir(folder: str) -> List[str]:
    """Sorted entries of ``folder`` (``[]`` if it is missing)."""
    return sorted(os.listdir(folder)) if osp.isdir(folder) else []
