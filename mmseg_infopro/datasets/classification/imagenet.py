"""ImageNet (or any image-folder classification set) from image files.

Two layouts:

* class folders (default): ``data_root/train/<class>/<image>`` and
  ``data_root/val/<class>/<image>``; the classes are the sub-folders of
  the split folder sorted by name (``n01440764``, ...), the label of an
  image is its folder's index. Images in nested folders of a class folder
  count too; image files are recognised by their extension
  (:data:`IMG_EXTENSIONS`, case-insensitive: ``.JPEG`` is found).
* a list file (``ann_file``): one ``<relative/path> <label>`` a line (the
  path relative to ``data_prefix``, by default ``data_root``; the last
  whitespace-separated field is the integer label; blank lines are
  skipped).

Data infos carry ``img_path`` and ``gt_label``; the pipeline loads the
image (``LoadImageFromFile``, BGR).
"""
import os
import os.path as osp
from typing import List, Optional, Union

from mmengine.dataset import BaseDataset

from mmseg.registry import DATASETS
from .base import (ClsDataFormatError, ClsDataNotFoundError, list_dir,
                   resolve_split)

#: image file extensions (compared lower-case)
IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.ppm', '.pgm', '.tif',
                  '.tiff', '.webp')
#: how many names an error message lists before "... and N more"
MAX_LISTED = 10


def is_image_file(name: str) -> bool:
    return name.lower().endswith(IMG_EXTENSIONS)


def _listing(items: List[str]) -> str:
    shown = ', '.join(items[:MAX_LISTED])
    more = len(items) - MAX_LISTED
    return shown + (f' ... and {more} more' if more > 0 else '')


def scan_class_folder(folder: str) -> List[str]:
    """Sorted paths of the image files under ``folder`` (recursively)."""
    paths = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames.sort()
        paths.extend(
            osp.join(dirpath, f) for f in sorted(filenames)
            if is_image_file(f))
    return paths


@DATASETS.register_module()
class ImageNetDataset(BaseDataset):
    """Image classification from class folders or a list file (see the
    module docstring).

    Args:
        split (str, optional): ``'train'``, ``'val'`` or ``'test'`` (the
            ``val`` folder: ImageNet's labelled test set); default
            ``'val'`` when ``test_mode`` else ``'train'``. Chooses the
            class-folder tree ``data_root/<folder>`` when neither
            ``ann_file`` nor ``data_prefix`` is given.
        data_root (str): default ``data/imagenet`` (relative to the
            working directory).
        ann_file (str): a list file (relative to ``data_root``); empty for
            the class-folder layout.
        data_prefix (str | dict, optional): the folder the images (class
            folders, or the list file's paths) are in, relative to
            ``data_root``; ``dict(img_path=...)`` or a string. Default: the
            split's folder for class folders, ``data_root`` for a list
            file.
        num_classes (int, optional): with a list file, labels must be in
            ``0..num_classes-1``; default ``len(metainfo['classes'])`` when
            given, else 1000.
        metainfo (dict, optional): ``classes`` (one per class folder or
            label; default the folder names / ``'0'``, ``'1'``, ...).
        **kwargs: mmengine ``BaseDataset`` arguments.
    """

    SPLIT_FOLDERS = dict(train='train', val='val', test='val')
    DEFAULT_ROOT = 'data/imagenet'
    NUM_CLASSES = 1000

    def __init__(self,
                 split: Optional[str] = None,
                 data_root: Optional[str] = None,
                 ann_file: str = '',
                 data_prefix: Union[str, dict, None] = None,
                 num_classes: Optional[int] = None,
                 metainfo: Optional[dict] = None,
                 test_mode: bool = False,
                 **kwargs) -> None:
        split = resolve_split(self, split, test_mode, self.SPLIT_FOLDERS,
                              'val')
        if num_classes is not None and num_classes < 1:
            raise ValueError(f'{type(self).__name__}: num_classes must be '
                             f'>= 1, got {num_classes}')
        self.split = split
        self.num_classes = num_classes
        self._classes_given = bool(metainfo) and 'classes' in metainfo
        if data_prefix is None:
            data_prefix = '' if ann_file else self.SPLIT_FOLDERS[split]
        if isinstance(data_prefix, str):
            data_prefix = dict(img_path=data_prefix)
        super().__init__(
            ann_file=ann_file,
            data_root=self.DEFAULT_ROOT if data_root is None else data_root,
            data_prefix=data_prefix,
            metainfo=metainfo,
            test_mode=test_mode,
            **kwargs)

    def load_data_list(self) -> List[dict]:
        if self.ann_file:
            return self.load_list_file()
        return self.load_class_folders()

    def _given_classes(self) -> Optional[tuple]:
        return tuple(self._metainfo['classes']) if self._classes_given \
            else None

    def load_class_folders(self) -> List[dict]:
        folder = self.data_prefix['img_path']
        layout = (f'expected class folders {folder}/<class>/<image> '
                  f'(split {self.split!r}), or a list file (ann_file)')
        if not osp.isdir(folder):
            raise ClsDataNotFoundError(
                f'ImageNet: no folder {folder}; {layout} '
                f'(data_root={self.data_root!r}).')
        entries = list_dir(folder)
        classes = [e for e in entries if osp.isdir(osp.join(folder, e))]
        if not classes:
            loose = [e for e in entries if is_image_file(e)]
            hint = (f'; it holds {len(loose)} images directly: sort them '
                    'into class folders or list them with labels in an '
                    'ann_file' if loose else '')
            raise ClsDataNotFoundError(
                f'ImageNet: {folder} holds no class folders{hint}; '
                f'{layout}.')
        data_list, empty = [], []
        for label, name in enumerate(classes):
            paths = scan_class_folder(osp.join(folder, name))
            if not paths:
                empty.append(name)
            data_list.extend(
                dict(img_path=p, gt_label=label) for p in paths)
        if empty:
            raise ClsDataNotFoundError(
                f'ImageNet: {len(empty)} of the {len(classes)} class folders '
                f'in {folder} hold no images ({_listing(empty)}); expected '
                f'image files ({", ".join(IMG_EXTENSIONS)}, any case) in '
                'every class folder.')
        given = self._given_classes()
        if given is not None and len(given) != len(classes):
            raise ClsDataFormatError(
                f'ImageNet: metainfo gives {len(given)} classes but {folder} '
                f'holds {len(classes)} class folders; expected one class '
                'name per folder (in sorted folder order).')
        if given is None:
            self._metainfo['classes'] = tuple(classes)
        return data_list

    def load_list_file(self) -> List[dict]:
        path, folder = self.ann_file, self.data_prefix['img_path']
        if not osp.isfile(path):
            raise ClsDataNotFoundError(
                f'ImageNet: no list file {path} (ann_file, relative to '
                f'data_root={self.data_root!r}); expected lines '
                '"<relative/path> <label>".')
        if folder and not osp.isdir(folder):
            raise ClsDataNotFoundError(
                f'ImageNet: no image folder {folder} (data_prefix, the '
                f'folder the paths of {path} are relative to).')
        given = self._given_classes()
        num_classes = (len(given) if given is not None else
                       self.num_classes or self.NUM_CLASSES)
        data_list = []
        with open(path, encoding='utf-8') as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                fields = line.strip().rsplit(None, 1)
                try:
                    label = int(fields[1]) if len(fields) == 2 else None
                except ValueError:
                    label = None
                if label is None:
                    raise ClsDataFormatError(
                        f'{path}, line {lineno}: {line.rstrip()!r} is not '
                        '"<relative/path> <label>" (a path, whitespace, an '
                        'integer label).')
                if not 0 <= label < num_classes:
                    raise ClsDataFormatError(
                        f'{path}, line {lineno}: label {label} is out of '
                        f'range 0..{num_classes - 1} ({num_classes} '
                        'classes).')
                data_list.append(
                    dict(img_path=osp.join(folder, fields[0]),
                         gt_label=label))
        if not data_list:
            raise ClsDataFormatError(
                f'{path}: lists no images; expected lines '
                '"<relative/path> <label>".')
        if given is None:
            self._metainfo['classes'] = tuple(
                str(i) for i in range(num_classes))
        return data_list

    def get_cat_ids(self, idx: int) -> List[int]:
        return [self.get_data_info(idx)['gt_label']]
