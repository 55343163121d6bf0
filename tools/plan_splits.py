"""Plan InfoPro cuts that balance the local modules' peak memory.

    python tools/plan_splits.py CONFIG --num-modules K [--batch N]
        [--size H W] [--fake] [--device cpu|cuda] [--no-verify]
        [--write OUT_CONFIG] [--out plan.json]

Measures every block of the config's backbone, the local head on every
layer's output and the final heads (mmseg_infopro.utils.split_planning),
chooses the cuts that minimise the largest module's predicted peak (exact),
then, unless ``--no-verify``, measures the InfoPro step with those cuts and
the E2E step and prints predicted against measured peaks. ``--write``
writes a config that inherits CONFIG with the planned cuts and K-1 copies
of CONFIG's first local head.
"""
import argparse
import os
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

from mmengine.config import Config

from mmseg_infopro.utils.memory import (MiB, local_head_template,
                                        measure_schedule, save_json,
                                        step_shape)
from mmseg_infopro.utils.split_planning import measure_profile, plan_cuts


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Plan balanced InfoPro cuts')
    p.add_argument('config')
    p.add_argument('--num-modules', type=int, required=True,
                   help='K, the number of local modules')
    p.add_argument('--batch', type=int, default=None,
                   help='default: the config\'s train batch size')
    p.add_argument('--size', type=int, nargs=2, metavar=('H', 'W'),
                   default=None, help='default: data_preprocessor.size')
    p.add_argument('--fake', action='store_true',
                   help='measure under FakeTensorMode (no allocation)')
    p.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    p.add_argument('--no-verify', action='store_true',
                   help='do not measure the planned InfoPro and E2E steps')
    p.add_argument('--write', default=None, metavar='OUT_CONFIG',
                   help='write a config with the planned cuts')
    p.add_argument('--out', default=None, help='write the plan (JSON)')
    p.add_argument('--seed', type=int, default=0)
    args = p.parse_args(argv)
    if args.num_modules < 1:
        p.error(f'--num-modules must be >= 1, got {args.num_modules}')
    if args.fake and args.device == 'cuda':
        p.error('--fake measures without a device: use --device cpu')
    if args.device == 'cuda' and not torch.cuda.is_available():
        p.error('--device cuda: no CUDA device is available')
    return args


def _py(value) -> str:
    """A config value as Python source, dicts written ``dict(k=v)``."""
    if isinstance(value, dict):
        if all(isinstance(k, str) and k.isidentifier() for k in value):
            return 'dict(' + ', '.join(f'{k}={_py(v)}'
                                       for k, v in value.items()) + ')'
        return '{' + ', '.join(f'{k!r}: {_py(v)}'
                               for k, v in value.items()) + '}'
    if isinstance(value, tuple):
        if len(value) == 1:
            return f'({_py(value[0])}, )'
        return '(' + ', '.join(_py(v) for v in value) + ')'
    if isinstance(value, list):
        return '[' + ', '.join(_py(v) for v in value) + ']'
    return repr(value)


def config_delta(base_config: str, out_path: str, cuts, head: dict,
                 header: str) -> str:
    """The text of a config inheriting ``base_config`` (path relative to
    ``out_path``) with ``cuts`` and ``len(cuts)`` copies of ``head``."""
    rel = osp.relpath(osp.abspath(base_config),
                      osp.dirname(osp.abspath(out_path)))
    lines = [f'# {line}' for line in header.splitlines()]
    lines.append(f'_base_ = {rel!r}')
    if not cuts:
        lines += ['model = dict(', '    backbone=dict(split_points=[]),',
                  '    local_heads=None)']
    else:
        lines += ['model = dict(',
                  f'    backbone=dict(split_points={_py(list(cuts))}),',
                  '    local_heads=[']
        lines += [f'        {_py(dict(head))},' for _ in cuts]
        lines += ['    ])']
    return '\n'.join(lines) + '\n'


def main(argv=None):
    args = parse_args(argv)
    started = time.time()

    def log(msg):
        print(f'[{time.time() - started:6.1f}s] {msg}', flush=True)

    cfg = Config.fromfile(args.config)
    batch, size = step_shape(cfg, args.batch, args.size)
    device = 'cpu' if args.fake else args.device
    log(f'{args.config}: batch {batch}, {size[0]}x{size[1]}'
        f'{" (fake tensors)" if args.fake else ", " + device}; measuring '
        'every block')
    profile = measure_profile(cfg, batch, size, device=device,
                              fake=args.fake, seed=args.seed)
    cuts, pred = plan_cuts(profile, args.num_modules)
    e2e_pred = profile.predict([])
    plan = dict(
        command='python tools/plan_splits.py ' + ' '.join(
            shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)),
        config=args.config, batch=batch, size=list(size), fake=args.fake,
        device=device, num_modules=args.num_modules,
        cuts=[list(c) for c in cuts],
        predicted_peak_mib=pred['peak'] / MiB,
        predicted_module_peaks_mib=[v / MiB for v in pred['modules']],
        predicted_phases=pred['phases'],
        predicted_e2e_mib=e2e_pred['peak'] / MiB,
        blocks=[dict(name=it.name if it.name == 'stem' else list(it.name),
                     act_mib=it.act / MiB, out_mib=it.out / MiB,
                     fwd_peak_mib=it.fwd_peak / MiB,
                     bwd_peak_mib=it.bwd_peak / MiB)
                for it in profile.items],
        local_head_peak_mib={str(k): h.peak / MiB
                             for k, h in profile.local_heads.items()},
        final_heads_peak_mib=profile.final_heads.peak / MiB)
    print(f'planned cuts for K={args.num_modules}: {cuts}')
    print('predicted peak per module (MiB): ' + ', '.join(
        f'{v / MiB:.1f} ({ph})'
        for v, ph in zip(pred['modules'], pred['phases'])))
    print(f'predicted peak {pred["peak"] / MiB:.1f} MiB, predicted E2E '
          f'{e2e_pred["peak"] / MiB:.1f} MiB '
          f'({pred["peak"] / e2e_pred["peak"]:.3f}x)')

    if not args.no_verify:
        measured = {}
        for schedule, sched_cuts in (('infopro', cuts), ('e2e', [])):
            if schedule == 'infopro' and not cuts:
                continue
            measured[schedule] = measure_schedule(
                cfg, schedule, sched_cuts, size, batch, device, args.fake,
                args.seed)
        e2e = measured['e2e']['peak']
        ip = measured.get('infopro', measured['e2e'])
        plan.update(
            measured_peak_mib=ip['peak'] / MiB,
            measured_module_peaks_mib=[v / MiB for v in ip['module_peaks']],
            measured_e2e_mib=e2e / MiB,
            measured_ratio=ip['peak'] / e2e,
            prediction_error=pred['peak'] / ip['peak'] - 1)
        print('measured peak per module (MiB):  ' + ', '.join(
            f'{v / MiB:.1f}' for v in ip['module_peaks']))
        print(f'measured peak {ip["peak"] / MiB:.1f} MiB (predicted '
              f'{plan["prediction_error"]:+.2%}), measured E2E '
              f'{e2e / MiB:.1f} MiB ({plan["measured_ratio"]:.3f}x)')

    if args.write:
        head = local_head_template(cfg.model)
        header = (f'InfoPro K={args.num_modules}, cuts planned by\n'
                  f'{plan["command"]}\n'
                  f'(batch {batch}, {size[0]}x{size[1]}): predicted peak '
                  f'{pred["peak"] / MiB:.0f} MiB per module at most')
        os.makedirs(osp.dirname(osp.abspath(args.write)), exist_ok=True)
        with open(args.write, 'w') as f:
            f.write(config_delta(args.config, args.write, cuts, head,
                                 header))
        log(f'wrote {args.write}')
    if args.out:
        save_json(plan, args.out, log)
    return plan


if __name__ == '__main__':
    main()
