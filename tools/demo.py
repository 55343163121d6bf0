"""The CPU demos: generate a small dataset if missing, train with InfoPro
K=2 through tools/train.py, evaluate through tools/test.py, and summarise
how every module's loss fell.

    python tools/demo.py                      # segmentation: DeepLabV3-R18
                                              # on synthetic Cityscapes, mIoU
    python tools/demo.py --task classification  # ResNet-32 on a generated
                                              # CIFAR-10-format set, top-1
    python tools/demo.py \
        --config configs/demo/deeplabv3_r18-tiny_k1_synthetic.py   # E2E
"""
import argparse
import glob
import json
import os
import os.path as osp
import sys
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.join(REPO, 'tools'))
if REPO not in sys.path:
    sys.path.append(REPO)  # a source checkout without `pip install`

import mmseg_infopro  # noqa: E402,F401  (compat first)
from harness.synthetic_data import (  # noqa: E402
    GeneratedDataError, ensure_generated)

#: per task: the default config, data root, and generated dataset
TASKS = dict(
    segmentation=dict(
        config=osp.join('configs', 'demo',
                        'deeplabv3_r18-tiny_k2_synthetic.py'),
        data_root='data/synthetic_cityscapes',
        kind='synthetic_cityscapes',
        data=dict(num_train=48, num_val=12, height=128, width=256, seed=0)),
    classification=dict(
        config=osp.join('configs', 'demo',
                        'resnet32_k2_synthetic-cifar10.py'),
        data_root='data/synthetic_cifar10',
        kind='synthetic_cifar10',
        data=dict(train_per_class=200, test_per_class=50, seed=0,
                  difficulty=0.5)),
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--task', choices=sorted(TASKS),
                        default='segmentation')
    parser.add_argument('--config', default=None,
                        help="default: the task's demo config")
    parser.add_argument('--data-root', default=None,
                        help="default: the task's generated data folder")
    parser.add_argument('--work-dir', default=None,
                        help='default: work_dirs/<config name>')
    parser.add_argument('--iters', type=int, default=None,
                        help='training iterations (default: the config\'s)')
    args = parser.parse_args(argv)
    args.config = args.config or TASKS[args.task]['config']
    args.data_root = args.data_root or TASKS[args.task]['data_root']
    return args


def ensure_data(task, root):
    """Generate the task's demo dataset in ``root`` unless the same one is
    there (:func:`harness.synthetic_data.ensure_generated`; another
    generated dataset there is replaced)."""
    kind, data = TASKS[task]['kind'], TASKS[task]['data']
    if kind == 'synthetic_cityscapes':
        message = (f'generating a synthetic Cityscapes-format dataset in '
                   f'{root} ({data["num_train"]} train / {data["num_val"]} '
                   f'val images, {data["height"]}x{data["width"]})')
    else:
        message = (f'generating a CIFAR-10-format dataset in {root} '
                   f'({data["train_per_class"]} train / '
                   f'{data["test_per_class"]} test images per class, 32x32, '
                   f'difficulty {data.get("difficulty", 0)})')
    try:
        made = ensure_generated(root, kind, data, replace_other=True,
                                log=lambda msg: print(f'[demo] {msg}'),
                                message=message)
    except GeneratedDataError as error:
        raise SystemExit(f'[demo] {error} (--data-root)') from None
    if not made:
        print(f'[demo] using the synthetic dataset in {root}')


def loss_summary(work_dir):
    """Per loss key: the mean of the first and of the last 3 logged values
    (the logger writes one every ``interval`` iterations), and the
    iterations they span."""
    logs = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data',
                                     'scalars.json')))
    records = []
    for path in logs:
        with open(path) as f:
            records += [json.loads(line) for line in f]
    train = [r for r in records if 'loss' in r]
    keys = [k for k in train[0] if 'loss' in k] if train else []
    memory = [r for r in train if 'mem.saving' in r]
    n = max(1, min(3, len(train) // 2))
    span = (f'it {train[0]["iter"]}-{train[n - 1]["iter"]}',
            f'it {train[-n]["iter"]}-{train[-1]["iter"]}') if train else ()
    rows = []
    for key in keys:
        values = [r[key] for r in train if key in r]
        rows.append((key, sum(values[:n]) / n, sum(values[-n:]) / n))
    return span, rows, memory[-1] if memory else None


def main(argv=None):
    args = parse_args(argv)
    os.chdir(REPO)
    import test as test_tool
    import train as train_tool
    ensure_data(args.task, args.data_root)
    name = osp.splitext(osp.basename(args.config))[0]
    work_dir = args.work_dir or osp.join('work_dirs', name)
    root = args.data_root.rstrip('/') + '/'
    options = [
        f'train_dataloader.dataset.data_root={root}',
        f'val_dataloader.dataset.data_root={root}',
        f'test_dataloader.dataset.data_root={root}'
    ]
    if args.iters and args.task == 'classification':
        raise SystemExit('[demo] --iters is for the iteration-based '
                         'segmentation demo; the classification demo is '
                         'epoch-based (edit max_epochs in its config)')
    if args.iters:
        options += [
            f'train_cfg.max_iters={args.iters}',
            f'train_cfg.val_interval={args.iters}',
            f'param_scheduler.0.end={args.iters}'
        ]
    start = time.time()
    runner = train_tool.main([args.config, '--work-dir', work_dir,
                              '--cfg-options'] + options)
    train_time = time.time() - start
    ckpt = osp.join(work_dir, f'iter_{runner.iter}.pth' if args.task ==
                    'segmentation' else f'epoch_{runner.epoch}.pth')
    metrics = test_tool.main([args.config, ckpt, '--work-dir',
                              osp.join(work_dir, 'test'), '--cfg-options'] +
                             options)

    print('\n[demo] ' + '=' * 62)
    print(f'[demo] {name}: {runner.iter} iterations in {train_time:.0f} s')
    span, rows, memory = loss_summary(work_dir)
    if span:
        print(f'[demo] {"loss (mean of 3 logs)":<22}{span[0]:>12}'
              f'{span[1]:>14}')
    else:
        print('[demo] no training loss was logged (fewer iterations than '
              'the logger interval)')
    for key, first, last in rows:
        trend = 'falling' if last < first else 'NOT falling'
        print(f'[demo] {key:<22}{first:>12.4f}{last:>14.4f}   {trend}')
    if memory:
        peaks = ', '.join(f'{k[4:]} {v:.1f}' for k, v in memory.items()
                          if k.startswith('mem.s') and k != 'mem.saving')
        print(f'[demo] InfoProMemoryHook (MiB): {peaks}; E2E estimate '
              f'{memory["mem.e2e_est"]:.1f}; saving '
              f'{memory["mem.saving"]:.1%}')
    if args.task == 'segmentation':
        print(f'[demo] tools/test.py on {ckpt}: mIoU {metrics["mIoU"]:.2f}  '
              f'aAcc {metrics["aAcc"]:.2f}  mAcc {metrics["mAcc"]:.2f}')
    else:
        print(f'[demo] tools/test.py on {ckpt}: top-1 '
              f'{metrics["accuracy/top1"]:.2f}%  top-5 '
              f'{metrics["accuracy/top5"]:.2f}%  (chance: 10%)')
    print('[demo] ' + '=' * 62)
    return metrics


if __name__ == '__main__':
    main()
