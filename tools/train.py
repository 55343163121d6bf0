"""Train a model, exactly like mmseg's tools/train.py, with InfoPro.

    python tools/train.py CONFIG [--work-dir DIR] [--resume] [--amp]
        [--cfg-options k=v ...] [--launcher {none,pytorch,slurm,mpi}]

The registry scope is the config's ``default_scope`` (mmseg's configs set
``'mmseg'``), so configs of other OpenMMLab scopes run unchanged.
"""
import argparse
import logging
import os
import os.path as osp
import sys

try:
    import mmseg_infopro  # noqa: F401  (compat first, then registration)
except ImportError:  # running from a source checkout without install
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
    import mmseg_infopro  # noqa: F401

from mmengine.config import Config, DictAction
from mmengine.device import get_device
from mmengine.logging import print_log
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from harness.processes import (  # noqa: E402  (tools/harness)
    cpu_default_model_wrapper, init_cpu_process_group, run_tool)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a segmentor')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        action='store_true',
        default=False,
        help='resume from the latest checkpoint in the work_dir automatically')
    parser.add_argument(
        '--amp',
        action='store_true',
        default=False,
        help='enable automatic-mixed-precision training')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override some settings in the used config, the key-value pair '
        'in xxx=yyy format will be merged into config file. If the value to '
        'be overwritten is a list, it should be like key="[a,b]" or key=a,b '
        'It also allows nested list/tuple values, e.g. key="[(a,b),(c,d)]" '
        'Note that the quotation marks are necessary and that no white space '
        'is allowed.')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def build_cfg(args) -> Config:
    if not osp.isfile(args.config):
        raise FileNotFoundError(f'config file not found: {args.config}')
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    # work_dir: CLI > config > config file name
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    if args.amp:
        optim_wrapper = cfg.optim_wrapper.type
        if optim_wrapper == 'AmpOptimWrapper':
            print_log(
                'AMP training is already enabled in your config.',
                logger='current',
                level=logging.WARNING)
        else:
            if optim_wrapper != 'OptimWrapper':
                raise ValueError(
                    '--amp is only supported when optim_wrapper.type is '
                    f'OptimWrapper, but the config has {optim_wrapper}')
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.loss_scale = 'dynamic'
    cfg.resume = args.resume
    return cfg


def check_amp_device(cfg: Config) -> None:
    """AMP (AmpOptimWrapper: fp16 autocast + dynamic loss scaling) needs a
    GPU (or NPU/MLU/MUSA); fail before building anything on a CPU-only
    machine rather than with mmengine's assertion mid-way."""
    if cfg.optim_wrapper.get('type') == 'AmpOptimWrapper' and \
            get_device() == 'cpu':
        raise RuntimeError(
            'AMP training (--amp or optim_wrapper.type=AmpOptimWrapper) '
            'needs a GPU: fp16 autocast and its dynamic loss scaling run on '
            'CUDA (or NPU/MLU/MUSA), and this machine has none. Train '
            'without --amp (fp32) on the CPU.')


def main(argv=None):
    args = parse_args(argv)
    cfg = build_cfg(args)
    check_amp_device(cfg)
    # CPU-only distributed run: gloo, initialised before mmengine tries to
    # set a CUDA device (it skips initialisation when a group exists)
    if init_cpu_process_group(args.launcher,
                              cfg.get('env_cfg', {}).get('dist_cfg')):
        cfg.merge_from_dict({'env_cfg.dist_cfg.backend': 'gloo'})
        cpu_default_model_wrapper(cfg)
    if 'runner_type' not in cfg:
        runner = Runner.from_cfg(cfg)
    else:  # a custom runner, from the config's own scope
        with RUNNERS.switch_scope_and_registry(
                cfg.get('default_scope', None)) as runners:
            runner = runners.build(cfg)
    runner.train()
    return runner


if __name__ == '__main__':
    run_tool(main)
