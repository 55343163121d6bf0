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

Measures every unit of the config's backbone (mmseg_infopro.utils.
memory_profile: activations, peaks and FLOPs, with and without
checkpointing), the local head on every cut shape, the final heads, the
batch and the config's optimizer step. Then:

* ``--num-modules K``: the cuts that minimise the largest module's
  predicted peak (exact);
* ``--memory-budget``: among end to end, end to end + checkpointing, pure
  InfoPro and their combinations (K = 1 .. ``--max-modules``, per-unit
  ``'selective'`` or ``'full'`` checkpointing), the plan of least predicted
  FLOPs whose predicted peak fits; the runner-ups (the best plan of every
  other K) are printed, and when nothing fits, the smallest reachable peak
  and what dominates it;
* ``--pareto``: predicted peak against FLOPs of every family of plans, the
  front written as JSON (``--out``) and a PNG (``--plot``).

Unless ``--no-verify``, the chosen plan and the E2E step are then measured
(MemTracker, or ``max_memory_allocated`` on ``--device cuda``; FLOPs with
FlopCounterMode) and printed against the prediction; in budget mode a plan
whose measured peak exceeds the budget is planned again with the budget
lowered by the excess (at most 3 times). ``--write`` writes a config that
inherits CONFIG with the plan: ``split_points``, one copy of CONFIG's
first local head per cut, ``checkpoint_blocks`` and
``selective_checkpoint_blocks`` (training only: inference and exported
checkpoints do not see them).
"""
import argparse
import os
import os.path as osp
import re
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

from mmseg_infopro.memory.tracking import (MiB, check_cuttable,
                                        local_head_template,
                                        measure_schedule, save_json,
                                        step_shape)
from mmseg_infopro.memory.profile import Plan, measure_profile
from mmseg_infopro.memory.planning import (pareto_front, plan_cuts,
                                                plan_for_budget)

UNITS = dict(b=1, kb=1e3, mb=1e6, gb=1e9, tb=1e12, kib=2**10, mib=2**20,
             gib=2**30, tib=2**40)


def parse_bytes(text: str):
    """``'7GiB'``, ``'7.5 GB'``, ``'7000MiB'``, ``'7e9'`` -> bytes (float);
    ``'0.45x'`` -> ``('x', 0.45)``, a fraction of the predicted E2E peak."""
    match = re.fullmatch(r'\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([a-z]*)\s*',
                         str(text).lower())
    unit = match.group(2) if match else None
    if not match or unit not in UNITS and unit not in ('', 'x'):
        raise argparse.ArgumentTypeError(
            f'bad memory size {text!r}: expected a number with an optional '
            'unit, e.g. 7GiB, 7.5GB, 7000MiB, 7e9 (bytes) or 0.45x (of the '
            'E2E peak)')
    value = float(match.group(1))
    if value <= 0:
        raise argparse.ArgumentTypeError(f'memory size {text!r} must be > 0')
    if unit == 'x':
        return ('x', value)
    return value * UNITS.get(unit or 'b')


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description='Plan InfoPro cuts and checkpointing')
    p.add_argument('config')
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument('--num-modules', type=int,
                      help='K balanced local modules, no checkpointing')
    mode.add_argument('--memory-budget', type=parse_bytes, metavar='SIZE',
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
                 header: str, checkpoint: dict = None) -> str:
    """The text of a config inheriting ``base_config`` (path relative to
    ``out_path``) with ``cuts``, ``len(cuts)`` copies of ``head`` and the
    backbone's per-unit checkpointing (``dict(full=[...],
    selective=[...])``)."""
    rel = osp.relpath(osp.abspath(base_config),
                      osp.dirname(osp.abspath(out_path)))
    checkpoint = checkpoint or {}
    backbone = [
        f'split_points={_py([tuple(c) for c in cuts])}',
        f'checkpoint_blocks={_py(list(checkpoint.get("full", [])))}',
        'selective_checkpoint_blocks='
        f'{_py(list(checkpoint.get("selective", [])))}']
    lines = [f'# {line}' for line in header.splitlines()]
    lines.append(f'_base_ = {rel!r}')
    lines += ['model = dict(', '    backbone=dict(']
    lines += [f'        {b},' for b in backbone[:-1]]
    lines += [f'        {backbone[-1]}),']
    if not cuts:
        lines += ['    local_heads=None)']
    else:
        lines += ['    local_heads=[']
        lines += [f'        {_py(dict(head))},' for _ in cuts]
        lines += ['    ])']
    return '\n'.join(lines) + '\n'


def _fmt_units(units) -> str:
    return ', '.join('stem' if u == 'stem' else f'{u[0]},{u[1]}'
                     for u in units) or '-'


def describe(plan: Plan, pred: dict, e2e: dict) -> str:
    ckpt = plan.checkpoint()
    return (f'K={plan.num_modules} cuts [{_fmt_units(plan.cuts)}] '
            f'full [{_fmt_units(ckpt["full"])}] selective '
            f'[{_fmt_units(ckpt["selective"])}]: peak '
            f'{pred["peak"] / MiB:.1f} MiB ({pred["peak"] / e2e["peak"]:.3f}x'
            f' E2E), FLOPs {pred["flops"] / e2e["flops"]:.3f}x E2E')


def _plan_json(plan: Plan, pred: dict, e2e: dict) -> dict:
    out = plan.to_json()
    out.update(predicted_peak_mib=pred['peak'] / MiB,
               predicted_module_peaks_mib=[v / MiB for v in pred['modules']],
               predicted_phases=pred['phases'],
               predicted_ratio=pred['peak'] / e2e['peak'],
               predicted_flops_ratio=pred['flops'] / e2e['flops'])
    return out


def plot_front(front: dict, out: str, title: str) -> None:
    """Peak (x E2E) against FLOPs (x E2E) of every family of plans."""
    try:
        import matplotlib
    except ImportError:
        raise SystemExit('--plot needs matplotlib: pip install matplotlib '
                         '(or pip install -e ".[bench]")') from None
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    e2e = front['e2e']
    fig, ax = plt.subplots(figsize=(7.5, 4.8))

    def xy(points):
        return ([p['peak'] / e2e['peak'] for p in points],
                [p['flops'] / e2e['flops'] for p in points])

    ax.scatter(*xy([e2e]), color='black', zorder=4, label='E2E')
    ck = sorted(front['checkpointing'], key=lambda p: p['peak'])
    ax.plot(*xy(ck), color='tab:green', marker='.', lw=1,
            label='E2E + checkpointing (unit by unit)')
    ip = front['infopro']
    ax.plot(*xy(ip), color='tab:blue', marker='o', lw=1,
            label='InfoPro K=2..%d (planned cuts)' % (len(ip) + 1))
    for p, x, y in zip(ip, *xy(ip)):
        ax.annotate(p['kind'].split()[-1], (x, y), textcoords='offset points',
                    xytext=(4, 4), fontsize=7, color='tab:blue')
    cb = sorted(front['combined'], key=lambda p: p['peak'])
    ax.scatter(*xy(cb), color='tab:red', marker='x', zorder=3,
               label='combined (budget plans)')
    fr = front['front']
    ax.step(*xy(fr), where='post', color='tab:red', lw=0.8, alpha=0.6,
            label='Pareto front')
    ax.set_xlabel('peak memory of one training step (x E2E)')
    ax.set_ylabel('FLOPs of one training step (x E2E)')
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    print(f'wrote {out}')


def markdown_front(path, out=sys.stdout) -> None:
    """The points of a ``--pareto`` JSON's front as markdown rows, and the
    command that wrote it."""
    import json
    with open(path) as f:
        result = json.load(f)
    e2e = result['e2e']
    print('| peak x E2E | peak MiB | FLOPs x E2E | kind | K | cuts | '
          'full / selective checkpointed units |', file=out)
    print('|---:|---:|---:|---|---:|---|---|', file=out)
    for p in result['front']:
        plan = p['plan']
        cuts = ';'.join(f'{a},{b}' for a, b in plan['cuts']) or '-'
        print(f'| {p["peak"] / e2e["peak"]:.3f} | {p["peak"] / MiB:.1f} | '
              f'{p["flops"] / e2e["flops"]:.3f} | {p["kind"]} | '
              f'{plan["num_modules"]} | {cuts} | '
              f'{len(plan["checkpoint_blocks"])} / '
              f'{len(plan["selective_checkpoint_blocks"])} |', file=out)
    print(f'\n`{result["command"]}`', file=out)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ['markdown']:
        if len(argv) != 2:
            raise SystemExit('usage: plan_splits.py markdown FRONT.json')
        return markdown_front(argv[1])
    args = parse_args(argv)
    started = time.time()

    def log(msg):
        print(f'[{time.time() - started:6.1f}s] {msg}', flush=True)

    cfg = Config.fromfile(args.config)
    check_cuttable(cfg.model, 'tools/plan_splits.py')
    batch, size = step_shape(cfg, args.batch, args.size)
    device = 'cpu' if args.fake else args.device
    command = 'python tools/plan_splits.py ' + ' '.join(
        shlex.quote(a) for a in argv)
    log(f'{args.config}: batch {batch}, {size[0]}x{size[1]}'
        f'{" (fake tensors)" if args.fake else ", " + device}; measuring '
        'every unit')
    profile = measure_profile(
        cfg, batch, size, device=device, fake=args.fake, seed=args.seed,
        modes=() if args.num_modules else ('selective', 'full'))
    e2e_pred = profile.predict(Plan())
    result = dict(command=command, config=args.config, batch=batch,
                  size=list(size), fake=args.fake, device=device,
                  optimizer=profile.optimizer,
                  predicted_e2e_mib=e2e_pred['peak'] / MiB,
                  predicted_e2e_gflops=e2e_pred['flops'] / 1e9,
                  profile=profile.to_json())

    if args.pareto:
        log(f'front: E2E + checkpointing, InfoPro K=2..{args.max_modules}, '
            f'{args.budgets} budgets')
        front = pareto_front(profile, args.max_modules, args.budgets)
        result.update(front)
        print('Pareto front (predicted), peak and FLOPs as multiples of '
              'E2E:')
        for p in front['front']:
            print(f'  {p["peak"] / e2e_pred["peak"]:.3f}x peak '
                  f'({p["peak"] / MiB:9.1f} MiB)  '
                  f'{p["flops"] / e2e_pred["flops"]:.3f}x FLOPs  '
                  f'{p["kind"]}: K={p["plan"]["num_modules"]} cuts '
                  f'{p["plan"]["cuts"]} full '
                  f'{len(p["plan"]["checkpoint_blocks"])} selective '
                  f'{len(p["plan"]["selective_checkpoint_blocks"])} units')
        if args.plot:
            how = 'FakeTensorMode + MemTracker' if args.fake else device
            plot_front(front, args.plot,
                       f'{osp.basename(args.config)}\nbatch {batch}, '
                       f'{size[0]}x{size[1]}, {profile.optimizer}, {how} '
                       '(predicted)')
        if args.out:
            save_json(result, args.out, log)
        return result

    budget = args.memory_budget
    if isinstance(budget, tuple):  # ('x', fraction of E2E)
        budget = budget[1] * e2e_pred['peak']
        log(f'budget {args.memory_budget[1]}x the predicted E2E peak: '
            f'{budget / MiB:.1f} MiB')
    attempts = []
    target = budget
    for attempt in range(4 if budget and not args.no_verify else 1):
        if args.num_modules:
            cuts, pred = plan_cuts(profile, args.num_modules)
            plan, candidates = Plan(cuts), []
        else:
            found = plan_for_budget(profile, target, args.max_modules)
            if not found['feasible']:
                low = found['lowest']
                parts = low['parts']
                text = (
                    f'nothing fits {budget / MiB:.1f} MiB: the smallest '
                    f'reachable peak (K <= {args.max_modules}, every '
                    'checkpointing mode) is '
                    f'{low["peak"] / MiB:.1f} MiB, with '
                    f'{describe(low["plan"], low["prediction"], e2e_pred)}. '
                    f'It is module {low["module"] + 1}\'s {low["phase"]} '
                    'phase; what every module holds whatever the plan: '
                    'parameters + optimizer states + buffers '
                    f'{parts["parameters_optimizer_buffers"] / MiB:.1f} MiB, '
                    f'the batch {parts["data"] / MiB:.1f} MiB; the final '
                    'heads\' working set is '
                    f'{parts["final_heads_working_set"] / MiB:.1f} MiB. '
                    'Lower the batch or crop (--batch, --size), or raise '
                    '--max-modules.')
                result.update(feasible=False,
                              lowest_peak_mib=low['peak'] / MiB,
                              lowest_plan=_plan_json(
                                  low['plan'], low['prediction'], e2e_pred),
                              message=text)
                if args.out:
                    save_json(result, args.out, log)
                raise SystemExit(f'plan_splits: {text}')
            plan, pred = found['plan'], found['prediction']
            candidates = found['candidates'][1:]
        print(('plan: ' if budget else f'planned cuts for K='
               f'{args.num_modules}: ') + describe(plan, pred, e2e_pred))
        print('predicted peak per module (MiB): ' + ', '.join(
            f'{v / MiB:.1f} ({ph})'
            for v, ph in zip(pred['modules'], pred['phases'])))
        for c in candidates:
            print('  runner-up: ' + describe(c['plan'], c['prediction'],
                                            e2e_pred))
        if args.no_verify:
            break
        log('verifying: measuring the plan and the E2E step')
        measured = measure_schedule(
            cfg, 'plan', plan.cuts, size, batch, device, args.fake,
            args.seed, checkpoint=plan.checkpoint(), flops=True)
        if attempt == 0:
            e2e = measure_schedule(cfg, 'e2e', [], size, batch, device,
                                   args.fake, args.seed, flops=True)
        verified = dict(
            measured_peak_mib=measured['peak'] / MiB,
            measured_module_peaks_mib=[
                v / MiB for v in measured['module_peaks']],
            measured_e2e_mib=e2e['peak'] / MiB,
            measured_ratio=measured['peak'] / e2e['peak'],
            measured_flops_ratio=measured['flops'] / e2e['flops'],
            prediction_error=pred['peak'] / measured['peak'] - 1)
        attempts.append(dict(_plan_json(plan, pred, e2e_pred), **verified))
        print('measured peak per module (MiB):  ' + ', '.join(
            f'{v / MiB:.1f}' for v in measured['module_peaks']))
        print(f'measured peak {measured["peak"] / MiB:.1f} MiB (predicted '
              f'{pred["peak"] / MiB:.1f}, {verified["prediction_error"]:+.2%}'
              f'), measured E2E {e2e["peak"] / MiB:.1f} MiB '
              f'({verified["measured_ratio"]:.3f}x); FLOPs '
              f'{verified["measured_flops_ratio"]:.3f}x E2E measured, '
              f'{pred["flops"] / e2e_pred["flops"]:.3f}x predicted')
        if not budget or measured['peak'] <= budget:
            break
        target -= measured['peak'] - budget + 0.001 * budget
        print(f'measured peak exceeds the budget by '
              f'{(measured["peak"] - budget) / MiB:.1f} MiB: planning again '
              f'for {target / MiB:.1f} MiB')
    else:
        if budget and not args.no_verify:
            raise SystemExit(
                f'plan_splits: no plan was measured within the budget '
                f'{budget / MiB:.1f} MiB after {len(attempts)} attempts')

    result.update(_plan_json(plan, pred, e2e_pred), feasible=True,
                  budget_mib=budget / MiB if budget else None,
                  runner_ups=[_plan_json(c['plan'], c['prediction'],
                                         e2e_pred) for c in candidates],
                  attempts=attempts)
    if attempts:
        result.update({k: v for k, v in attempts[-1].items()
                       if k.startswith(('measured', 'prediction'))})
    if args.write:
        head = local_head_template(cfg.model)
        what = f'memory budget {budget / MiB:.0f} MiB' if budget else \
            f'K={args.num_modules}'
        header = (f'InfoPro plan for {what}, by\n{command}\n'
                  f'(batch {batch}, {size[0]}x{size[1]}, '
                  f'{profile.optimizer}): {describe(plan, pred, e2e_pred)}')
        os.makedirs(osp.dirname(osp.abspath(args.write)), exist_ok=True)
        with open(args.write, 'w') as f:
            f.write(config_delta(args.config, args.write, plan.cuts, head,
                                 header, plan.checkpoint()))
        log(f'wrote {args.write}')
    if args.out:
        save_json(result, args.out, log)
    return result


if __name__ == '__main__':
    main()
