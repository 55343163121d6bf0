"""Generate a small synthetic dataset in the Cityscapes layout.

    python tools/make_synthetic_cityscapes.py
        [--root data/synthetic_cityscapes] [--num-train 16]
        [--num-val 4 | --val-images 4]
        [--height 128] [--width 256] [--seed 0] [--official] [--force]

Safe to call every time (e.g. from a demo script): if ``ROOT`` already holds
a dataset generated with the same parameters (``synthetic_meta.json``), it
does nothing. A root holding another generated dataset is regenerated only
with ``--force``; a non-empty root that holds no generated dataset is never
touched. ``--official`` also writes the official annotation files
(``*_gtFine_polygons.json``, ``*_gtFine_labelIds.png``,
``*_gtFine_color.png``), e.g. to try ``tools/convert_cityscapes.py``.
"""
import argparse
import os
import os.path as osp
import shutil
import sys

try:
    import mmseg_infopro  # noqa: F401
except ImportError:  # running from a source checkout without install
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmseg_infopro.datasets.synthetic_cityscapes import (  # noqa: E402
    META_FILE, make_synthetic_cityscapes, read_meta)

PARAMS = ('num_train', 'num_val', 'height', 'width', 'seed', 'official')
#: what a generated dataset (and tools/convert_cityscapes.py on it) writes
GENERATED = ('leftImg8bit', 'gtFine', META_FILE, 'train.txt', 'val.txt',
             'test.txt')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Generate a synthetic Cityscapes-format dataset')
    parser.add_argument('--root', default='data/synthetic_cityscapes',
                        help='output directory (default: %(default)s)')
    parser.add_argument('--num-train', type=int, default=16)
    parser.add_argument(
        '--num-val', '--val-images', dest='num_val', type=int, default=4,
        help='validation images (default: %(default)s; an accuracy study '
        'wants >= 100)')
    parser.add_argument('--height', type=int, default=128)
    parser.add_argument('--width', type=int, default=256)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--official', action='store_true',
        help='also write *_gtFine_polygons.json, *_gtFine_labelIds.png and '
        '*_gtFine_color.png like the official download')
    parser.add_argument(
        '--force', action='store_true',
        help='regenerate even if ROOT holds a generated dataset with other '
        'parameters')
    return parser.parse_args(argv)


def _describe(params: dict) -> str:
    return ', '.join(f'{k}={params.get(k)!r}' for k in PARAMS)


def main(argv=None) -> dict:
    """Generate (or keep) the dataset; returns its metadata."""
    args = parse_args(argv)
    root = args.root
    params = {k: getattr(args, k) for k in PARAMS}
    meta = read_meta(root)
    if meta is not None and all(meta.get(k) == v for k, v in params.items()):
        print(f'{root} already holds the synthetic dataset '
              f'({_describe(params)}): nothing to do')
        return meta
    if osp.isdir(root) and os.listdir(root):
        if meta is None:
            raise SystemExit(
                f'{root} is not empty and holds no generated dataset (no '
                f'{META_FILE}): refusing to write into it, even with '
                '--force. Pass another --root or empty it yourself.')
        if not args.force:
            raise SystemExit(
                f'{root} holds a synthetic dataset generated with other '
                f'parameters ({_describe(meta)}; asked for '
                f'{_describe(params)}). Pass --force to regenerate it, or '
                'another --root.')
        print(f'--force: removing the synthetic dataset in {root} '
              f'({_describe(meta)})')
        for name in GENERATED:
            path = osp.join(root, name)
            if osp.isdir(path):
                shutil.rmtree(path)
            elif osp.isfile(path):
                os.remove(path)
    for value, name in ((args.num_train, '--num-train'),
                        (args.num_val, '--num-val')):
        if value < 1:
            raise SystemExit(f'{name} must be >= 1, got {value}')
    for value, name in ((args.height, '--height'), (args.width, '--width')):
        if value < 16:
            raise SystemExit(f'{name} must be >= 16, got {value}')
    print(f'generating a synthetic Cityscapes-format dataset in {root} '
          f'({_describe(params)})')
    meta = make_synthetic_cityscapes(root, **params)
    print(f'done: {args.num_train} train / {args.num_val} val images')
    return meta


if __name__ == '__main__':
    main()
