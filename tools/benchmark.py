"""Peak memory and step time of one training step: E2E vs InfoPro.

    python tools/benchmark.py CONFIG [--batch N] [--size H W] [--fake]
        [--device cpu|cuda] [--cuts "3,13;4,0" | --num-modules K]
        [--schedules e2e,checkpoint,infopro] [--repeat R] [--warmup W]
        [--threads N] [--flops] [--no-hook] [--out result.json]
    python tools/benchmark.py plot OUT.png RESULT.json [RESULT.json ...]
    python tools/benchmark.py markdown RESULT.json [RESULT.json ...]

Three schedules of the same network, batch and crop:

* ``e2e``: no cut, no local head (mmseg's EncoderDecoder exactly);
* ``checkpoint``: e2e with the backbone's own gradient checkpointing
  (``backbone.with_cp=True``: ResNet, MiT and Swin blocks);
* ``infopro``: the config's cuts (and its ``checkpoint_blocks`` /
  ``selective_checkpoint_blocks``, e.g. a config written by
  ``tools/plan_splits.py --memory-budget``), or ``--cuts``, or
  ``--num-modules K`` (cuts planned by mmseg_infopro.memory.planning to
  balance the modules' peaks; the prediction is reported next to the
  measurement).

The model can have any backbone that meets the cut-able backbone contract
(mmseg_infopro.models.backbones: the ResNet family, MiT, Swin). Memory is
that of one step with the config's optimizer (SGD, AdamW, ...) after a
warm-up step: ``torch.cuda.max_memory_allocated`` on ``--device cuda``
(``cudnn.benchmark=True``), MemTracker on the CPU. ``--fake`` runs
everything under FakeTensorMode: no memory is allocated and nothing is
computed, so the paper's size (ResNet-101, batch 4, 512x1024) takes well
under a minute on a CPU; fake runs measure memory only.

Step time (real runs) is the median of ``--repeat`` rounds after
``--warmup`` rounds, the schedules interleaved (order rotated every round);
the time ratio is the median of the per-round ratios to e2e. On the CPU
the process's CPU time per step is reported next to the wall-clock time
(on a shared machine it is the steadier measure of the work; use
``--threads 1`` so that it is not inflated by threads waiting for cores).
``--flops`` adds the FLOPs of one step per schedule (FlopCounterMode, also
under ``--fake``). The InfoPro step is run once more with
:class:`InfoProMemoryHook` attached (unless ``--no-hook``): what a training
log shows, its E2E estimate printed against the measured E2E peak.

Pretrained weights are not loaded and SyncBN becomes BN; neither changes
memory or time.
"""
import argparse
import contextlib
import json
import os.path as osp
import platform
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

from mmseg_infopro.engine.hooks import InfoProMemoryHook
from mmseg_infopro.memory.tracking import (MiB, SCHEDULE_TITLES, SCHEDULES,
                                        config_checkpoint, config_cuts,
                                        count_step_flops,
                                        fake_mode, measure_step_memory,
                                        prepare_step, save_json, step_shape,
                                        time_steps)
from mmseg_infopro.memory.planning import measure_profile, plan_cuts


def parse_cuts(text: str):
    """``"3,13;4,0"`` -> ``[(3, 13), (4, 0)]``."""
    cuts = []
    for part in text.replace(' ', '').split(';'):
        if not part:
            continue
        try:
            layer, block = (int(v) for v in part.strip('()').split(','))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f'bad cut {part!r} in {text!r}: expected "stage,block" '
                'pairs separated by ";", e.g. "3,13;4,0"') from None
        cuts.append((layer, block))
    if not cuts:
        raise argparse.ArgumentTypeError(f'no cut in {text!r}')
    return cuts


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
    group.add_argument('--cuts', type=parse_cuts, default=None,
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


def _fmt_cuts(cuts):
    return ';'.join(f'{a},{b}' for a, b in cuts) if cuts else '-'


def print_table(result, out=sys.stdout):
    def num(value, fmt):
        return '-' if value is None else format(value, fmt)

    runs = list(result['schedules'].values())
    with_cpu = any(r.get('cpu_time_s') is not None for r in runs)
    with_flops = any(r.get('gflops') is not None for r in runs)
    rows = [('schedule', 'K', 'cuts', 'peak MiB', 'x E2E', 'time s',
             'time x E2E') + (('cpu s', 'cpu x E2E') if with_cpu else ()) +
            (('GFLOP', 'FLOP x E2E') if with_flops else ())]
    for r in runs:
        rows.append((
            r['title'], str(r['num_modules']), _fmt_cuts(r['cuts']),
            f'{r["peak_mib"]:.1f}', num(r['ratio'], '.3f'),
            num(r['time_s'], '.3f'), num(r['time_ratio'], '.3f')) + ((
                num(r.get('cpu_time_s'), '.3f'),
                num(r.get('cpu_time_ratio'), '.3f')) if with_cpu else ()) +
            ((num(r.get('gflops'), '.1f'), num(r.get('flops_ratio'), '.3f'))
             if with_flops else ()))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for i, row in enumerate(rows):
        print('  '.join(c.ljust(w) if j < 3 else c.rjust(w)
                        for j, (c, w) in enumerate(zip(row, widths))),
              file=out)
        if i == 0:
            print('  '.join('-' * w for w in widths), file=out)
    planner = result.get('planner')
    if planner:
        meas = result['schedules'].get('infopro', {})
        print(f'planned cuts for K={planner["num_modules"]}: '
              f'{_fmt_cuts(planner["cuts"])}; predicted peak '
              f'{planner["predicted_peak_mib"]:.1f} MiB, measured '
              f'{meas.get("peak_mib", float("nan")):.1f} MiB; per module '
              'predicted / measured MiB: ' + ', '.join(
                  f'{p:.0f}/{m:.0f}' for p, m in zip(
                      planner['predicted_module_peaks_mib'],
                      meas.get('module_peaks_mib', []))), file=out)


def print_hook_line(result, out=sys.stdout):
    """What InfoProMemoryHook logged on the InfoPro step, its E2E
    estimate set against the measured E2E peak."""
    runs = result['schedules']
    hook = runs.get('infopro', {}).get('hook_mib')
    if not hook:
        return
    text = ', '.join(f'{k} {v:.1f}' for k, v in hook.items()
                     if k.startswith('mem.s') and k != 'mem.saving')
    line = f'InfoProMemoryHook on the InfoPro step (MiB): {text}'
    if 'mem.e2e_est' in hook:
        line += (f'; E2E estimate {hook["mem.e2e_est"]:.1f}, saving '
                 f'{hook["mem.saving"]:.1%}')
        if 'e2e' in runs:
            measured = runs['e2e']['peak_mib']
            line += (f' (measured E2E {measured:.1f}: estimate '
                     f'{hook["mem.e2e_est"] / measured - 1:+.2%})')
    print(line, file=out)


def markdown_rows(paths, out=sys.stdout):
    """The rows of docs/benchmarks.md's tables from benchmark JSON files:
    one row per schedule (a schedule measured again with the same cuts on
    the same device, e.g. E2E next to every planned K, once), the command
    in the last column.
    """
    def num(value, fmt):
        return '-' if value is None else format(value, fmt)

    print('| schedule | cuts | peak MiB | x E2E | time s | time x E2E | '
          'FLOP x E2E | command |', file=out)
    print('|---|---|---:|---:|---:|---:|---:|---|', file=out)
    seen = set()
    for path in paths:
        with open(path) as f:
            result = json.load(f)
        for name, r in result['schedules'].items():
            key = (name, tuple(map(tuple, r['cuts'])),
                   result['device_name'], result['fake'])
            if key in seen:
                continue
            seen.add(key)
            title = r['title']
            if name == 'infopro':
                title += ' (planned)' if result.get('planner') else \
                    ' (config)'
            print(f'| {title} | {_fmt_cuts(r["cuts"])} | '
                  f'{r["peak_mib"]:.1f} | {num(r["ratio"], ".3f")} | '
                  f'{num(r["time_s"], ".2f")} | '
                  f'{num(r["time_ratio"], ".3f")} | '
                  f'{num(r.get("flops_ratio"), ".3f")} | '
                  f'`{result["command"]}` |', file=out)


def plot_peaks(paths, out):
    """Peak memory against K from benchmark JSON files (one config, batch
    and size): InfoPro runs as points (planned cuts joined by a line, the
    config's cuts as a separate marker), E2E at K=1, checkpointing as a
    horizontal line."""
    try:
        import matplotlib
    except ImportError:
        raise SystemExit('benchmark.py plot needs matplotlib: pip install '
                         'matplotlib (or pip install -e ".[bench]")') from None
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    runs = []
    for path in paths:
        with open(path) as f:
            runs.append(json.load(f))
    keys = {(r['config'], r['batch'], tuple(r['size']), r['device'],
             r['fake']) for r in runs}
    if len(keys) != 1:
        raise SystemExit(f'plot: the files mix configs/sizes/devices: {keys}')
    gib = 1024.0
    planned, fixed, e2e, ckpt = {}, {}, [], []
    for r in runs:
        sched = r['schedules']
        if 'e2e' in sched:
            e2e.append(sched['e2e']['peak_mib'] / gib)
        if 'checkpoint' in sched:
            ckpt.append(sched['checkpoint']['peak_mib'] / gib)
        if 'infopro' in sched:
            ip = sched['infopro']
            target = planned if r.get('planner') else fixed
            target[ip['num_modules']] = (ip['peak_mib'] / gib,
                                         _fmt_cuts(ip['cuts']))
    fig, ax = plt.subplots(figsize=(7, 4.2))
    if e2e:
        ax.scatter([1], [e2e[0]], color='black', zorder=3, label='E2E')
        ax.annotate(f'{e2e[0]:.2f}', (1, e2e[0]), textcoords='offset points',
                    xytext=(12, -4), fontsize=8)
        ax.axhline(e2e[0], color='black', lw=0.6, ls=':')
    if ckpt:
        ax.axhline(ckpt[0], color='tab:green', ls='--',
                   label=f'E2E + checkpointing ({ckpt[0]:.2f} GiB)')
    if planned:
        ks = sorted(planned)
        xs = ([1] if e2e else []) + ks
        ys = ([e2e[0]] if e2e else []) + [planned[k][0] for k in ks]
        ax.plot(xs, ys, marker='o', color='tab:blue',
                label='InfoPro, planned cuts (--num-modules K)')
        for k in ks:
            ax.annotate(f'{planned[k][0]:.2f}', (k, planned[k][0]),
                        textcoords='offset points', xytext=(0, 7),
                        ha='center', fontsize=8)
    for k, (peak, cuts) in sorted(fixed.items()):
        ax.scatter([k], [peak], marker='x', s=60, color='tab:red',
                   zorder=4, label=f'InfoPro, config cuts {cuts}')
    first = runs[0]
    how = 'FakeTensorMode + MemTracker' if first['fake'] else \
        first['device']
    ax.set_title(f'{osp.basename(first["config"])}\nbatch {first["batch"]}, '
                 f'{first["size"][0]}x{first["size"][1]}, {how}', fontsize=9)
    from matplotlib.ticker import MaxNLocator
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel('K (local modules)')
    ax.set_ylabel('peak memory of one training step (GiB)')
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    print(f'wrote {out}')


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ['markdown']:
        return markdown_rows(argv[1:])
    if argv[:1] == ['plot']:
        if len(argv) < 3:
            raise SystemExit('usage: benchmark.py plot OUT.png RESULT.json '
                             '[RESULT.json ...]')
        return plot_peaks(argv[2:], argv[1])
    args = parse_args(argv)
    started = time.time()

    def log(msg):
        if not args.quiet:
            print(f'[{time.time() - started:6.1f}s] {msg}', flush=True)

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    cfg = Config.fromfile(args.config)
    batch, size = step_shape(cfg, args.batch, args.size)
    device = args.device
    if device == 'cuda':
        torch.backends.cudnn.benchmark = True
    log(f'{args.config}: batch {batch}, {size[0]}x{size[1]}, device '
        f'{device}{" (fake tensors)" if args.fake else ""}')

    planner = None
    cuts = args.cuts
    checkpoint = {}  # the config's per-unit checkpointing, with its cuts
    if 'infopro' in args.schedules and cuts is None:
        if args.num_modules is not None:
            log(f'planning cuts for K={args.num_modules}: measuring every '
                'block')
            profile = measure_profile(cfg, batch, size, device=device,
                                      fake=args.fake, seed=args.seed,
                                      modes=())
            cuts, pred = plan_cuts(profile, args.num_modules)
            planner = dict(
                num_modules=args.num_modules, cuts=[list(c) for c in cuts],
                predicted_peak_mib=pred['peak'] / MiB,
                predicted_module_peaks_mib=[v / MiB for v in pred['modules']],
                predicted_phases=pred['phases'],
                predicted_e2e_mib=profile.predict([])['peak'] / MiB)
            log(f'planned cuts: {_fmt_cuts(cuts)}')
        else:
            cuts = config_cuts(cfg)
            checkpoint = config_checkpoint(cfg)
            if not cuts and not any(checkpoint.values()):
                raise SystemExit(
                    f'{args.config} has no cuts (K=1): give --cuts or '
                    '--num-modules for the infopro schedule, or '
                    '--schedules e2e,checkpoint')
    if cuts == [] and 'infopro' in args.schedules and \
            not any(checkpoint.values()):
        # --num-modules 1
        args.schedules = [s for s in args.schedules if s != 'infopro']

    runs, results = {}, {}
    for schedule in args.schedules:
        sched_cuts = cuts if schedule == 'infopro' else []
        build_as = schedule
        sched_ckpt = None
        if schedule == 'infopro' and any(checkpoint.values()):
            build_as, sched_ckpt = 'plan', checkpoint
        log(f'{schedule}: building (cuts {_fmt_cuts(sched_cuts)}'
            + (f', checkpointing {sched_ckpt}' if sched_ckpt else '') + ')')
        ctx = fake_mode() if args.fake else contextlib.nullcontext()
        with ctx:
            baseline = torch.cuda.memory_allocated() \
                if device == 'cuda' else 0
            model, optim, data = prepare_step(cfg, build_as, sched_cuts,
                                              size, batch, device, args.seed,
                                              checkpoint=sched_ckpt)
            log(f'{schedule}: warm-up step + measured step')
            mem = measure_step_memory(model, optim, data, device=device,
                                      baseline=baseline)
            flops = count_step_flops(model, optim, data) \
                if args.flops else None
            hook = None
            if schedule == 'infopro' and not args.no_hook:
                log(f'{schedule}: one more step with InfoProMemoryHook')
                hook = InfoProMemoryHook.measure_step(model, optim, data)
        log(f'{schedule}: peak {mem["peak"] / MiB:.1f} MiB')
        results[schedule] = dict(
            title=SCHEDULE_TITLES[schedule] + (
                f' K={len(sched_cuts) + 1}' if schedule == 'infopro'
                else '') + (' + checkpointing' if sched_ckpt else ''),
            cuts=[list(c) for c in sched_cuts],
            checkpoint=sched_ckpt,
            num_modules=len(sched_cuts) + 1,
            peak_bytes=mem['peak'], peak_mib=mem['peak'] / MiB,
            breakdown_mib={k: v / MiB for k, v in mem['breakdown'].items()},
            module_peaks_mib=[v / MiB for v in mem['module_peaks']],
            gflops=None if flops is None else flops / 1e9,
            hook_mib=hook,
            flops_ratio=None, ratio=None, time_s=None, times_s=None,
            time_ratio=None, time_ratios=None, cpu_time_s=None,
            cpu_times_s=None, cpu_time_ratio=None, cpu_time_ratios=None)
        if not args.fake and args.repeat > 0:
            runs[schedule] = (model, optim, data)
        else:
            del model, optim, data
        if device == 'cuda':
            torch.cuda.empty_cache()

    if 'e2e' in results:
        e2e = results['e2e']['peak_bytes']
        for r in results.values():
            r['ratio'] = r['peak_bytes'] / e2e
            if r['gflops'] is not None:
                r['flops_ratio'] = r['gflops'] / results['e2e']['gflops']
    if runs:
        log(f'timing: {args.warmup} warm-up + {args.repeat} rounds, '
            'interleaved')
        steps = {name: (lambda m=m, o=o, d=d: m.train_step(d, o))
                 for name, (m, o, d) in runs.items()}
        timing = time_steps(steps, repeat=args.repeat, warmup=args.warmup,
                            device=device, log=log)
        for name, t in timing.items():
            results[name].update(
                time_s=t['time_s'], times_s=t['times'],
                time_ratio=t['time_ratio'], time_ratios=t['ratios'],
                cpu_time_s=t['cpu_time_s'], cpu_times_s=t['cpu_times'],
                cpu_time_ratio=t['cpu_time_ratio'],
                cpu_time_ratios=t['cpu_ratios'])

    result = dict(
        command='python tools/benchmark.py ' + ' '.join(
            shlex.quote(a) for a in argv),
        config=args.config, device=device,
        device_name=(torch.cuda.get_device_name() if device == 'cuda' else
                     f'{platform.processor() or platform.machine()}, '
                     f'{torch.get_num_threads()} threads'),
        fake=args.fake, batch=batch, size=list(size), seed=args.seed,
        torch=torch.__version__, repeat=args.repeat if runs else 0,
        warmup=args.warmup if runs else 0,
        schedules=results, planner=planner,
        elapsed_s=time.time() - started)
    print_table(result)
    print_hook_line(result)
    if args.out:
        save_json(result, args.out, log)
    return result


if __name__ == '__main__':
    main()
