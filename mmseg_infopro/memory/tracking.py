"""Peak memory and step time of one training step, on any device.

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
import copy
import statistics
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.config import Config, ConfigDict
from mmengine.model import revert_sync_batchnorm
from mmengine.optim import OptimWrapper
from torch.distributed._tools.mem_tracker import _TOTAL_KEY, MemTracker
from torch.overrides import TorchFunctionMode

MiB = 2**20
GiB = 2**30

#: The schedules compared by tools/benchmark.py; ``plan`` (cuts plus
#: per-unit checkpointing, any K) is what tools/plan_splits.py writes.
SCHEDULES = ('e2e', 'checkpoint', 'infopro')
SCHEDULE_TITLES = dict(
    e2e='E2E (K=1)',
    checkpoint='E2E + checkpointing',
    infopro='InfoPro')


def save_json(obj, path: str, log: Optional[Callable[[str], None]] = None
              ) -> None:
    """Write ``obj`` as indented JSON to ``path`` (folders created)."""
    import json
    import os
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(obj, f, indent=1)
    if log:
        log(f'wrote {path}')


# --------------------------------------------------------------- configs
def local_head_template(model_cfg) -> dict:
    """The config's first local head (the one repeated for every cut), or
    ``{}`` (the model's default head) when the config has none (K=1)."""
    heads = model_cfg.get('local_heads', None)
    if isinstance(heads, dict):
        return copy.deepcopy(dict(heads))
    if heads:
        return copy.deepcopy(dict(heads[0]))
    return {}


def config_scope(cfg) -> str:
    """The registry scope a config's model is built in: its
    ``default_scope`` (``'mmseg'`` when it sets none)."""
    return cfg.get('default_scope', None) or 'mmseg'


def model_class(type_name, scope: str = 'mmseg'):
    """The class registered as ``type_name`` in ``scope``'s model registry
    (or its parents), or None; a class is returned as is."""
    if not isinstance(type_name, str):
        return type_name
    from mmengine.registry import MODELS
    with MODELS.switch_scope_and_registry(scope) as registry:
        return registry.get(type_name)


def check_cuttable(model_cfg, what: str = 'the benchmark',
                   scope: str = 'mmseg') -> None:
    """Raise ValueError unless ``model_cfg`` is an InfoPro model (a
    :class:`~mmseg_infopro.engine.LocalLearningModel`) with a backbone that
    meets the cut-able backbone contract."""
    from ..engine.local_learning import LocalLearningModel
    from ..models.backbones import CuttableBackbone, cuttable_hint
    btype = model_cfg.get('backbone', {}).get('type')
    cls = model_class(btype, scope)
    model_cls = model_class(model_cfg.get('type'), scope)
    ok = isinstance(cls, type) and issubclass(cls, CuttableBackbone)
    if not (isinstance(model_cls, type) and
            issubclass(model_cls, LocalLearningModel)) or not ok:
        raise ValueError(
            f'{what} needs an InfoPro model (InfoProEncoderDecoder, ...) with '
            f'a cut-able backbone, got model.type={model_cfg.get("type")!r}, '
            f'backbone.type={btype!r}: '
            f'{cuttable_hint(getattr(cls, "__name__", btype))}')


def schedule_model_cfg(cfg: Config, schedule: str,
                       cuts: Sequence[Tuple[int, int]] = (),
                       size: Optional[Tuple[int, int]] = None,
                       checkpoint: Optional[dict] = None) -> ConfigDict:
    """The model config of ``cfg`` for one benchmark schedule.

    Args:
        cfg: a config whose model is an InfoPro model (a
            ``LocalLearningModel``) with a cut-able backbone (any number of
            cuts).
        schedule: ``'e2e'`` (no cut, no local head: the stock model exactly),
            ``'checkpoint'`` (e2e with the backbone's own
            ``with_cp=True``), ``'infopro'`` (``cuts``, the config's local
            head repeated) or ``'plan'`` (``cuts``, possibly none, and the
            per-unit ``checkpoint``).
        cuts: the InfoPro cuts, ``[(stage, block), ...]``.
        size: the crop ``(H, W)``, set as ``data_preprocessor.size`` where
            the preprocessor pads to a size; default the config's.
        checkpoint: ``dict(full=[units], selective=[units])`` for
            ``'plan'`` (the backbone's ``checkpoint_blocks`` /
            ``selective_checkpoint_blocks``).

    Pretrained weights are dropped (``pretrained=None``: nothing can be
    downloaded here, and the memory does not depend on the values);
    :func:`build_model` turns SyncBN into BN.
    """
    if schedule not in SCHEDULES + ('plan', ):
        raise ValueError(f'unknown schedule {schedule!r}, allowed: '
                         f'{", ".join(SCHEDULES + ("plan", ))}')
    model = copy.deepcopy(cfg.model)
    check_cuttable(model, scope=config_scope(cfg))
    head = local_head_template(model)
    model.pretrained = None
    model.backbone.pop('init_cfg', None)
    model.backbone.pop('pretrained', None)
    if size is not None and 'size' in model.get('data_preprocessor', {}):
        model.data_preprocessor.size = tuple(size)
    cuts = [tuple(c) for c in cuts]
    checkpoint = checkpoint or {}
    # lists as given: the backbone checks and normalises them when built
    model.backbone.checkpoint_blocks = list(checkpoint.get('full', []))
    model.backbone.selective_checkpoint_blocks = list(
        checkpoint.get('selective', []))
    model.backbone.with_cp = schedule == 'checkpoint'
    if schedule == 'infopro' and not cuts:
        raise ValueError('the infopro schedule needs at least one cut')
    if schedule in ('infopro', 'plan') and cuts:
        model.backbone.split_points = cuts
        model.local_heads = [copy.deepcopy(head) for _ in cuts]
    else:
        model.backbone.split_points = []
        model.local_heads = None
    return model


def config_cuts(cfg: Config) -> List[Tuple[int, int]]:
    """The config's own cuts, ``model.backbone.split_points``, as
    ``(stage, block)`` pairs. Another notation a backbone accepts (e.g. the
    CIFAR ResNet's ``dict(table='balanced', num_modules=2)``) is resolved
    by building the backbone (the contract's ``split_points``)."""
    points = cfg.model.backbone.get('split_points', None) or []
    if isinstance(points, (list, tuple)):
        return [tuple(c) for c in points]
    from mmengine.registry import MODELS
    backbone = copy.deepcopy(cfg.model.backbone)
    backbone.pop('init_cfg', None)
    backbone.pop('pretrained', None)
    with MODELS.switch_scope_and_registry(config_scope(cfg)) as registry:
        return [tuple(c) for c in registry.build(backbone).split_points]


def config_checkpoint(cfg: Config) -> dict:
    """The config's per-unit checkpointing: ``dict(full=[units],
    selective=[units])`` from ``checkpoint_blocks`` /
    ``selective_checkpoint_blocks`` of its backbone."""
    backbone = cfg.model.backbone
    return dict(
        full=list(backbone.get('checkpoint_blocks', None) or []),
        selective=list(backbone.get('selective_checkpoint_blocks', None) or
                       []))


def optimizer_kwargs(cfg: Config) -> dict:
    """SGD arguments: the config's optimizer when it is SGD with momentum,
    else mmseg's default (lr 0.01, momentum 0.9, weight decay 5e-4)."""
    opt = dict(cfg.get('optim_wrapper', {}).get('optimizer', {}) or {})
    kwargs = dict(lr=0.01, momentum=0.9, weight_decay=5e-4)
    if opt.get('type') == 'SGD' and opt.get('momentum', 0) > 0:
        kwargs.update((k, opt[k]) for k in kwargs if k in opt)
    return kwargs


def config_optim_wrapper(model: nn.Module, cfg: Config) -> OptimWrapper:
    """The config's optimizer (SGD, AdamW, ... with its ``paramwise_cfg``
    and ``clip_grad``) in a plain fp32 :class:`OptimWrapper`, as the
    config trains, without AMP and accumulation (one measured step). A
    config without ``optim_wrapper`` gets SGD (:func:`optimizer_kwargs`).

    Unless the config says otherwise the optimizer uses its ``foreach``
    implementation, PyTorch's default on GPUs (on a CPU the default is a
    loop over parameters, whose step holds fewer temporaries but, under
    MemTracker, takes minutes for a transformer's thousand tensors)."""
    import inspect

    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import OPTIMIZERS
    wrapper_cfg = copy.deepcopy(cfg.get('optim_wrapper', None))
    if not wrapper_cfg or not wrapper_cfg.get('optimizer'):
        return sgd_optim_wrapper(model, foreach=True,
                                 **optimizer_kwargs(cfg))
    wrapper_cfg = ConfigDict(wrapper_cfg)
    wrapper_cfg.type = 'OptimWrapper'
    for key in ('loss_scale', 'dtype', 'use_fsdp', 'accumulative_counts'):
        wrapper_cfg.pop(key, None)
    optim_cls = OPTIMIZERS.get(wrapper_cfg.optimizer.get('type'))
    if optim_cls is not None and 'foreach' in inspect.signature(
            optim_cls).parameters:
        wrapper_cfg.optimizer.setdefault('foreach', True)
    return build_optim_wrapper(model, wrapper_cfg)


# --------------------------------------------------------------- building
class _RealLinspace(TorchFunctionMode):
    """Inside FakeTensorMode, while a model is built: ``torch.linspace``
    runs on real tensors and returns a numpy array. MiT and Swin read
    their drop-path rates with ``[x.item() for x in torch.linspace(...)]``
    in ``__init__``, which FakeTensorMode refuses (data-dependent)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.linspace:
            from torch._subclasses.fake_tensor import unset_fake_temporarily
            with unset_fake_temporarily():
                return func(*args, **kwargs).numpy()
        return func(*args, **kwargs)


def build_model(model_cfg, device: str = 'cpu', seed: int = 0,
                scope: str = 'mmseg') -> nn.Module:
    """Build the model in train mode on ``device`` from ``scope``'s
    registry (under :func:`fake_mode` its tensors are fake)."""
    from mmengine.registry import MODELS
    torch.manual_seed(seed)
    ctx = _RealLinspace() if _in_fake_mode() else contextlib.nullcontext()
    with ctx, MODELS.switch_scope_and_registry(scope) as registry:
        model = registry.build(copy.deepcopy(model_cfg))
    # SyncBN needs a process group and GPU inputs; BN holds the same memory
    model = revert_sync_batchnorm(model)
    if device != 'cpu':
        model.to(device)
    model.train()
    return model


def sgd_optim_wrapper(model: nn.Module, **sgd_kwargs) -> OptimWrapper:
    """A plain OptimWrapper around SGD over every trainable parameter."""
    params = [p for p in model.parameters() if p.requires_grad]
    return OptimWrapper(torch.optim.SGD(params, **sgd_kwargs))


def step_shape(cfg: Config, batch: Optional[int] = None,
               size: Optional[Sequence[int]] = None) -> Tuple[int, tuple]:
    """``(batch, (H, W))`` of the measured step: the given values, else
    the config's ``train_dataloader.batch_size`` (2 when it has none) and
    ``data_preprocessor.size``, else the model class's
    ``default_input_size``."""
    batch = batch or cfg.get('train_dataloader', {}).get('batch_size', 2)
    if not size:
        size = cfg.model.get('data_preprocessor', {}).get('size') or \
            getattr(model_class(cfg.model.type, config_scope(cfg)),
                    'default_input_size', None)
    return batch, tuple(size)


def prepare_step(cfg: Config, schedule: str,
                 cuts: Sequence[Tuple[int, int]], size: Tuple[int, int],
                 batch: int, device: str = 'cpu', seed: int = 0,
                 checkpoint: Optional[dict] = None) -> tuple:
    """``(model, optim_wrapper, data)`` for one schedule of ``cfg``
    (:func:`schedule_model_cfg`; the config's optimizer,
    :func:`config_optim_wrapper`), ready for :func:`measure_step_memory`
    or timing. Call it under :func:`fake_mode` for fake tensors."""
    model = build_model(
        schedule_model_cfg(cfg, schedule, cuts, size, checkpoint), device,
        seed, config_scope(cfg))
    optim = config_optim_wrapper(model, cfg)
    data = model.example_batch(batch, size, seed)
    return model, optim, data


# ------------------------------------------------------------ fake tensors
def _in_fake_mode() -> bool:
    from torch._guards import active_fake_mode
    return active_fake_mode() is not None


def _fake_safe_accuracy(pred, target, topk=1, thresh=None,
                        ignore_index=None):
    """mmseg's ``accuracy`` (top-1 only) without boolean-mask indexing,
    whose output shape depends on the values (FakeTensorMode refuses it).
    It only feeds the ``acc_seg`` log entry; its temporaries are a few
    (N, H, W) bool/long tensors, as mmseg's."""
    if topk not in (1, (1, )) or thresh is not None:
        raise NotImplementedError('fake mode supports top-1 accuracy only')
    valid = torch.ones_like(target, dtype=torch.bool) \
        if ignore_index is None else target != ignore_index
    correct = (pred.argmax(1) == target) & valid
    acc = correct.sum().float().reshape(1) * 100.0 / \
        valid.sum().clamp(min=1)
    return acc if topk == 1 else [acc]


@contextlib.contextmanager
def fake_mode():
    """``FakeTensorMode`` for a whole benchmark run: models, batches and
    steps created inside hold fake tensors (shapes, dtypes, storages with
    sizes, no memory). mmseg's ``accuracy`` (a log metric that indexes
    with a boolean mask) is swapped for :func:`_fake_safe_accuracy` in
    every mmseg / mmseg_infopro module that imported it, and restored on
    exit."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    import mmseg.models.losses  # noqa: F401  (loads the accuracy module)
    original = sys.modules['mmseg.models.losses.accuracy'].accuracy
    patched = []
    for name, module in list(sys.modules.items()):
        if name.startswith(('mmseg.', 'mmseg_infopro.')) and \
                getattr(module, 'accuracy', None) is original:
            module.accuracy = _fake_safe_accuracy
            patched.append(module)
    try:
        with FakeTensorMode():
            yield
    finally:
        for module in patched:
            module.accuracy = original


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


class _ModuleWindows:
    """A ``module_callbacks`` entry recording each local module's peak
    (module k's forward, loss and backward; the last module's window also
    holds the optimizer step)."""

    def __init__(self, start: Callable[[], None], read: Callable[[], int]):
        self.start, self.read = start, read
        self.peaks: List[int] = []

    def before_module(self, k: int) -> None:
        self.start()

    def after_module(self, k: int) -> None:
        self.peaks.append(self.read())


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
        overall = []

        def start():
            overall.append(torch.cuda.max_memory_allocated())
            torch.cuda.reset_peak_memory_stats()

        windows = _ModuleWindows(
            start, lambda: torch.cuda.max_memory_allocated() - baseline)
        torch.cuda.reset_peak_memory_stats()
        with _callback(model, windows):
            model.train_step(data, optim_wrapper)
        torch.cuda.synchronize()
        overall.append(torch.cuda.max_memory_allocated())
        peak = max(overall) - baseline
        breakdown = persistent_bytes(model, optim_wrapper)
        breakdown['Other'] = peak - sum(breakdown.values())
        breakdown['Total'] = peak
        return dict(peak=peak, breakdown=breakdown,
                    module_peaks=windows.peaks)
    tracker = PeakTracker()
    tracker.track_external(model, optim_wrapper.optimizer)
    windows = _ModuleWindows(tracker.start_window, tracker.window_peak)
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
                     flops: bool = False) -> dict:
    """:func:`measure_step_memory` of one schedule on a freshly built model
    (under :func:`fake_mode` with ``fake``); the model is dropped after.
    ``flops``: also ``result['flops']``, :func:`count_step_flops` of the
    same step."""
    with fake_mode() if fake else contextlib.nullcontext():
        baseline = torch.cuda.memory_allocated() if device == 'cuda' else 0
        model, optim, data = prepare_step(cfg, schedule, cuts, size, batch,
                                          device, seed, checkpoint)
        result = measure_step_memory(model, optim, data, device=device,
                                     baseline=baseline)
        if flops:
            result['flops'] = count_step_flops(model, optim, data)
        return result
