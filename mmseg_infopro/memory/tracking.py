"""Peak memory, FLOPs and step time of one training step, on any device.

What is measured is one ``model.train_step(data, optim_wrapper)`` with the
config's optimizer (SGD with momentum, AdamW, ...) in a plain fp32
:class:`~mmengine.optim.OptimWrapper`, after a warm-up step (so the
optimizer states exist, as in any step but the first).

* CUDA: ``torch.cuda.max_memory_allocated`` (what the paper reports), peak
  reset before the step, minus what was allocated before the model was
  built (other models, other schedules).
* CPU, real or fake tensors: :class:`PeakTracker`, a
  ``torch.distributed._tools.mem_tracker.MemTracker`` that tracks
  parameters, buffers, gradients, optimizer states, activations and
  temporaries of every tensor storage (nothing is sampled). Under
  :func:`fake_mode` (``FakeTensorMode``) no tensor memory is allocated and
  no arithmetic is done, so the paper's full size (ResNet-101, batch 4,
  512x1024) is measured on a laptop CPU in seconds; the byte counts are the
  same as with real tensors (tests/test_benchmark.py checks this).

Per local module, the peak of the window from ``before_module(k)`` to
``after_module(k)`` (module k's forward, its loss, its backward; for the
last module also the optimizer step) is recorded through the model's
``module_callbacks`` (the engine's protocol).
"""
import contextlib
import statistics
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from torch.distributed._tools.mem_tracker import _TOTAL_KEY, MemTracker

from .building import fake_mode, prepare_step

MiB = 2**20
GiB = 2**30


# ---------------------------------------------------------------- tracker
class PeakTracker(MemTracker):
    """MemTracker with peak *windows*: :meth:`start_window` restarts the
    peak at the current total, :meth:`window_peak` reads the peak since
    then; :meth:`overall_peak` is the peak of the whole context.

    MemTracker keeps its running peak in ``_peak_mem`` /
    ``_peak_mem_snap`` (torch 2.4 .. 2.13) and has no public reset; this
    class is the only place that touches them. It also updates only the
    global peak after each operator: MemTracker's own update walks the
    per-module statistics of every module it has seen (thousands in a
    transformer, on every operator), which nothing here reads.
    """

    def __init__(self):
        super().__init__()
        if not all(hasattr(self, name) for name in (
                '_peak_mem', '_peak_mem_snap', '_curr_mem_snap')):
            raise RuntimeError(
                'this torch version\'s MemTracker keeps no _peak_mem / '
                '_peak_mem_snap / _curr_mem_snap: PeakTracker needs updating')
        self._best: Dict[torch.device, dict] = {}

    def _update_peak_stats(self, peak_state) -> None:
        for dev, snap in self._curr_mem_snap.items():
            total = snap[_TOTAL_KEY]
            if self._peak_mem.get(dev, 0) < total:
                self._peak_mem[dev] = total
                self._peak_mem_snap[dev] = dict(snap)

    def _fold(self):
        for dev, snap in self.get_tracker_snapshot('peak').items():
            if snap.get('Total', 0) > self._best.get(dev, {}).get('Total', -1):
                self._best[dev] = snap

    def start_window(self) -> None:
        self._fold()
        current = self.get_tracker_snapshot('current')
        self._peak_mem = {dev: s['Total'] for dev, s in current.items()}
        self._peak_mem_snap = current

    def current_total(self) -> int:
        return sum(s['Total'] for s in
                   self.get_tracker_snapshot('current').values())

    def window_peak(self) -> int:
        return sum(s['Total'] for s in
                   self.get_tracker_snapshot('peak').values())

    def overall_snapshot(self) -> dict:
        """``{category: bytes}`` at the overall peak, summed over devices,
        categories named as MemTracker's (Parameter, Buffer, Gradient,
        Activation, Temp, Optstate, Other) plus Total."""
        self._fold()
        out: Dict[str, int] = {}
        for snap in self._best.values():
            for key, value in snap.items():
                key = getattr(key, 'value', key)
                out[key] = out.get(key, 0) + value
        return out

    def overall_peak(self) -> int:
        return self.overall_snapshot().get('Total', 0)


def _storage_bytes(tensors) -> int:
    """Bytes of the storages of ``tensors`` (each tensor counted once)."""
    seen, total = set(), 0
    for t in tensors:
        if id(t) not in seen:
            seen.add(id(t))
            total += t.untyped_storage().nbytes()
    return total


def persistent_bytes(model: nn.Module, optim_wrapper: OptimWrapper) -> dict:
    """Bytes of the parameters, buffers and optimizer states."""
    states = [v for s in optim_wrapper.optimizer.state.values()
              for v in s.values() if isinstance(v, torch.Tensor)]
    return dict(
        Parameter=_storage_bytes(model.parameters()),
        Buffer=_storage_bytes(model.buffers()),
        Optstate=_storage_bytes(states))


class MemoryReader:
    """The memory in use and the peak of a *window* (since
    :meth:`start_window`): on CUDA from the allocator
    (``memory_allocated`` / ``max_memory_allocated``, minus ``baseline``),
    on the CPU (or fake tensors) from a :class:`PeakTracker` that is
    active. :attr:`highest` keeps the largest window peak seen when a new
    window starts (the CUDA peak counter is reset then)."""

    def __init__(self, tracker: Optional[PeakTracker] = None,
                 baseline: int = 0):
        self.tracker, self.baseline = tracker, baseline
        self.highest = 0

    def current(self) -> int:
        if self.tracker is None:
            return torch.cuda.memory_allocated() - self.baseline
        return self.tracker.current_total()

    def window_peak(self) -> int:
        if self.tracker is None:
            return torch.cuda.max_memory_allocated() - self.baseline
        return self.tracker.window_peak()

    def start_window(self) -> None:
        self.highest = max(self.highest, self.window_peak())
        if self.tracker is None:
            torch.cuda.reset_peak_memory_stats()
        else:
            self.tracker.start_window()


class _ModuleWindows:
    """A ``module_callbacks`` entry recording each local module's peak
    (module k's forward, loss and backward; the last module's window also
    holds the optimizer step)."""

    def __init__(self, reader: MemoryReader):
        self.reader = reader
        self.peaks: List[int] = []

    def before_module(self, k: int) -> None:
        self.reader.start_window()

    def after_module(self, k: int) -> None:
        self.peaks.append(self.reader.window_peak())


@contextlib.contextmanager
def _callback(model, callback):
    model.module_callbacks.append(callback)
    try:
        yield
    finally:
        model.module_callbacks.remove(callback)


def measure_step_memory(model: nn.Module, optim_wrapper: OptimWrapper,
                        data: dict, device: str = 'cpu',
                        warmup: bool = True,
                        baseline: int = 0) -> dict:
    """Peak memory of one ``train_step``.

    Args:
        model: an InfoPro model (any K) in train mode.
        optim_wrapper: its OptimWrapper (SGD with momentum).
        data: a batch (e.g. the model's ``example_batch``).
        device: ``'cpu'`` (MemTracker; also for fake tensors) or ``'cuda'``
            (``max_memory_allocated``).
        warmup: run one untracked step first so that the optimizer states
            exist (otherwise the step creates them).
        baseline: cuda only: bytes allocated before this model was built,
            subtracted from the readings.

    Returns:
        ``dict(peak=bytes, breakdown={category: bytes},
        module_peaks=[bytes per local module])``. On CPU the breakdown is
        MemTracker's at the peak; on cuda it has Parameter/Buffer/Optstate
        (counted) and ``Other`` = the rest (activations, gradients,
        temporaries).
    """
    if warmup:
        model.train_step(data, optim_wrapper)
    if device.startswith('cuda'):
        torch.cuda.synchronize()
        reader = MemoryReader(baseline=baseline)
        windows = _ModuleWindows(reader)
        torch.cuda.reset_peak_memory_stats()
        with _callback(model, windows):
            model.train_step(data, optim_wrapper)
        torch.cuda.synchronize()
        peak = max(reader.highest, reader.window_peak())
        breakdown = persistent_bytes(model, optim_wrapper)
        breakdown['Other'] = peak - sum(breakdown.values())
        breakdown['Total'] = peak
        return dict(peak=peak, breakdown=breakdown,
                    module_peaks=windows.peaks)
    tracker = PeakTracker()
    tracker.track_external(model, optim_wrapper.optimizer)
    windows = _ModuleWindows(MemoryReader(tracker))
    with _callback(model, windows), tracker:
        model.train_step(data, optim_wrapper)
    breakdown = tracker.overall_snapshot()
    return dict(peak=breakdown.get('Total', 0), breakdown=breakdown,
                module_peaks=windows.peaks)


# ------------------------------------------------------------------- flops
def count_step_flops(model: nn.Module, optim_wrapper: OptimWrapper,
                     data: dict) -> int:
    """FLOPs of one ``train_step`` (forward, backward, recomputation),
    counted by ``torch.utils.flop_counter.FlopCounterMode`` from the
    operators' shapes (matrix multiplications and convolutions; works on
    fake tensors). Device-independent: the compute a schedule adds."""
    from torch.utils.flop_counter import FlopCounterMode
    counter = FlopCounterMode(display=False)
    with counter:
        model.train_step(data, optim_wrapper)
    return counter.get_total_flops()


# ------------------------------------------------------------------ timing
def _sync(device):
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def time_steps(steps: Dict[str, Callable[[], object]], repeat: int = 5,
               warmup: int = 1, device: str = 'cpu', reference: str = 'e2e',
               log: Optional[Callable[[str], None]] = None) -> dict:
    """Interleaved step timing with paired ratios.

    Every round runs each schedule's step once, the order rotated from
    round to round, so slow periods of a shared machine hit all schedules
    alike; ``time_ratio`` is the median over rounds of
    ``t_schedule / t_reference`` of the same round. Wall-clock time
    (``time.perf_counter``) and, for CPU runs, the process's CPU time
    (``time.process_time``: the work done, insensitive to other processes
    taking the cores, but summed over threads) are both recorded.

    Args:
        steps: ``{name: callable running one training step}``.
        repeat: timed rounds; ``warmup``: untimed rounds first.

    Returns:
        ``{name: dict(time_s=median wall time, times=[...],
        time_ratio=median paired wall ratio to ``reference`` (None without
        it), ratios=[...], cpu_time_s, cpu_times, cpu_time_ratio,
        cpu_ratios (the same for CPU time; None on cuda))}``.
    """
    names = list(steps)
    for r in range(warmup):
        for name in names:
            if log:
                log(f'  warm-up {r + 1}/{warmup}: {name}')
            steps[name]()
    times = {name: [] for name in names}
    cpu = {name: [] for name in names}
    for r in range(repeat):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            _sync(device)
            start, start_cpu = time.perf_counter(), time.process_time()
            steps[name]()
            _sync(device)
            times[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
        if log:
            log(f'  round {r + 1}/{repeat}: ' + ', '.join(
                f'{n} {times[n][-1]:.2f}s (cpu {cpu[n][-1]:.2f}s)'
                for n in names))

    def paired(values, name):
        if reference not in values or repeat == 0:
            return None
        return [t / t0 for t, t0 in zip(values[name], values[reference])]

    def median(values):
        return statistics.median(values) if values else None

    out = {}
    for name in names:
        ratios, cpu_ratios = paired(times, name), paired(cpu, name)
        on_cpu = not device.startswith('cuda')
        out[name] = dict(
            time_s=median(times[name]), times=times[name],
            time_ratio=median(ratios), ratios=ratios,
            cpu_time_s=median(cpu[name]) if on_cpu else None,
            cpu_times=cpu[name] if on_cpu else None,
            cpu_time_ratio=median(cpu_ratios) if on_cpu else None,
            cpu_ratios=cpu_ratios if on_cpu else None)
    return out


def measure_schedule(cfg: Config, schedule: str,
                     cuts: Sequence[Tuple[int, int]], size: Tuple[int, int],
                     batch: int, device: str = 'cpu', fake: bool = False,
                     seed: int = 0, checkpoint: Optional[dict] = None,
                     flops: bool = False,
                     then: Optional[Callable] = None,
                     keep: bool = False) -> dict:
    """:func:`measure_step_memory` of one schedule on a freshly built model
    (:func:`~mmseg_infopro.memory.building.prepare_step`, under
    :func:`~mmseg_infopro.memory.building.fake_mode` with ``fake``).

    Args:
        flops: also ``result['flops']``, :func:`count_step_flops` of the
            same step.
        then: called as ``then(model, optim_wrapper, data)`` after the
            measurement (inside fake mode); its return value is
            ``result['then']``.
        keep: also ``result['step'] = (model, optim_wrapper, data)`` (real
            tensors: e.g. to time it); otherwise the model is dropped.
    """
    with fake_mode() if fake else contextlib.nullcontext():
        baseline = torch.cuda.memory_allocated() if device == 'cuda' else 0
        model, optim, data = prepare_step(cfg, schedule, cuts, size, batch,
                                          device, seed, checkpoint)
        result = measure_step_memory(model, optim, data, device=device,
                                     baseline=baseline)
        if flops:
            result['flops'] = count_step_flops(model, optim, data)
        if then is not None:
            result['then'] = then(model, optim, data)
        if keep:
            result['step'] = (model, optim, data)
        return result
