"""Peak memory and step time of one training step: E2E vs InfoPro.

    python tools/benchmark.py CONFIG [--batch N] [--size H W] [--fake]
        [--device cpu|cuda] [--cuts "3,13;4,0" | --num-modules K]
        [--schedules e2e,checkpoint,infopro] [--repeat R] [--warmup W]
        [--threads N] [--flops] [--no-hook] [--out result.json]
    python tools/benchmark.py plot OUT.png RESULT.json [RESULT.json ...]
    python tools/benchmark.py markdown RESULT.json [RESULT.json ...]

The command-line face of :func:`mmseg_infopro.memory.benchmark.
run_benchmark` (which says what the schedules ``e2e``, ``checkpoint`` and
``infopro`` are and how memory, time and FLOPs are measured) and of the
printers and plots of :mod:`mmseg_infopro.memory.report`. ``--threads 1``
keeps CPU timing steady on a shared machine.
"""
import argparse
import os.path as osp
import shlex
import sys
import time

try:
    import mmseg_infopro  # noqa: F401  (compat first, then registration)
except ImportError:  # running from a source checkout without install
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
    import mmseg_infopro  # noqa: F401

import torch
from mmengine.config import DictAction

from mmseg_infopro.memory.benchmark import (BenchmarkError, parse_cuts,
                                            run_benchmark)
from mmseg_infopro.memory.schedules import SCHEDULES

from harness.config_options import load_config  # noqa: E402
from harness.output import save_json  # noqa: E402  (tools/harness)
from harness.report import (NeedsMatplotlib, markdown_rows,  # noqa: E402
                            plot_peaks, print_hook_line, print_table)


def _cuts(text: str):
    try:
        return parse_cuts(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description='Peak memory and step time: E2E, checkpointing, InfoPro')
    p.add_argument('config')
    p.add_argument('--batch', type=int, default=None,
                   help='images per step (default: the config\'s '
                   'train_dataloader.batch_size)')
    p.add_argument('--size', type=int, nargs=2, metavar=('H', 'W'),
                   default=None,
                   help='crop size (default: data_preprocessor.size)')
    p.add_argument('--fake', action='store_true',
                   help='FakeTensorMode: memory only, no allocation')
    p.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    group = p.add_mutually_exclusive_group()
    group.add_argument('--cuts', type=_cuts, default=None,
                       help='InfoPro cuts, e.g. "3,13" or "2,1;3,4;3,14"')
    group.add_argument('--num-modules', type=int, default=None,
                       help='plan balanced cuts for K local modules')
    p.add_argument('--schedules', default=','.join(SCHEDULES),
                   help=f'comma-separated subset of {",".join(SCHEDULES)}')
    p.add_argument('--repeat', type=int, default=5,
                   help='timed rounds (real runs; 0: no timing)')
    p.add_argument('--warmup', type=int, default=1,
                   help='untimed rounds before timing')
    p.add_argument('--flops', action='store_true',
                   help='also count the FLOPs of one step per schedule '
                   '(FlopCounterMode; one more step each)')
    p.add_argument('--threads', type=int, default=None,
                   help='torch.set_num_threads for CPU runs (default: '
                   'torch\'s; on a shared machine 1 thread avoids '
                   'OpenMP contention)')
    p.add_argument('--no-hook', action='store_true',
                   help='do not run the InfoPro step once more with '
                   'InfoProMemoryHook (whose E2E estimate is reported '
                   'against the measured E2E peak)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out', default=None, help='write the results (JSON)')
    p.add_argument('--quiet', action='store_true', help='no progress lines')
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   metavar='KEY=VALUE',
                   help='override config values as tools/train.py does, '
                   'e.g. model.local_heads.type=InfoProPaperLocalHead')
    args = p.parse_args(argv)
    args.schedules = [s.strip() for s in args.schedules.split(',')
                      if s.strip()]
    bad = [s for s in args.schedules if s not in SCHEDULES]
    if bad or not args.schedules:
        p.error(f'--schedules: unknown {bad}, allowed: {",".join(SCHEDULES)}')
    if args.fake and args.device == 'cuda':
        p.error('--fake measures without a device: use --device cpu')
    if args.device == 'cuda' and not torch.cuda.is_available():
        p.error('--device cuda: no CUDA device is available')
    if args.num_modules is not None and args.num_modules < 1:
        p.error(f'--num-modules must be >= 1, got {args.num_modules}')
    return args


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ['markdown']:
        return markdown_rows(argv[1:])
    if argv[:1] == ['plot']:
        if len(argv) < 3:
            raise SystemExit('usage: benchmark.py plot OUT.png RESULT.json '
                             '[RESULT.json ...]')
        try:
            return plot_peaks(argv[2:], argv[1])
        except (NeedsMatplotlib, ValueError) as error:
            raise SystemExit(str(error)) from None
    args = parse_args(argv)
    started = time.time()

    def log(msg):
        if not args.quiet:
            print(f'[{time.time() - started:6.1f}s] {msg}', flush=True)

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        result = run_benchmark(
            load_config(args.config, args.cfg_options), args.schedules,
            args.batch, args.size, args.device,
            args.fake, args.cuts, args.num_modules, args.repeat, args.warmup,
            args.flops, not args.no_hook, args.seed,
            command='python tools/benchmark.py ' + ' '.join(
                shlex.quote(a) for a in argv), log=log)
    except BenchmarkError as error:
        raise SystemExit(str(error)) from None
    print_table(result)
    print_hook_line(result)
    if args.out:
        save_json(result, args.out, log)
    return result


if __name__ == '__main__':
    main()
