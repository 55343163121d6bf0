"""Plan a training step: InfoPro cuts, and checkpointing for a memory budget.

    # K balanced modules, no checkpointing
    python tools/plan_splits.py CONFIG --num-modules K [common options]
    # the plan of least extra compute that fits a budget
    python tools/plan_splits.py CONFIG --memory-budget 7GiB [--max-modules 8]
        [common options]
    # the whole front of peak memory against FLOPs
    python tools/plan_splits.py CONFIG --pareto [--max-modules 8]
        [--plot front.png] [common options]
    common options: [--batch N] [--size H W] [--fake] [--device cpu|cuda]
        [--no-verify] [--write OUT_CONFIG] [--out plan.json]
    # a --pareto JSON's front as markdown rows
    python tools/plan_splits.py markdown FRONT.json

The command-line face of :func:`mmseg_infopro.memory.plan_config.
plan_splits`, which says what each mode plans, how the plan is verified
(unless ``--no-verify``) and what ``--write`` writes: a config that
inherits CONFIG with the plan (``split_points``, one copy of CONFIG's
first local head per cut, ``checkpoint_blocks`` and
``selective_checkpoint_blocks``).
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

from mmseg_infopro.memory.plan_config import (PlanningError, parse_bytes,
                                              plan_splits)

from harness.config_options import load_config  # noqa: E402
from harness.output import save_json  # noqa: E402  (tools/harness)
from harness.report import (NeedsMatplotlib, PlanPrinter,  # noqa: E402
                            markdown_front, plot_front, require_pyplot)


def _bytes(text: str):
    try:
        return parse_bytes(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description='Plan InfoPro cuts and checkpointing')
    p.add_argument('config')
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument('--num-modules', type=int,
                      help='K balanced local modules, no checkpointing')
    mode.add_argument('--memory-budget', type=_bytes, metavar='SIZE',
                      help='the plan of least extra compute whose peak '
                      'fits SIZE (e.g. 7GiB, 7.5GB, or 0.45x: a fraction '
                      'of the predicted E2E peak)')
    mode.add_argument('--pareto', action='store_true',
                      help='the front of peak memory against FLOPs')
    p.add_argument('--max-modules', type=int, default=8,
                   help='largest K tried by --memory-budget / --pareto '
                   '(default 8)')
    p.add_argument('--budgets', type=int, default=24,
                   help='--pareto: budgets between the lowest reachable '
                   'and the E2E peak (default 24)')
    p.add_argument('--batch', type=int, default=None,
                   help='default: the config\'s train batch size')
    p.add_argument('--size', type=int, nargs=2, metavar=('H', 'W'),
                   default=None, help='default: data_preprocessor.size')
    p.add_argument('--fake', action='store_true',
                   help='measure under FakeTensorMode (no allocation)')
    p.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    p.add_argument('--no-verify', action='store_true',
                   help='do not measure the planned and E2E steps')
    p.add_argument('--write', default=None, metavar='OUT_CONFIG',
                   help='write a config with the plan')
    p.add_argument('--out', default=None, help='write the plan (JSON)')
    p.add_argument('--plot', default=None, metavar='PNG',
                   help='--pareto: plot the front (needs matplotlib)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   metavar='KEY=VALUE',
                   help='override config values as tools/train.py does, '
                   'e.g. model.local_heads.type=InfoProPaperLocalHead')
    args = p.parse_args(argv)
    if args.num_modules is not None and args.num_modules < 1:
        p.error(f'--num-modules must be >= 1, got {args.num_modules}')
    if args.max_modules < 1:
        p.error(f'--max-modules must be >= 1, got {args.max_modules}')
    if args.budgets < 2:
        p.error(f'--budgets must be >= 2, got {args.budgets}')
    if args.plot and not args.pareto:
        p.error('--plot goes with --pareto')
    if args.pareto and args.write:
        p.error('--pareto writes no config (use --memory-budget)')
    if args.fake and args.device == 'cuda':
        p.error('--fake measures without a device: use --device cpu')
    if args.device == 'cuda' and not torch.cuda.is_available():
        p.error('--device cuda: no CUDA device is available')
    return args


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ['markdown']:
        if len(argv) != 2:
            raise SystemExit('usage: plan_splits.py markdown FRONT.json')
        return markdown_front(argv[1])
    args = parse_args(argv)
    lost = [key for key in (args.cfg_options or {})
            if key.split('.')[:2] != ['model', 'local_heads']]
    if args.write and lost:
        # the written config inherits the file and writes its local heads
        # in full (options included); any other option would be lost
        raise SystemExit(
            f'plan_splits: --write with --cfg-options {", ".join(lost)}: '
            f'the written config inherits {args.config} and writes only '
            'the cuts, checkpointing and local heads; put the options in a '
            'config file and plan that one')
    started = time.time()

    def log(msg):
        print(f'[{time.time() - started:6.1f}s] {msg}', flush=True)

    try:
        if args.plot:  # before an hour of measuring, not after
            require_pyplot('--plot')
        result = plan_splits(
            load_config(args.config, args.cfg_options), args.num_modules,
            args.memory_budget, args.pareto,
            args.max_modules, args.budgets, args.batch, args.size, args.fake,
            args.device, not args.no_verify, args.write, args.seed,
            command='python tools/plan_splits.py ' + ' '.join(
                shlex.quote(a) for a in argv), log=log, show=PlanPrinter())
        if args.plot:
            how = 'FakeTensorMode + MemTracker' if result['fake'] else \
                result['device']
            plot_front(result, args.plot,
                       f'{osp.basename(result["config"])}\nbatch '
                       f'{result["batch"]}, {result["size"][0]}x'
                       f'{result["size"][1]}, {result["optimizer"]}, {how} '
                       '(predicted)')
    except PlanningError as error:
        if error.result is not None and args.out:
            save_json(error.result, args.out, log)
        raise SystemExit(f'plan_splits: {error}') from None
    except NeedsMatplotlib as error:
        raise SystemExit(str(error)) from None
    if args.out:
        save_json(result, args.out, log)
    return result


if __name__ == '__main__':
    main()
