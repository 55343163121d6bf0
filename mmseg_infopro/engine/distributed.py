"""Data-parallel training of an InfoPro model: one DDP per local module.

Why not mmengine's ``MMDistributedDataParallel``: it wraps the whole model in
one ``DistributedDataParallel`` and never calls the model's ``train_step``.
InfoPro back-propagates module k's local loss *before* module k+1 runs, so
one iteration has K backward passes. One DDP around everything expects one
backward per forward: a backward inside its forward fails, and gradients of
a backward it did not prepare for are silently not all-reduced. Here each
local module (its backbone blocks + its local head, or the last blocks +
neck/decode/auxiliary heads) gets a DDP of its own, called once per
iteration and followed by exactly one backward of its own loss.
"""
import logging
from contextlib import ExitStack, contextmanager
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.distributed as torch_dist
import torch.nn as nn
from mmengine.device import get_device
from mmengine.logging import print_log
from mmengine.model import revert_sync_batchnorm
from mmengine.optim import OptimWrapper
from mmengine.registry import MODEL_WRAPPERS
from torch.nn.parallel import DistributedDataParallel

from .local_learning import LocalLearningModel

__all__ = [
    'InfoProDistributedDataParallel', 'BufferSyncedModule',
    'broadcast_module_buffers', 'broadcast_tensors'
]


def _has_sync_bn(module: nn.Module) -> bool:
    return any(
        isinstance(m, nn.SyncBatchNorm) or type(m).__name__ == 'SyncBatchNorm'
        for m in module.modules())


def _trainable_partition_errors(model: nn.Module,
                                local_modules: Sequence[nn.Module]
                                ) -> List[str]:
    """Names of trainable parameters of ``model`` that are in no local
    module or in more than one, with where they are."""
    owners: Dict[int, List[int]] = {}
    for k, local in enumerate(local_modules):
        for param in local.parameters():
            if param.requires_grad:
                owners.setdefault(id(param), []).append(k)
    errors = []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        found = owners.get(id(param), [])
        if not found:
            errors.append(f'{name} (in no local module)')
        elif len(found) > 1:
            errors.append(f'{name} (in local modules {found})')
    return errors


def _source_rank(group) -> int:
    """The global rank of ``group``'s rank 0 (None: the default group)."""
    return 0 if group is None else torch_dist.get_global_rank(group, 0)


@torch.no_grad()
def broadcast_tensors(tensors, group=None) -> None:
    """Give every rank of ``group`` rank 0's values of ``tensors`` (in
    place), in one broadcast per device and dtype."""
    by_kind: Dict[tuple, List[torch.Tensor]] = {}
    for t in tensors:
        by_kind.setdefault((t.device, t.dtype), []).append(t)
    src = _source_rank(group)
    for group_tensors in by_kind.values():
        flat = torch.cat([t.detach().reshape(-1) for t in group_tensors])
        torch_dist.broadcast(flat, src, group=group)
        offset = 0
        for t in group_tensors:
            t.copy_(flat[offset:offset + t.numel()].view_as(t))
            offset += t.numel()


def broadcast_module_buffers(module: nn.Module, group=None) -> None:
    """Give every rank of ``group`` rank 0's buffers of ``module`` (e.g. BN
    running statistics)."""
    broadcast_tensors(module.buffers(), group)


class BufferSyncedModule(nn.Module):
    """A local module without trainable parameters, kept in step across
    ranks the way a DDP keeps its module's buffers.

    DDP refuses a module with no parameter that requires grad, but such a
    module (e.g. frozen backbone stages whose BN layers still run in train
    mode) changes its buffers (BN running statistics) in every training
    forward, with each rank's own batch. As DDP does for the other local
    modules, this

    * broadcasts the (frozen) parameters and the buffers from rank 0 at
      construction (parameters unless ``init_sync`` is False; buffers
      unless ``init_sync`` is False, or ``broadcast_buffers=False`` was
      given without ``forward_sync_buffers``, as DDP);
    * when ``forward_sync_buffers``, broadcasts them again at the start of
      a forward, if the previous forward ran with grad enabled outside
      :meth:`no_sync` (DDP's ``require_forward_param_sync``);
    * exposes ``forward_sync_buffers`` / ``broadcast_buffers`` and
      ``process_group``, so that the wrapper's after-training sync treats
      it like a DDP.

    There is no gradient to all-reduce.
    """

    def __init__(self, module: nn.Module, process_group=None,
                 forward_sync_buffers: bool = True,
                 init_sync: bool = True,
                 init_sync_buffers: bool = True):
        super().__init__()
        self.module = module
        self.process_group = process_group
        self.forward_sync_buffers = forward_sync_buffers
        self.require_backward_grad_sync = True
        self.require_forward_param_sync = True
        if init_sync:
            broadcast_tensors(module.parameters(), process_group)
            if init_sync_buffers:
                broadcast_module_buffers(module, process_group)

    @property
    def broadcast_buffers(self) -> bool:
        return self.forward_sync_buffers

    @contextmanager
    def no_sync(self):
        old = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        try:
            yield
        finally:
            self.require_backward_grad_sync = old

    def forward(self, *args, **kwargs):
        if self.forward_sync_buffers and self.require_forward_param_sync:
            broadcast_module_buffers(self.module, self.process_group)
        output = self.module(*args, **kwargs)
        self.require_forward_param_sync = torch.is_grad_enabled() and \
            self.require_backward_grad_sync
        return output


@MODEL_WRAPPERS.register_module()
class InfoProDistributedDataParallel(nn.Module):
    """Distributed wrapper for any :class:`~.local_learning.
    LocalLearningModel` (``InfoProEncoderDecoder``, ...).

    Set it in a config with
    ``model_wrapper_cfg = dict(type='InfoProDistributedDataParallel')``;
    the runner uses it when the launcher is not ``'none'`` (non-distributed
    runs are not wrapped).

    At construction it

    * converts SyncBN to BN when the model is on the CPU (SyncBN needs GPU
      inputs; a warning is logged);
    * checks that every trainable parameter belongs to exactly one local
      module (:meth:`LocalLearningModel.local_modules`) and raises a
      ``ValueError`` naming those that do not: such a parameter would be
      neither broadcast at start nor all-reduced, and ranks would drift;
    * wraps each local module with trainable parameters in its own
      ``torch.nn.parallel.DistributedDataParallel`` (which broadcasts its
      parameters and buffers from rank 0), and each local module without
      one (frozen) in a :class:`BufferSyncedModule`, which keeps its
      buffers (BN running statistics) in step across ranks as DDP does.

    :meth:`train_step` delegates to the model's ``train_step`` with
    ``local_modules=<the DDPs>`` (so every module's forward goes through
    ``DDP.__call__`` and its backward all-reduces its gradients) and
    ``sync_context=self`` (so during gradient accumulation the optimizer
    wrapper enters :meth:`no_sync`, which enters every DDP's ``no_sync``).
    :meth:`val_step` / :meth:`test_step` are the model's: inference
    needs no communication.

    The model is ``self.module``; the DDPs are not sub-modules of the
    wrapper, so ``wrapper.module.state_dict()`` (what the runner saves) has
    the model's keys unchanged and ``wrapper.state_dict()`` only adds
    the ``module.`` prefix, as with mmengine's wrappers.

    A model without ``local_modules`` (e.g. a TTA model in a distributed
    test, or a plain EncoderDecoder) is wrapped as one DDP and trained like
    ``MMDistributedDataParallel`` does.

    Args:
        module (nn.Module): the model, on its device.
        broadcast_buffers (bool, optional): DDP's: broadcast buffers (BN
            running statistics) from rank 0 at the start of each module's
            forward. None (default) leaves DDP's default, True; passed
            only when given (torch >= 2.13 deprecates it in favour of
            ``forward_sync_buffers``, which ``**kwargs`` also accepts).
        find_unused_parameters (bool): DDP's. Defaults to False; set True
            when a local module has parameters its loss does not reach
            (e.g. a local loss term with weight 0).
        detect_anomalous_params (bool): accepted for compatibility with
            ``MMDistributedDataParallel``; not supported (a warning is
            logged when True).
        **kwargs: other ``DistributedDataParallel`` arguments
            (``process_group``, ``bucket_cap_mb``, ``static_graph``,
            ``gradient_as_bucket_view``, ...), passed to every DDP.
            ``device_ids`` / ``output_device`` are ignored: inputs are
            already on the module's device (the data preprocessor moved
            them), and DDP with ``device_ids`` would copy the dict of
            backbone outputs that the local modules fill in place.
    """

    def __init__(self,
                 module: nn.Module,
                 broadcast_buffers: Optional[bool] = None,
                 find_unused_parameters: bool = False,
                 detect_anomalous_params: bool = False,
                 **kwargs):
        super().__init__()
        for key in ('device_ids', 'output_device'):
            if kwargs.pop(key, None) is not None:
                print_log(
                    f'InfoProDistributedDataParallel ignores {key}: the '
                    'inputs of every local module are already on its device.',
                    logger='current',
                    level=logging.WARNING)
        if detect_anomalous_params:
            print_log(
                'InfoProDistributedDataParallel does not support '
                'detect_anomalous_params; ignored.',
                logger='current',
                level=logging.WARNING)
        param = next(module.parameters(), None)
        device = get_device() if param is None else param.device.type
        if device == 'cpu' and _has_sync_bn(module):
            print_log(
                'SyncBN needs GPU inputs, but the model is on the CPU: '
                'converting SyncBN to BN (batch statistics are per process).',
                logger='current',
                level=logging.WARNING)
            module = revert_sync_batchnorm(module)
        self.module = module

        local = module.local_modules() if isinstance(
            module, LocalLearningModel) else [module]
        errors = _trainable_partition_errors(module, local)
        if errors:
            raise ValueError(
                'InfoProDistributedDataParallel: every trainable parameter '
                'must belong to exactly one local module (otherwise it is '
                'not synchronised across processes), but: ' +
                ', '.join(errors) + '. Freeze it (requires_grad=False) or '
                "make it part of a local module's parts.")
        ddp_kwargs = dict(find_unused_parameters=find_unused_parameters,
                          **kwargs)
        if broadcast_buffers is not None:
            ddp_kwargs['broadcast_buffers'] = broadcast_buffers
        # DDP's buffer semantics, for the modules DDP cannot wrap
        forward_sync = kwargs.get('forward_sync_buffers')
        if forward_sync is None:
            forward_sync = broadcast_buffers is not False
            init_sync_buffers = forward_sync
        else:
            init_sync_buffers = True
        # A plain list: the DDPs share the model's parameters and must
        # not appear in the wrapper's state dict or module tree twice.
        self.local_ddps: List[nn.Module] = [
            DistributedDataParallel(m, **ddp_kwargs) if any(
                p.requires_grad for p in m.parameters()) else
            BufferSyncedModule(m, kwargs.get('process_group'),
                               forward_sync_buffers=bool(forward_sync),
                               init_sync=kwargs.get('init_sync', True),
                               init_sync_buffers=bool(init_sync_buffers))
            for m in local
        ]
        # set by train_step, cleared by the buffer sync before inference
        self._buffers_stale = False

    # -------------------------------------------------------------- helpers
    @contextmanager
    def no_sync(self):
        """Skip gradient all-reduce in every local module's DDP (used by
        ``OptimWrapper.optim_context`` during gradient accumulation)."""
        with ExitStack() as stack:
            for ddp in self.local_ddps:
                stack.enter_context(ddp.no_sync())
            yield

    def train(self, mode: bool = True):
        """Train mode for the wrapper and the per-module wrappers, then the
        model's own ``train``, last: it re-applies what its modules
        override (mmseg's ResNet keeps ``norm_eval`` BN layers and
        ``frozen_stages`` in eval mode), which the per-module wrappers'
        plain recursive ``train`` would undo."""
        super().train(mode)
        for ddp in self.local_ddps:
            ddp.train(mode)
        self.module.train(mode)
        return self

    def forward(self, *args, **kwargs):
        """The model's forward, without gradient synchronisation (the
        runner's loops use the ``*_step`` methods)."""
        return self.module(*args, **kwargs)

    # ---------------------------------------------------------------- steps
    def train_step(self, data: Union[dict, tuple, list],
                   optim_wrapper: OptimWrapper) -> Dict[str, torch.Tensor]:
        """One training iteration, gradients all-reduced module by module.

        Returns the model's log variables.
        """
        self._buffers_stale = True
        if isinstance(self.module, LocalLearningModel):
            return self.module.train_step(
                data,
                optim_wrapper,
                local_modules=self.local_ddps,
                sync_context=self)
        # not an InfoPro model: MMDistributedDataParallel's train_step
        ddp = self.local_ddps[0]
        with optim_wrapper.optim_context(self):
            data = self.module.data_preprocessor(data, training=True)
            if isinstance(data, dict):
                losses = ddp(**data, mode='loss')
            else:
                losses = ddp(*data, mode='loss')
        parsed_loss, log_vars = self.module.parse_losses(losses)
        optim_wrapper.update_params(parsed_loss)
        return log_vars

    def val_step(self, data: Union[dict, tuple, list]) -> list:
        self._sync_buffers_after_training()
        return self.module.val_step(data)

    def test_step(self, data: Union[dict, tuple, list]) -> list:
        self._sync_buffers_after_training()
        return self.module.test_step(data)

    def _sync_buffers_after_training(self) -> None:
        """Give every rank rank 0's buffers (BN running statistics) before
        the first inference after training.

        DDP broadcasts buffers at the start of each training forward, but
        the forward then updates them with the rank's own batch, so after
        training each rank's statistics differ slightly. Inference does not
        go through DDP; without this, a distributed validation would use a
        different model on each rank than the checkpoint (saved from rank
        0). Only for modules that broadcast buffers during training (DDPs
        and the :class:`BufferSyncedModule` of local modules without
        trainable parameters, with ``broadcast_buffers`` /
        ``forward_sync_buffers`` on); all ranks call
        ``val_step``/``test_step`` together, so this collective is safe.
        """
        if not self._buffers_stale:
            return
        self._buffers_stale = False
        for ddp in self.local_ddps:
            if getattr(ddp, 'broadcast_buffers', True):
                broadcast_module_buffers(ddp.module, ddp.process_group)
