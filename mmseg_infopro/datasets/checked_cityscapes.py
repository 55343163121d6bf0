"""CityscapesDataset that stops on bad input with an error naming the file.

mmseg's ``CityscapesDataset`` trusts its input: a wrong ``data_root`` gives an
empty dataset (and a ``ZeroDivisionError`` / sampler error much later), an
image without its label fails deep inside ``LoadAnnotations``, a truncated
PNG fails as ``'NoneType' object has no attribute 'squeeze'`` and labelIds
(0..33) instead of trainIds train silently on wrong classes.
:class:`CheckedCityscapesDataset` checks the layout when the data list is
loaded, and every sample when it is loaded by the pipeline.
"""
import logging
import os.path as osp
from typing import Iterable, List, Optional, Sequence

import numpy as np
from mmcv.transforms import LoadAnnotations as BaseLoadAnnotations
from mmcv.transforms import LoadImageFromFile
from mmengine import fileio
from mmengine.logging import print_log

from mmseg.datasets import CityscapesDataset
from mmseg.registry import DATASETS

ON_BAD_SAMPLE = ('raise', 'skip')
#: how many file names an error message lists before "... and N more"
MAX_LISTED = 10


def add_note(error: BaseException, note: str) -> None:
    """``error.add_note(note)``; before Python 3.11 (no notes) the note is
    appended to the message (the first argument) instead, so that it is
    printed either way."""
    if hasattr(error, 'add_note'):
        error.add_note(note)
    elif error.args and isinstance(error.args[0], str):
        error.args = (f'{error.args[0]}\n{note}', ) + error.args[1:]
    else:
        error.args = error.args + (note, )


class CityscapesLayoutError(FileNotFoundError):
    """The data root does not hold the Cityscapes layout the config
    expects (missing directory, no images, images without labels)."""


class BadSampleError(ValueError):
    """One sample cannot be used: its image or label file is missing,
    corrupt or truncated, or the label holds values that are no train id."""


def _listing(paths: List[str]) -> str:
    shown = '\n'.join(f'    {p}' for p in paths[:MAX_LISTED])
    more = len(paths) - MAX_LISTED
    return shown + (f'\n    ... and {more} more' if more > 0 else '')


def _official_siblings(seg_map_path: str) -> List[str]:
    """The official annotation files of a ``*_labelTrainIds.png`` that
    tools/convert_cityscapes.py turns into it."""
    suffix = '_labelTrainIds.png'
    if not seg_map_path.endswith(suffix):
        return []
    base = seg_map_path[:-len(suffix)]
    return [base + '_polygons.json', base + '_labelIds.png']


@DATASETS.register_module()
class CheckedCityscapesDataset(CityscapesDataset):
    """``CityscapesDataset`` with clear errors for bad input.

    Checked when the data list is loaded (``full_init``):

    * ``data_root`` exists and is not empty; the image directory
      (``data_prefix.img_path``) exists and holds ``*_leftImg8bit.png``; the
      label directory (``data_prefix.seg_map_path``) exists;
    * every image has its ``*_gtFine_labelTrainIds.png`` (with a hint to run
      ``tools/convert_cityscapes.py`` when only the official
      ``*_gtFine_polygons.json`` / ``*_gtFine_labelIds.png`` are there).

    Checked for every sample, while the pipeline runs (``prepare_data``):

    * the image and the label decode (a corrupt or truncated PNG names the
      file instead of failing inside ``LoadAnnotations``);
    * the label is one channel of the image's height and width, and its
      values (after ``LoadAnnotations``' ``label_map`` /
      ``reduce_zero_label``) are class indices ``0..num_classes-1`` or
      ``ignore_index`` (255): labelIds (0..33) or colour PNGs are refused.
      The whole label is checked right after it is loaded, before any crop.

    Errors raised by other transforms get a note naming the sample's files.

    Args:
        on_bad_sample (str): ``'raise'`` (default) raises
            :class:`BadSampleError` / :class:`CityscapesLayoutError`.
            ``'skip'`` logs a warning naming the file and goes on without it:
            images without a label are dropped from the data list, and a
            sample that fails to load is replaced by another random one
            (mmengine's ``BaseDataset.__getitem__`` refetch, up to
            ``max_refetch`` times). In ``test_mode`` a bad sample is always
            an error: skipping it would change the evaluation. A missing or
            empty data root is an error in both modes.
        **kwargs: ``CityscapesDataset``'s arguments.
    """

    def __init__(self, on_bad_sample: str = 'raise', **kwargs) -> None:
        if on_bad_sample not in ON_BAD_SAMPLE:
            raise ValueError(f'on_bad_sample must be one of {ON_BAD_SAMPLE}, '
                             f'got {on_bad_sample!r}')
        self.on_bad_sample = on_bad_sample
        super().__init__(**kwargs)

    # ------------------------------------------------------------ data list
    def _layout(self) -> str:
        img_dir = self.data_prefix.get('img_path') or '<img_path>'
        ann_dir = self.data_prefix.get('seg_map_path') or '<seg_map_path>'
        root = self.data_root or '<data_root>'
        return (
            'Expected the Cityscapes layout (data_root + data_prefix):\n'
            f'    {osp.join(img_dir, "<city>", "<name>" + self.img_suffix)}\n'
            f'    {osp.join(ann_dir, "<city>", "<name>")}{self.seg_map_suffix}'
            '\ne.g. leftImg8bit/train/aachen/aachen_000000_000019'
            '_leftImg8bit.png and gtFine/train/aachen/aachen_000000_000019'
            '_gtFine_labelTrainIds.png. The official gtFine download has only '
            '*_gtFine_polygons.json and *_gtFine_labelIds.png: create the '
            'label files with `python tools/convert_cityscapes.py '
            f'{root}` (see docs/cityscapes.md).')

    def _contents(self, path: str) -> str:
        try:
            names = sorted(
                fileio.list_dir_or_file(path, backend_args=self.backend_args))
        except Exception:  # noqa: BLE001  (a listing is only a hint)
            return ''
        shown = names[:MAX_LISTED] + (['...'] if len(names) > MAX_LISTED
                                      else [])
        return f' ({path} contains: {", ".join(shown) or "nothing"})'

    def _check_layout(self) -> None:
        root = self.data_root
        if root:
            if not fileio.isdir(root, backend_args=self.backend_args):
                raise CityscapesLayoutError(
                    f'data_root {root!r} does not exist or is not a '
                    f'directory. {self._layout()}')
            if not any(True for _ in fileio.list_dir_or_file(
                    root, backend_args=self.backend_args)):
                raise CityscapesLayoutError(
                    f'data_root {root!r} is empty. {self._layout()}')
        if self.ann_file and not fileio.isdir(
                self.ann_file, backend_args=self.backend_args):
            if not fileio.exists(self.ann_file,
                                 backend_args=self.backend_args):
                raise CityscapesLayoutError(
                    f'split list ann_file={self.ann_file!r} does not exist '
                    '(tools/convert_cityscapes.py writes train.txt / val.txt '
                    'into the data root)')
        img_dir = self.data_prefix.get('img_path')
        if img_dir and not fileio.isdir(img_dir,
                                        backend_args=self.backend_args):
            raise CityscapesLayoutError(
                f'image directory {img_dir!r} does not exist'
                f'{self._contents(root) if root else ""}. {self._layout()}')
        ann_dir = self.data_prefix.get('seg_map_path')
        if ann_dir and not fileio.isdir(ann_dir,
                                        backend_args=self.backend_args):
            raise CityscapesLayoutError(
                f'label directory {ann_dir!r} does not exist'
                f'{self._contents(root) if root else ""}. {self._layout()}')

    def _bad_list(self, message: str, paths: List[str]) -> None:
        """Raise, or (on_bad_sample='skip') warn, about missing files."""
        text = f'{message}:\n{_listing(paths)}'
        if self.on_bad_sample == 'raise':
            raise CityscapesLayoutError(
                f'{text}\n{self._layout()}\n(on_bad_sample="skip" drops '
                'them with a warning instead)')
        print_log(f'{text}\nskipping them (on_bad_sample="skip")',
                  logger='current', level=logging.WARNING)

    def load_data_list(self) -> List[dict]:
        """mmseg's data list, after checking the layout; images without
        their label are named (and dropped with on_bad_sample='skip')."""
        self._check_layout()
        data_list = super().load_data_list()
        img_dir = self.data_prefix.get('img_path')
        if not data_list:
            where = (f'split list {self.ann_file!r}' if self.ann_file else
                     f'image directory {img_dir!r}')
            raise CityscapesLayoutError(
                f'no image found: {where} lists no '
                f'*{self.img_suffix} file{self._contents(img_dir)}. '
                f'{self._layout()}')

        def exists(path):
            return fileio.exists(path, backend_args=self.backend_args)

        if self.ann_file:  # names come from a list: the images may be gone
            missing = [d['img_path'] for d in data_list
                       if not exists(d['img_path'])]
            if missing:
                self._bad_list(
                    f'{len(missing)} of the {len(data_list)} images listed '
                    f'in {self.ann_file} do not exist', missing)
                gone = set(missing)
                data_list = [d for d in data_list if d['img_path'] not in gone]
        no_label = [d for d in data_list
                    if 'seg_map_path' in d and not exists(d['seg_map_path'])]
        if no_label:
            convertible = [
                d['seg_map_path'] for d in no_label
                if any(map(exists, _official_siblings(d['seg_map_path'])))
            ]
            hint = ''
            if convertible:
                hint = (f' ({len(convertible)} of them have the official '
                        '*_gtFine_polygons.json / *_gtFine_labelIds.png: run '
                        f'`python tools/convert_cityscapes.py '
                        f'{self.data_root or "<data_root>"}`)')
            self._bad_list(
                f'{len(no_label)} of the {len(data_list)} images have no '
                f'label file{hint}; missing',
                [d['seg_map_path'] for d in no_label])
            dropped = {id(d) for d in no_label}
            data_list = [d for d in data_list if id(d) not in dropped]
        if not data_list:
            raise CityscapesLayoutError(
                'no usable sample left after dropping the images without '
                f'label. {self._layout()}')
        return data_list

    # -------------------------------------------------------------- samples
    def prepare_data(self, idx):
        """The pipeline's output for sample ``idx``, with the checks of the
        class docstring; ``None`` (mmengine refetches another sample) for a
        bad sample when ``on_bad_sample='skip'`` in training."""
        data_info = self.get_data_info(idx)
        try:
            return self._run_pipeline(data_info)
        except BadSampleError as error:
            if self.on_bad_sample == 'skip' and not self.test_mode:
                print_log(f'{error}\nskipping this sample '
                          '(on_bad_sample="skip")', logger='current',
                          level=logging.WARNING)
                return None
            if self.on_bad_sample == 'skip':
                add_note(error, 'on_bad_sample="skip" does not apply in '
                         'test_mode: a skipped sample would change the '
                         'evaluation. Fix or remove the file.')
            raise

    @staticmethod
    def _files(info: dict) -> str:
        return ', '.join(f'{key}={info[key]}'
                         for key in ('img_path', 'seg_map_path')
                         if info.get(key) is not None)

    def _run_pipeline(self, results: dict):
        info = dict(img_path=results.get('img_path'),
                    seg_map_path=results.get('seg_map_path'))
        label_checked = False
        for transform in self.pipeline.transforms:
            try:
                results = transform(results)
            except BadSampleError:
                raise
            except Exception as error:  # noqa: BLE001
                self._on_transform_error(transform, info, error)
                raise
            if results is None:
                return None
            if not label_checked and isinstance(results, dict) and \
                    'gt_seg_map' in results:
                # the image may be resized already (mmseg's Cityscapes test
                # pipeline resizes before LoadAnnotations): its size as
                # loaded is ori_shape
                self.check_label(results['gt_seg_map'], info['seg_map_path'],
                                 results.get('ori_shape'))
                label_checked = True
        if not label_checked and isinstance(results, dict):
            # e.g. LoadAnnotations nested in TestTimeAug: check the packed
            # ground truth instead
            samples = results.get('data_samples')
            for sample in samples if isinstance(samples, (list, tuple)) \
                    else [samples]:
                gt = getattr(sample, 'gt_sem_seg', None)
                if gt is not None:
                    self.check_label(gt.data.cpu().numpy()[0],
                                     info['seg_map_path'])
        return results

    def _on_transform_error(self, transform, info: dict,
                            error: Exception) -> None:
        """Turn a loading failure into a :class:`BadSampleError` naming the
        file; give any other error a note naming the sample."""
        name = type(transform).__name__
        if isinstance(transform, BaseLoadAnnotations):
            what, paths = 'label map', [info['seg_map_path']]
        elif isinstance(transform, LoadImageFromFile):
            what, paths = 'image', [info['img_path']]
        elif name.startswith('Load'):
            what, paths = 'sample', [p for p in info.values() if p]
        else:
            add_note(error, f'(while {name} processed the sample '
                     f'{self._files(info)})')
            return
        raise BadSampleError(
            f'cannot load {what} {" / ".join(map(str, paths))}: the file is '
            f'missing, corrupt or truncated, or not an image ({name} raised '
            f'{type(error).__name__}: {error})') from error

    @property
    def allowed_label_values(self) -> List[int]:
        """Class indices ``0..num_classes-1`` and ``ignore_index``."""
        num_classes = len(self.metainfo['classes'])
        return sorted(set(range(num_classes)) | {self.ignore_index})

    def check_label(self, seg_map: np.ndarray, path: Optional[str],
                    image_shape: Optional[Sequence[int]] = None) -> None:
        """Raise :class:`BadSampleError` naming ``path`` if ``seg_map`` is
        not a single-channel map of allowed values (of the image's
        ``(H, W)`` ``image_shape`` when given)."""
        seg_map = np.asarray(seg_map)
        if seg_map.ndim != 2:
            raise BadSampleError(
                f'label map {path} has shape {seg_map.shape}: expected one '
                'channel (H, W) of train ids (a *_gtFine_color.png or an RGB '
                'image is no label map)')
        if image_shape is not None and \
                tuple(image_shape[:2]) != seg_map.shape:
            raise BadSampleError(
                f'label map {path} is {seg_map.shape[0]}x{seg_map.shape[1]} '
                f'(HxW) but its image is {image_shape[0]}x{image_shape[1]}')
        if seg_map.dtype == np.uint8:
            counts = np.bincount(seg_map.ravel(), minlength=256)
            values = np.flatnonzero(counts)
        else:
            values, counts_ = np.unique(seg_map, return_counts=True)
            counts = dict(zip(values.tolist(), counts_.tolist()))
        allowed = self.allowed_label_values
        bad = np.setdiff1d(values, allowed)
        if bad.size:
            pixels = int(sum(counts[v] for v in bad.tolist()))
            raise BadSampleError(
                f'label map {path} has values {_values(bad.tolist())} '
                f'({pixels} pixels) outside the allowed class indices '
                f'0..{len(self.metainfo["classes"]) - 1} and ignore_index '
                f'{self.ignore_index}. Cityscapes labels must be train ids '
                '(*_gtFine_labelTrainIds.png); labelIds (0..33) are made '
                'into train ids by tools/convert_cityscapes.py')


def _values(values: Iterable[int]) -> str:
    values = list(values)
    text = ', '.join(map(str, values[:20]))
    return f'[{text}{", ..." if len(values) > 20 else ""}]'
