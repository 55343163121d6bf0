"""Converting the official Cityscapes annotations to what mmseg reads.

:func:`convert_cityscapes` (what ``tools/convert_cityscapes.py`` runs)
makes the ``*_gtFine_labelTrainIds.png`` that mmseg's CityscapesDataset
reads, and the split lists. Like mmseg's
``tools/dataset_converters/cityscapes.py``, with clear errors and a
fallback: every ``<gt-dir>/<split>/<city>/<name>_gtFine_polygons.json`` is
rasterised by cityscapesscripts' ``json2labelImg(..., 'trainIds')`` into
``<name>_gtFine_labelTrainIds.png`` next to it; where the json is missing,
``<name>_gtFine_labelIds.png`` is mapped to train ids through
cityscapesscripts' label table (ids without a train id become 255). Then
``train.txt``, ``val.txt`` (and ``test.txt`` when ``<gt-dir>/test`` exists)
list ``<city>/<name>`` per line, as mmseg's converter writes them, in
``out_dir`` (default: the Cityscapes root). Needs ``pip install
cityscapesscripts``.
"""
import os
import os.path as osp
from typing import Callable, Optional

import numpy as np
from mmengine.utils import (mkdir_or_exist, track_parallel_progress,
                            track_progress)
from PIL import Image

POLYGONS = '_polygons.json'
LABEL_IDS = '_labelIds.png'
TRAIN_IDS = '_labelTrainIds.png'
SPLITS = ('train', 'val', 'test')
LAYOUT = ('Expected the official layout: {root}/leftImg8bit/<split>/<city>/'
          '<name>_leftImg8bit.png and {gt}/<split>/<city>/'
          '<name>_gtFine_polygons.json (or <name>_gtFine_labelIds.png), '
          'e.g. {gt}/train/aachen/aachen_000000_000019_gtFine_polygons.json '
          '(unzip gtFine_trainvaltest.zip and leftImg8bit_trainvaltest.zip '
          'into the root).')
INSTALL = ('tools/convert_cityscapes.py needs cityscapesscripts: '
           '`pip install cityscapesscripts`')


class ConversionError(ValueError):
    """The root, its annotations or cityscapesscripts are not what the
    conversion needs (the message names the path and the layout)."""


def _cityscapesscripts():
    try:
        from cityscapesscripts.helpers import labels
        from cityscapesscripts.preparation.json2labelImg import json2labelImg
    except ImportError as error:
        raise ConversionError(f'{INSTALL} ({error})') from error
    return json2labelImg, labels


def label_ids_to_train_ids() -> np.ndarray:
    """Lookup table ``lut[label_id] = train_id`` (255 where none)."""
    _, labels = _cityscapesscripts()
    lut = np.full(256, 255, dtype=np.uint8)
    for label in labels.labels:
        if 0 <= label.id < 256 and 0 <= label.trainId < 255:
            lut[label.id] = label.trainId
    return lut


def convert_one(task):
    """Write one ``*_labelTrainIds.png``; returns None, or an error line
    naming the file (never raises, so a worker pool never hangs)."""
    source, target = task
    try:
        if source.endswith(POLYGONS):
            json2labelImg, _ = _cityscapesscripts()
            json2labelImg(source, target, 'trainIds')
        else:
            ids = np.asarray(Image.open(source))
            if ids.ndim != 2:
                return f'{source}: labelIds must be one channel, ' \
                       f'got shape {ids.shape}'
            Image.fromarray(label_ids_to_train_ids()[ids]).save(target)
    # cityscapesscripts calls sys.exit() on an unknown label: catch it too
    except BaseException as error:  # noqa: B036
        return f'{source}: {type(error).__name__}: {error}'
    return None


def find_annotations(gt_dir):
    """``{(split, 'city/name'): source}`` for every annotation under
    ``gt_dir``, the polygons json preferred over the labelIds png. Keys are
    relative to ``gt_dir/<split>``; ``split`` is the first directory."""
    found = {}
    for dirpath, _, filenames in os.walk(gt_dir):
        rel_dir = osp.relpath(dirpath, gt_dir)
        for filename in filenames:
            for suffix in (POLYGONS, LABEL_IDS):
                if not filename.endswith(suffix):
                    continue
                rel = osp.join(rel_dir, filename[:-len(suffix)])
                parts = rel.split(os.sep)
                split = parts[0] if len(parts) > 1 else ''
                name = '/'.join(parts[1:]) if len(parts) > 1 else rel
                key = (split, name)
                if suffix == POLYGONS or key not in found:
                    found[key] = osp.join(dirpath, filename)
    return found


def _strip_gt_suffix(name: str) -> str:
    """``city/city_000000_000019_gtFine`` -> ``city/city_000000_000019``."""
    head, _, tail = name.rpartition('_')
    return head if tail.startswith('gt') else name


def convert_cityscapes(root: str, gt_dir: str = 'gtFine',
                       out_dir: Optional[str] = None,
                       nproc: int = min(8, os.cpu_count() or 1),
                       log: Callable[[str], None] = print) -> dict:
    """Convert the annotations under ``root/gt_dir`` (label files next to
    them, split lists in ``out_dir``, default ``root``) with ``nproc``
    processes; ``log`` gets the progress lines. Returns
    ``dict(converted=..., from_polygons=..., from_label_ids=...,
    splits={split: count})``; raises :class:`ConversionError`."""
    gt_dir_name = gt_dir
    gt_dir = osp.join(root, gt_dir_name)
    layout = LAYOUT.format(root=root, gt=gt_dir)
    if not osp.isdir(root):
        raise ConversionError(
            f'Cityscapes root {root!r} does not exist. {layout}')
    if not osp.isdir(gt_dir):
        raise ConversionError(
            f'annotation directory {gt_dir!r} does not exist '
            f'({root} contains: '
            f'{", ".join(sorted(os.listdir(root))) or "nothing"}'
            f'). {layout}')
    if nproc < 1:
        raise ConversionError(f'nproc must be >= 1, got {nproc}')
    _cityscapesscripts()  # fail now, not in every worker
    annotations = find_annotations(gt_dir)
    if not annotations:
        have = any(f.endswith(TRAIN_IDS) for _, _, files in os.walk(gt_dir)
                   for f in files)
        raise ConversionError(
            f'no *_{gt_dir_name}{POLYGONS} or *_{gt_dir_name}{LABEL_IDS} '
            f'found under '
            f'{gt_dir!r}' +
            (' (it already holds *_gtFine_labelTrainIds.png: nothing to '
             'convert)' if have else '') + f'. {layout}')
    tasks = []
    for source in sorted(annotations.values()):
        suffix = POLYGONS if source.endswith(POLYGONS) else LABEL_IDS
        tasks.append((source, source[:-len(suffix)] + TRAIN_IDS))
    log(f'converting {len(tasks)} annotations under {gt_dir} to train ids '
        f'with {nproc} process(es)')
    if nproc > 1 and len(tasks) > 1:
        errors = track_parallel_progress(convert_one, tasks,
                                         min(nproc, len(tasks)))
    else:
        errors = track_progress(convert_one, tasks)
    errors = [e for e in errors if e]
    if errors:
        shown = '\n    '.join(errors[:10])
        raise ConversionError(
            f'{len(errors)} of {len(tasks)} annotations could not be '
            f'converted:\n    {shown}' +
            (f'\n    ... and {len(errors) - 10} more'
             if len(errors) > 10 else ''))

    out_dir = out_dir or root
    mkdir_or_exist(out_dir)
    splits = {}
    for split in SPLITS:
        if not osp.isdir(osp.join(gt_dir, split)):
            continue
        names = sorted(
            _strip_gt_suffix(name) for (s, name) in annotations
            if s == split)
        with open(osp.join(out_dir, f'{split}.txt'), 'w') as f:
            f.writelines(name + '\n' for name in names)
        splits[split] = len(names)
    from_polygons = sum(s.endswith(POLYGONS) for s, _ in tasks)
    log(f'\nwrote {len(tasks)} *{TRAIN_IDS} ({from_polygons} from '
        f'polygons, {len(tasks) - from_polygons} from labelIds); split '
        'lists in ' + out_dir + ': ' +
        ', '.join(f'{s}.txt ({n})' for s, n in splits.items()))
    return dict(converted=len(tasks), from_polygons=from_polygons,
                from_label_ids=len(tasks) - from_polygons, splits=splits)
