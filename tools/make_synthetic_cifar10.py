"""Generate a small synthetic dataset in the CIFAR-10 python format.

    python tools/make_synthetic_cifar10.py [ROOT] [--train-per-class 100]
        [--test-per-class 20] [--seed 0] [--difficulty 0] [--noise 20]

Writes ``ROOT/cifar-10-batches-py/`` (``data_batch_1`` .. ``5``,
``test_batch``, ``batches.meta``) like the official archive, with
learnable class patterns (see
``mmseg_infopro/datasets/classification/synthetic.py``); read it with
``CIFAR10Dataset(data_root=ROOT)``. The default set is easy (a small ResNet
reaches ~100%); ``--difficulty 1`` makes classes overlap (jittered angles
and hues, random colours, distractor stripes, more noise) so accuracy does
not saturate, e.g. to compare training methods (configs/study/).
"""
import argparse
import os.path as osp
import sys

try:
    import mmseg_infopro  # noqa: F401
except ImportError:  # running from a source checkout without install
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmseg_infopro.datasets.classification.synthetic import (  # noqa: E402
    make_synthetic_cifar10)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Generate a synthetic CIFAR-10-format dataset')
    parser.add_argument('root', nargs='?', default='data/synthetic_cifar10',
                        help='output directory (default: %(default)s)')
    parser.add_argument('--train-per-class', type=int, default=100)
    parser.add_argument('--test-per-class', type=int, default=20)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--difficulty', type=float, default=0.0,
        help='0..1: how much the class cues overlap (default: %(default)s, '
        'the easy set)')
    parser.add_argument('--noise', type=float, default=20.0,
                        help='pixel noise std, 0..255 (default: %(default)s;'
                        ' --difficulty adds to it)')
    return parser.parse_args(argv)


def main(argv=None) -> str:
    args = parse_args(argv)
    for value, name in ((args.train_per_class, '--train-per-class'),
                        (args.test_per_class, '--test-per-class')):
        if value < 1:
            raise SystemExit(f'{name} must be >= 1, got {value}')
    if not 0 <= args.difficulty <= 1:
        raise SystemExit(f'--difficulty must be in [0, 1], got '
                         f'{args.difficulty}')
    if args.noise < 0:
        raise SystemExit(f'--noise must be >= 0, got {args.noise}')
    folder = make_synthetic_cifar10(
        args.root, train_per_class=args.train_per_class,
        test_per_class=args.test_per_class, seed=args.seed,
        difficulty=args.difficulty, noise=args.noise)
    print(f'wrote {10 * args.train_per_class} train / '
          f'{10 * args.test_per_class} test images to {folder}')
    return folder


if __name__ == '__main__':
    main()
