"""Tables, markdown rows and plots of the memory tools' results (the
harness's printing side of :mod:`mmseg_infopro.memory`).

What ``tools/benchmark.py`` and ``tools/plan_splits.py`` print and draw,
from the result dicts (or their JSON files) of
:func:`~mmseg_infopro.memory.benchmark.run_benchmark` and
:func:`~mmseg_infopro.memory.plan_config.plan_splits`:

* benchmark: :func:`print_table`, :func:`print_hook_line`,
  :func:`markdown_rows` (docs/benchmarks.md's tables), :func:`plot_peaks`
  (peak memory against K);
* planning: :func:`print_plan`,
  :func:`print_verified`, :func:`print_front`, :func:`markdown_front`,
  :func:`plot_front` (peak against FLOPs).

Printers write to ``out`` (stdout by default); plots need matplotlib and
raise :class:`NeedsMatplotlib` (an ImportError with the install hint)
without it.
"""
import json
import os.path as osp
import sys

from mmseg_infopro.memory.describe import describe, fmt_cuts
from mmseg_infopro.memory.profile import Plan
from mmseg_infopro.memory.tracking import MiB

from .output import fmt


class NeedsMatplotlib(ImportError):
    """A plot was asked for where matplotlib is not installed."""


def require_pyplot(what: str) -> None:
    """Raise :class:`NeedsMatplotlib` now if ``what`` will need it."""
    _pyplot(what)


def _pyplot(what: str):
    """matplotlib's pyplot on the Agg backend, or :class:`NeedsMatplotlib`
    saying that ``what`` needs it."""
    try:
        import matplotlib
    except ImportError:
        raise NeedsMatplotlib(f'{what} needs matplotlib: pip install matplotlib '
                              '(or pip install -e ".[bench]")') from None
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def _save(fig, out: str) -> None:
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    print(f'wrote {out}')


# -------------------------------------------------------------- benchmark
def print_table(result, out=sys.stdout):
    """One row per schedule of a benchmark result (CPU time and FLOP
    columns when measured), and the planner's prediction against the
    measurement when the cuts were planned."""
    runs = list(result['schedules'].values())
    with_cpu = any(r.get('cpu_time_s') is not None for r in runs)
    with_flops = any(r.get('gflops') is not None for r in runs)
    rows = [('schedule', 'K', 'cuts', 'peak MiB', 'x E2E', 'time s',
             'time x E2E') + (('cpu s', 'cpu x E2E') if with_cpu else ()) +
            (('GFLOP', 'FLOP x E2E') if with_flops else ())]
    for r in runs:
        rows.append((
            r['title'], str(r['num_modules']), fmt_cuts(r['cuts']),
            f'{r["peak_mib"]:.1f}', fmt(r['ratio'], '.3f'),
            fmt(r['time_s'], '.3f'), fmt(r['time_ratio'], '.3f')) + ((
                fmt(r.get('cpu_time_s'), '.3f'),
                fmt(r.get('cpu_time_ratio'), '.3f')) if with_cpu else ()) +
            ((fmt(r.get('gflops'), '.1f'),
              fmt(r.get('flops_ratio'), '.3f')) if with_flops else ()))
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
              f'{fmt_cuts(planner["cuts"])}; predicted peak '
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
            print(f'| {title} | {fmt_cuts(r["cuts"])} | '
                  f'{r["peak_mib"]:.1f} | {fmt(r["ratio"], ".3f")} | '
                  f'{fmt(r["time_s"], ".2f")} | '
                  f'{fmt(r["time_ratio"], ".3f")} | '
                  f'{fmt(r.get("flops_ratio"), ".3f")} | '
                  f'`{result["command"]}` |', file=out)


def plot_peaks(paths, out):
    """Peak memory against K from benchmark JSON files (one config, batch
    and size): InfoPro runs as points (planned cuts joined by a line, the
    config's cuts as a separate marker), E2E at K=1, checkpointing as a
    horizontal line. Raises ValueError when the files mix configs, sizes
    or devices."""
    plt = _pyplot('benchmark.py plot')
    runs = []
    for path in paths:
        with open(path) as f:
            runs.append(json.load(f))
    keys = {(r['config'], r['batch'], tuple(r['size']), r['device'],
             r['fake']) for r in runs}
    if len(keys) != 1:
        raise ValueError(f'plot: the files mix configs/sizes/devices: {keys}')
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
                                         fmt_cuts(ip['cuts']))
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
    _save(fig, out)


# --------------------------------------------------------------- planning
def print_plan(plan: Plan, pred: dict, e2e: dict, candidates=(),
               num_modules=None, out=sys.stdout) -> None:
    """The chosen plan (``planned cuts for K=...`` with ``num_modules``,
    ``plan:`` for a budget), its predicted peak per module and phase, and
    the runner-ups."""
    print(('plan: ' if num_modules is None else
           f'planned cuts for K={num_modules}: ') +
          describe(plan, pred, e2e), file=out)
    print('predicted peak per module (MiB): ' + ', '.join(
        f'{v / MiB:.1f} ({ph})'
        for v, ph in zip(pred['modules'], pred['phases'])), file=out)
    for c in candidates:
        print('  runner-up: ' + describe(c['plan'], c['prediction'], e2e),
              file=out)


def print_verified(measured: dict, e2e: dict, pred: dict, e2e_pred: dict,
                   verified: dict, out=sys.stdout) -> None:
    """A plan's measured peaks (per module, and against its prediction
    and the measured E2E step) and FLOPs."""
    print('measured peak per module (MiB):  ' + ', '.join(
        f'{v / MiB:.1f}' for v in measured['module_peaks']), file=out)
    print(f'measured peak {measured["peak"] / MiB:.1f} MiB (predicted '
          f'{pred["peak"] / MiB:.1f}, {verified["prediction_error"]:+.2%}'
          f'), measured E2E {e2e["peak"] / MiB:.1f} MiB '
          f'({verified["measured_ratio"]:.3f}x); FLOPs '
          f'{verified["measured_flops_ratio"]:.3f}x E2E measured, '
          f'{pred["flops"] / e2e_pred["flops"]:.3f}x predicted', file=out)


def print_front(front: dict, e2e: dict, out=sys.stdout) -> None:
    """The points of a Pareto front, peak and FLOPs as multiples of the
    predicted E2E step ``e2e``."""
    print('Pareto front (predicted), peak and FLOPs as multiples of E2E:',
          file=out)
    for p in front['front']:
        print(f'  {p["peak"] / e2e["peak"]:.3f}x peak '
              f'({p["peak"] / MiB:9.1f} MiB)  '
              f'{p["flops"] / e2e["flops"]:.3f}x FLOPs  '
              f'{p["kind"]}: K={p["plan"]["num_modules"]} cuts '
              f'{p["plan"]["cuts"]} full '
              f'{len(p["plan"]["checkpoint_blocks"])} selective '
              f'{len(p["plan"]["selective_checkpoint_blocks"])} units',
              file=out)


def plot_front(front: dict, out: str, title: str) -> None:
    """Peak (x E2E) against FLOPs (x E2E) of every family of plans."""
    plt = _pyplot('--plot')
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
    _save(fig, out)


def markdown_front(path, out=sys.stdout) -> None:
    """The points of a ``--pareto`` JSON's front as markdown rows, and the
    command that wrote it."""
    with open(path) as f:
        result = json.load(f)
    e2e = result['e2e']
    print('| peak x E2E | peak MiB | FLOPs x E2E | kind | K | cuts | '
          'full / selective checkpointed units |', file=out)
    print('|---:|---:|---:|---|---:|---|---|', file=out)
    for p in result['front']:
        plan = p['plan']
        print(f'| {p["peak"] / e2e["peak"]:.3f} | {p["peak"] / MiB:.1f} | '
              f'{p["flops"] / e2e["flops"]:.3f} | {p["kind"]} | '
              f'{plan["num_modules"]} | {fmt_cuts(plan["cuts"])} | '
              f'{len(plan["checkpoint_blocks"])} / '
              f'{len(plan["selective_checkpoint_blocks"])} |', file=out)
    print(f'\n`{result["command"]}`', file=out)


class PlanPrinter:
    """What :func:`mmseg_infopro.memory.plan_config.plan_splits` shows as
    it plans (its ``show``): the plan, its verification, the front."""

    def __init__(self, out=None):
        self.out = out

    def plan(self, plan, pred, e2e, candidates=(), num_modules=None):
        print_plan(plan, pred, e2e, candidates, num_modules,
                   out=self.out or sys.stdout)

    def verified(self, measured, e2e, pred, e2e_pred, verified):
        print_verified(measured, e2e, pred, e2e_pred, verified,
                       out=self.out or sys.stdout)

    def front(self, front, e2e):
        print_front(front, e2e, out=self.out or sys.stdout)
