"""Peak memory and step time of one training step: E2E vs InfoPro.

:func:`run_benchmark` (what ``tools/benchmark.py`` runs) measures three
schedules of the same network, batch and crop:

* ``e2e``: no cut, no local head (the stock model exactly);
* ``checkpoint``: e2e with the backbone's own gradient checkpointing
  (``backbone.with_cp=True``: ResNet, MiT and Swin blocks);
* ``infopro``: the config's cuts (and its ``checkpoint_blocks`` /
  ``selective_checkpoint_blocks``, e.g. a config written by
  ``tools/plan_splits.py --memory-budget``), or ``cuts``, or
  ``num_modules=K`` (cuts planned by :mod:`.planning` to balance the
  modules' peaks; the prediction is reported next to the measurement).

The model can have any backbone that meets the cut-able backbone contract
(mmseg_infopro.models.backbones: the ResNet family, MiT, Swin). Memory is
that of one step with the config's optimizer (SGD, AdamW, ...) after a
warm-up step: ``torch.cuda.max_memory_allocated`` on ``device='cuda'``
(``cudnn.benchmark=True``), MemTracker on the CPU. ``fake=True`` runs
everything under FakeTensorMode: no memory is allocated and nothing is
computed, so the paper's size (ResNet-101, batch 4, 512x1024) takes well
under a minute on a CPU; fake runs measure memory only.

Step time (real runs) is the median of ``repeat`` rounds after ``warmup``
rounds, the schedules interleaved (order rotated every round); the time
ratio is the median of the per-round ratios to e2e. On the CPU the
process's CPU time per step is reported next to the wall-clock time (on a
shared machine it is the steadier measure of the work; use one thread so
that it is not inflated by threads waiting for cores). ``flops=True`` adds
the FLOPs of one step per schedule (FlopCounterMode, also under fake
mode). The InfoPro step is run once more with :class:`InfoProMemoryHook`
attached (unless ``hook=False``): what a training log shows, its E2E
estimate set against the measured E2E peak.

Pretrained weights are not loaded and SyncBN becomes BN; neither changes
memory or time.
"""
import platform
import time
from typing import Callable, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.config import Config

from .hook import InfoProMemoryHook
from .planning import plan_cuts
from .profile_measure import measure_profile
from .describe import fmt_cuts
from .schedules import (config_checkpoint, config_cuts, SCHEDULE_TITLES,
                        SCHEDULES, step_shape)
from .tracking import MiB, measure_schedule, time_steps


class BenchmarkError(ValueError):
    """A benchmark that cannot run as asked (e.g. an ``infopro`` schedule
    of a config without cuts)."""


def parse_cuts(text: str) -> List[Tuple[int, int]]:
    """``"3,13;4,0"`` -> ``[(3, 13), (4, 0)]``; ValueError naming the bad
    part otherwise."""
    cuts = []
    for part in text.replace(' ', '').split(';'):
        if not part:
            continue
        try:
            layer, block = (int(v) for v in part.strip('()').split(','))
        except ValueError:
            raise ValueError(
                f'bad cut {part!r} in {text!r}: expected "stage,block" '
                'pairs separated by ";", e.g. "3,13;4,0"') from None
        cuts.append((layer, block))
    if not cuts:
        raise ValueError(f'no cut in {text!r}')
    return cuts


def _infopro_cuts(cfg, config: str, batch, size, device, fake, seed, cuts,
                  num_modules, log) -> tuple:
    """``(cuts, checkpoint, planner)`` of the infopro schedule: ``cuts``
    as given, planned for ``num_modules`` (``planner``: the prediction),
    or the config's (``checkpoint``: its per-unit checkpointing)."""
    if cuts is not None:
        return cuts, {}, None
    if num_modules is not None:
        log(f'planning cuts for K={num_modules}: measuring every block')
        profile = measure_profile(cfg, batch, size, device=device,
                                  fake=fake, seed=seed, modes=())
        cuts, pred = plan_cuts(profile, num_modules)
        planner = dict(
            num_modules=num_modules, cuts=[list(c) for c in cuts],
            predicted_peak_mib=pred['peak'] / MiB,
            predicted_module_peaks_mib=[v / MiB for v in pred['modules']],
            predicted_phases=pred['phases'],
            predicted_e2e_mib=profile.predict([])['peak'] / MiB,
            predicted_gflops=pred['flops'] / 1e9,
            predicted_e2e_gflops=profile.predict([])['flops'] / 1e9)
        log(f'planned cuts: {fmt_cuts(cuts)}')
        return cuts, {}, planner
    cuts, checkpoint = config_cuts(cfg), config_checkpoint(cfg)
    if not cuts and not any(checkpoint.values()):
        raise BenchmarkError(
            f'{config} has no cuts (K=1): give --cuts or '
            '--num-modules for the infopro schedule, or '
            '--schedules e2e,checkpoint')
    return cuts, checkpoint, None


def _measure_schedule(cfg, schedule, cuts, checkpoint, batch, size, device,
                      fake, seed, flops, hook, keep, log) -> tuple:
    """``(result row, (model, optim, data) or None)`` of one schedule;
    the step is kept (for timing) with ``keep``."""
    sched_cuts = cuts if schedule == 'infopro' else []
    build_as, sched_ckpt = schedule, None
    if schedule == 'infopro' and any(checkpoint.values()):
        build_as, sched_ckpt = 'plan', checkpoint
    log(f'{schedule}: building (cuts {fmt_cuts(sched_cuts)}' +
        (f', checkpointing {sched_ckpt}' if sched_ckpt else '') +
        '), warm-up step + measured step')
    def with_hook(model, optim, data):
        log(f'{schedule}: one more step with InfoProMemoryHook')
        return InfoProMemoryHook.measure_step(model, optim, data)

    mem = measure_schedule(cfg, build_as, sched_cuts, size, batch, device,
                           fake, seed, checkpoint=sched_ckpt, flops=flops,
                           then=with_hook if schedule == 'infopro' and hook
                           else None, keep=keep)
    step_flops, hook_mib = mem.get('flops'), mem.get('then')
    log(f'{schedule}: peak {mem["peak"] / MiB:.1f} MiB')
    row = dict(
        title=SCHEDULE_TITLES[schedule] + (
            f' K={len(sched_cuts) + 1}' if schedule == 'infopro' else '') +
        (' + checkpointing' if sched_ckpt else ''),
        cuts=[list(c) for c in sched_cuts],
        checkpoint=sched_ckpt,
        num_modules=len(sched_cuts) + 1,
        peak_bytes=mem['peak'], peak_mib=mem['peak'] / MiB,
        breakdown_mib={k: v / MiB for k, v in mem['breakdown'].items()},
        module_peaks_mib=[v / MiB for v in mem['module_peaks']],
        gflops=None if step_flops is None else step_flops / 1e9,
        hook_mib=hook_mib,
        flops_ratio=None, ratio=None, time_s=None, times_s=None,
        time_ratio=None, time_ratios=None, cpu_time_s=None,
        cpu_times_s=None, cpu_time_ratio=None, cpu_time_ratios=None)
    step = mem.pop('step', None)
    if device == 'cuda' and step is None:
        torch.cuda.empty_cache()
    return row, step


def _add_timing(results: dict, steps: dict, repeat: int, warmup: int,
                device: str, log) -> None:
    """Time the kept steps interleaved; their rows get the times."""
    log(f'timing: {warmup} warm-up + {repeat} rounds, interleaved')
    timing = time_steps(
        {name: (lambda m=m, o=o, d=d: m.train_step(d, o))
         for name, (m, o, d) in steps.items()},
        repeat=repeat, warmup=warmup, device=device, log=log)
    for name, t in timing.items():
        results[name].update(
            time_s=t['time_s'], times_s=t['times'],
            time_ratio=t['time_ratio'], time_ratios=t['ratios'],
            cpu_time_s=t['cpu_time_s'], cpu_times_s=t['cpu_times'],
            cpu_time_ratio=t['cpu_time_ratio'],
            cpu_time_ratios=t['cpu_ratios'])


def run_benchmark(config: Union[str, Config],
                  schedules: Sequence[str] = SCHEDULES,
                  batch: Optional[int] = None,
                  size: Optional[Sequence[int]] = None,
                  device: str = 'cpu', fake: bool = False,
                  cuts: Optional[Sequence[Tuple[int, int]]] = None,
                  num_modules: Optional[int] = None, repeat: int = 5,
                  warmup: int = 1, flops: bool = False, hook: bool = True,
                  seed: int = 0, command: Optional[str] = None,
                  log: Optional[Callable[[str], None]] = None) -> dict:
    """Measure ``schedules`` of ``config`` (a path or a Config); returns
    the result dict ``tools/benchmark.py --out`` writes.

    Args:
        batch, size: the step's shape (default: the config's train batch
            size and ``data_preprocessor.size``).
        cuts / num_modules: the infopro schedule's cuts, or K for planned
            cuts (default: the config's cuts and checkpointing).
        repeat, warmup: timed and untimed rounds of real runs (``repeat=0``:
            no timing; fake runs are never timed).
        flops: also count the FLOPs of one step per schedule.
        hook: run the InfoPro step once more with InfoProMemoryHook.
        command: recorded as ``result['command']``.
        log: called with progress lines.

    Keys: ``command, config, device, device_name, fake, batch, size, seed,
    torch, repeat, warmup, schedules`` (``{name: row}``: title, cuts,
    checkpoint, num_modules, peak_bytes / peak_mib and their ratio to E2E,
    breakdown_mib, module_peaks_mib, gflops / flops_ratio, hook_mib and the
    times), ``planner`` (the prediction, with ``num_modules``) and
    ``elapsed_s``.
    """
    started = time.time()
    log = log or (lambda msg: None)
    bad = [s for s in schedules if s not in SCHEDULES]
    if bad or not schedules:
        raise BenchmarkError(f'schedules: unknown {bad}, allowed: '
                             f'{",".join(SCHEDULES)}')
    cfg = config if isinstance(config, Config) else Config.fromfile(config)
    config = config if isinstance(config, str) else cfg.filename
    schedules = list(schedules)
    batch, size = step_shape(cfg, batch, size)
    if device == 'cuda':
        torch.backends.cudnn.benchmark = True
    log(f'{config}: batch {batch}, {size[0]}x{size[1]}, device '
        f'{device}{" (fake tensors)" if fake else ""}')

    planner, checkpoint = None, {}
    if 'infopro' in schedules:
        cuts, checkpoint, planner = _infopro_cuts(
            cfg, config, batch, size, device, fake, seed, cuts, num_modules,
            log)
        if cuts == [] and not any(checkpoint.values()):  # K=1
            schedules.remove('infopro')

    keep = not fake and repeat > 0
    results, steps = {}, {}
    for schedule in schedules:
        results[schedule], step = _measure_schedule(
            cfg, schedule, cuts, checkpoint, batch, size, device, fake, seed,
            flops, hook, keep, log)
        if step is not None:
            steps[schedule] = step
    if 'e2e' in results:
        e2e = results['e2e']
        for r in results.values():
            r['ratio'] = r['peak_bytes'] / e2e['peak_bytes']
            if r['gflops'] is not None:
                r['flops_ratio'] = r['gflops'] / e2e['gflops']
    if steps:
        _add_timing(results, steps, repeat, warmup, device, log)

    return dict(
        command=command, config=config, device=device,
        device_name=(torch.cuda.get_device_name() if device == 'cuda' else
                     f'{platform.processor() or platform.machine()}, '
                     f'{torch.get_num_threads()} threads'),
        fake=fake, batch=batch, size=list(size), seed=seed,
        torch=torch.__version__, repeat=repeat if steps else 0,
        warmup=warmup if steps else 0,
        schedules=results, planner=planner,
        elapsed_s=time.time() - started)
