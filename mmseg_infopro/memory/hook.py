"""Log every local module's peak memory during training."""
from typing import Dict, List, Optional

import torch
from mmengine.hooks import Hook
from mmengine.logging import MessageHub

from mmengine.registry import HOOKS

from ..engine.local_learning import find_local_learning_model
from .tracking import MemoryReader, MiB, PeakTracker


def local_head_bytes(model, optimizer=None) -> int:
    """Bytes the local heads of ``model`` (an engine model) hold now:
    their parameters and buffers, the parameters' gradients and, where
    ``optimizer`` is a ``torch.optim.Optimizer``, its states for them.
    Sizes come from shapes, so fake tensors count too."""
    heads = getattr(model, 'local_heads', None)
    if heads is None:
        return 0
    seen = set()
    total = 0

    def add(t) -> None:
        nonlocal total
        if isinstance(t, torch.Tensor) and id(t) not in seen:
            seen.add(id(t))
            total += t.numel() * t.element_size()

    params = list(heads.parameters())
    for t in params + list(heads.buffers()):
        add(t)
    states = getattr(optimizer, 'state', {}) \
        if isinstance(optimizer, torch.optim.Optimizer) else {}
    for p in params:
        add(p.grad)
        for value in states.get(p, {}).values():
            add(value)
    return total


@HOOKS.register_module()
class InfoProMemoryHook(Hook):
    """Measure each local module's peak memory every ``interval``
    iterations and log it as ``mem.s1``, ``mem.s2``, ... (MiB), with an
    end-to-end estimate ``mem.e2e_est`` (MiB) and the saving
    ``mem.saving = 1 - max_k mem.sk / mem.e2e_est``.

    Use it from a config::

        custom_hooks = [dict(type='InfoProMemoryHook', interval=50)]

    It registers itself in the InfoPro model's ``module_callbacks`` (model
    wrappers are unwrapped through ``.module``) and, on a measured
    iteration only (an optimizer hook is added for that iteration and
    removed after it), reads around every local module k:

    * ``before_k``: memory in use when module k starts;
    * ``fwd_k``: memory in use right after module k's backbone units ran
      forward (the engine's ``after_forward`` callback), before its
      loss;
    * ``mem.s(k+1)``: the peak from module k's start to the end of its
      backward (for the last module, the optimizer step included); the
      last module's peak is split at the optimizer step (an optimizer
      step pre-hook) into ``train_K`` (forward, losses, backward) and
      ``step`` (the optimizer step).

    The end-to-end estimate is what the same step would hold if no
    module released its activations before the last one::

        e2e_est = max(before_0 - local_0 + sum_{k < K-1} (fwd_k - before_k)
                      + (train_K - before_{K-1}),
                      step - local_step)

    i.e. the memory at the start (parameters, optimizer states, batch),
    less what the local heads hold (``local``: their parameters, buffers,
    gradients and optimizer states, which end to end do not exist), plus
    the activations every earlier module kept for backward (its
    blocks' saved tensors and output), plus the last module's working set
    (its activations, the decode/auxiliary heads, backward); or the
    optimizer step (all gradients; the same end to end, less the local
    heads' share read after the step) if larger. The
    first term is close when the end-to-end peak is reached at the final
    heads' loss, as is usual for segmentation at training sizes (how close
    is measured in docs/benchmarks.md); it leaves out
    the earlier modules' backward temporaries (end to end they overlap
    with the last module's freed activations) and counts the earlier
    modules' parameter gradients, which end to end do not exist yet at
    the loss, as freed (they are in ``before_{K-1}``, subtracted). For
    K=1 it equals ``mem.s1``. With per-unit checkpointing
    (``checkpoint_blocks``) it is the estimate of end to end *with that
    checkpointing*: the activations it adds up are those the modules
    kept.

    Devices:

    * CUDA: ``torch.cuda.memory_allocated`` and
      ``reset_peak_memory_stats`` / ``max_memory_allocated`` per module
      (cheap). A side effect: on measured iterations the ``memory`` field
      of mmengine's log line (peak since its last reset) covers the last
      module only.
    * CPU (``cpu=True``, the default): the measured iteration runs under
      :class:`~mmseg_infopro.memory.tracking.PeakTracker` (PyTorch's
      MemTracker: every tensor storage of the model, its gradients, the
      optimizer states and everything the step creates, counted
      exactly). It slows that one iteration down (Python bookkeeping on
      every operator, about 1.5-3x); the others run untouched. With
      ``cpu=False`` nothing is measured or logged on a CPU.

    Logged values are MessageHub scalars (``train/mem.*``), so the
    LoggerHook line and the json/visualizer backends show them, averaged
    over its smoothing window like any scalar (memory hardly varies).

    Args:
        interval: measure every ``interval`` training iterations (the
            first measured iteration is ``interval``).
        cpu: measure on CPU with MemTracker (see above).
    """
    priority = 'NORMAL'  # before LoggerHook (BELOW_NORMAL) reads scalars

    def __init__(self, interval: int = 50, cpu: bool = True):
        if not isinstance(interval, int) or isinstance(interval, bool) \
                or interval < 1:
            raise ValueError(f'InfoProMemoryHook: interval must be an int '
                             f'>= 1, got {interval!r}')
        self.interval = interval
        self.cpu = bool(cpu)
        self._model = None
        self._handles: list = []
        self._active = False
        self._cuda = False
        self._tracker: Optional[PeakTracker] = None
        self._reader: Optional[MemoryReader] = None
        self._before: Dict[int, int] = {}
        self._fwd: Dict[int, int] = {}
        self._peaks: Dict[int, int] = {}
        self._pre_step: Dict[int, int] = {}
        self._step: Dict[int, int] = {}
        self._module: Optional[int] = None
        self._optimizer = None
        self._local: Dict[str, int] = {}
        self.last: Dict[str, float] = {}

    # ------------------------------------------------------------ set-up
    def before_run(self, runner) -> None:
        model = find_local_learning_model(runner.model, 'InfoProMemoryHook')
        self._model = model
        if self not in model.module_callbacks:
            model.module_callbacks.append(self)

    def after_run(self, runner) -> None:
        self._stop()
        if self._model is not None and self in self._model.module_callbacks:
            self._model.module_callbacks.remove(self)

    def _start(self, optimizer) -> None:
        """For a measured iteration only: the optimizer step pre-hook and,
        on the CPU, the tracker (other iterations run with neither)."""
        if isinstance(optimizer, torch.optim.Optimizer):
            self._handles.append(
                optimizer.register_step_pre_hook(self._before_step))
        self._optimizer = optimizer
        tracker = None
        if not self._cuda:
            tracker = PeakTracker()
            tracker.track_external(self._model)
            if isinstance(optimizer, torch.optim.Optimizer):
                tracker.track_external(optimizer)
            tracker.__enter__()
            self._tracker = tracker
        self._reader = MemoryReader(tracker)

    def _stop(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        if self._tracker is not None:
            self._tracker.__exit__(None, None, None)
            self._tracker = None

    # ---------------------------------------------------- per iteration
    def before_train_iter(self, runner, batch_idx: int,
                          data_batch=None) -> None:
        self._stop()  # left running by an interrupted iteration
        self._active = False
        if not self.every_n_train_iters(runner, self.interval):
            return
        param = next(self._model.parameters(), None)
        self._cuda = param is not None and param.device.type == 'cuda'
        if not self._cuda and not self.cpu:
            return
        self._start(getattr(runner.optim_wrapper, 'optimizer', None))
        for readings in (self._before, self._fwd, self._peaks,
                         self._pre_step, self._step):
            readings.clear()
        self._local = {}
        self._active = True

    def before_module(self, k: int) -> None:
        if self._active:
            self._module = k
            if not self._before:
                self._local['start'] = local_head_bytes(self._model,
                                                        self._optimizer)
            self._before[k] = self._reader.current()
            self._reader.start_window()

    def _before_step(self, optimizer, args, kwargs) -> None:
        k = self._module
        if self._active and k is not None:
            self._pre_step[k] = self._reader.window_peak()
            self._reader.start_window()

    def after_forward(self, k: int) -> None:
        if self._active and k in self._before:
            self._fwd[k] = self._reader.current()

    def after_module(self, k: int) -> None:
        if self._active:
            peak = self._reader.window_peak()
            if k in self._pre_step:
                self._step[k] = peak
                self._local['step'] = local_head_bytes(self._model,
                                                       self._optimizer)
                peak = max(peak, self._pre_step[k])
            self._peaks[k] = peak
            self._module = None

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        if not self._active:
            return
        self._active = False
        self._stop()
        values = self.summarise(self._before, self._fwd, self._peaks,
                                self._pre_step, self._step, self._local)
        self.last = values
        for key, value in values.items():
            runner.message_hub.update_scalar(f'train/{key}', value)

    @classmethod
    def measure_step(cls, model, optim_wrapper, data) -> Dict[str, float]:
        """Run one ``model.train_step(data, optim_wrapper)`` with the hook
        attached as in training, outside a Runner, and return what it
        would log (``mem.s1`` ... ``mem.e2e_est``, ``mem.saving``).
        tools/benchmark.py uses it to set the estimate against a
        measured E2E step (also under FakeTensorMode)."""
        from types import SimpleNamespace
        hook = cls(interval=1)
        runner = SimpleNamespace(
            model=model, optim_wrapper=optim_wrapper, iter=0,
            message_hub=MessageHub(f'infopro_memory_hook_{id(hook)}'))
        hook.before_run(runner)
        try:
            hook.before_train_iter(runner, 0, data)
            model.train_step(data, optim_wrapper)
            hook.after_train_iter(runner, 0, data)
        finally:
            hook.after_run(runner)
        return hook.last

    @staticmethod
    def summarise(before: Dict[int, int], fwd: Dict[int, int],
                  peaks: Dict[int, int],
                  pre_step: Optional[Dict[int, int]] = None,
                  step: Optional[Dict[int, int]] = None,
                  local: Optional[Dict[str, int]] = None
                  ) -> Dict[str, float]:
        """The logged values (MiB, and the saving as a fraction) from the
        per-module readings in bytes (see the class doc): ``before``,
        ``fwd``, ``peaks`` by module; ``pre_step`` / ``step``: the last
        module's peak before / during the optimizer step (absent when
        the optimizer did not step, e.g. while accumulating); ``local``:
        the bytes the local heads hold at the start (``'start'``) and after
        the optimizer step (``'step'``), see :func:`local_head_bytes`."""
        pre_step = pre_step or {}
        step = step or {}
        local = local or {}
        ks: List[int] = sorted(peaks)
        if not ks:
            return {}
        values = {f'mem.s{k + 1}': peaks[k] / MiB for k in ks}
        last = ks[-1]
        if all(k in before for k in ks) and all(k in fwd for k in ks[:-1]):
            train_last = pre_step.get(last, peaks[last])
            est = before[ks[0]] - local.get('start', 0) \
                + sum(fwd[k] - before[k] for k in ks[:-1]) \
                + train_last - before[last]
            if last in step:
                est = max(est, step[last] - local.get('step', 0))
            values['mem.e2e_est'] = est / MiB
            values['mem.saving'] = 1.0 - max(peaks.values()) / est \
                if est > 0 else 0.0
        return values
