"""Make the ``*_gtFine_labelTrainIds.png`` that mmseg's CityscapesDataset
reads, and the split lists, from the official Cityscapes annotations.

    python tools/convert_cityscapes.py data/cityscapes [--nproc 8]
        [--gt-dir gtFine] [--out-dir DIR]

The command-line face of :func:`mmseg_infopro.datasets.
cityscapes_conversion.convert_cityscapes` (which says how the polygons, or
failing them the labelIds, become train ids). Needs ``pip install
cityscapesscripts``.
"""
import argparse
import os
import os.path as osp
import sys

try:
    import mmseg_infopro  # noqa: F401  (compat first, then registration)
except ImportError:  # running from a source checkout without install
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
    import mmseg_infopro  # noqa: F401

from mmseg_infopro.datasets.cityscapes_conversion import (  # noqa: E402
    ConversionError, convert_cityscapes)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Convert Cityscapes annotations to train ids')
    parser.add_argument('cityscapes_path', help='Cityscapes root, e.g. '
                        'data/cityscapes')
    parser.add_argument('--gt-dir', default='gtFine',
                        help='annotation directory in the root '
                        '(default: %(default)s)')
    parser.add_argument('-o', '--out-dir',
                        help='where train.txt/val.txt/test.txt go (default: '
                        'the Cityscapes root); label files are always written '
                        'next to their annotations')
    parser.add_argument('--nproc', type=int,
                        default=min(8, os.cpu_count() or 1),
                        help='worker processes (default: %(default)s)')
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    """Convert; returns ``dict(converted=..., from_polygons=...,
    from_label_ids=..., splits={split: count})``."""
    args = parse_args(argv)
    if args.nproc < 1:
        raise SystemExit(f'--nproc must be >= 1, got {args.nproc}')
    try:
        return convert_cityscapes(args.cityscapes_path, args.gt_dir,
                                  args.out_dir, args.nproc)
    except ConversionError as error:
        raise SystemExit(str(error)) from None


if __name__ == '__main__':
    main()
