"""EncoderDecoder trained with InfoPro local supervision."""
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn as nn
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from torch import Tensor

from mmseg.models.segmentors import EncoderDecoder
from mmseg.registry import MODELS
from mmseg.utils import SampleList, add_prefix
from ..heads.recons_decoder import reconstruction_target
from .local_module import LocalModule


@MODELS.register_module()
class InfoProEncoderDecoder(EncoderDecoder):
    """EncoderDecoder whose backbone is trained as K local modules.

    The backbone (e.g. ``InfoProResNetV1c``) is cut at ``split_points`` into
    K modules. :meth:`train_step` runs them one after the other: module
    ``k < K-1`` takes the previous output *detached*, computes its local loss
    (``local_heads[k]``), back-propagates it and frees its graph before
    module ``k+1`` runs; the last module (rest of the backbone, neck,
    decode and auxiliary heads) is trained by the usual losses. There is one
    optimizer step per iteration. Inference is EncoderDecoder's: local heads
    are used in training only. K=1 is EncoderDecoder exactly.

    Args:
        local_heads (dict | list[dict]): one ``InfoProLocalHead`` config per
            cut (a single dict is used for every cut). ``in_channels`` and
            ``num_classes`` are filled in from the cut and the decode head.
        **kwargs: EncoderDecoder's arguments.
    """

    def __init__(self, backbone: dict, decode_head: dict,
                 local_heads=None, **kwargs):
        super().__init__(backbone=backbone, decode_head=decode_head,
                         **kwargs)
        if not hasattr(self.backbone, 'forward_module'):
            raise TypeError(
                'InfoProEncoderDecoder needs a backbone that knows its cuts '
                f'(e.g. InfoProResNetV1c), got {type(self.backbone).__name__}')
        num_cuts = self.backbone.num_modules - 1
        if local_heads is None:
            local_heads = []
        elif isinstance(local_heads, dict):
            local_heads = [local_heads] * num_cuts
        if len(local_heads) != num_cuts:
            raise ValueError(
                f'local_heads has {len(local_heads)} entries but '
                f'backbone.split_points={self.backbone.split_points} makes '
                f'{num_cuts} cut(s): give one local head per cut')
        heads = []
        for k, cfg in enumerate(local_heads):
            cfg = dict(cfg)
            cfg.setdefault('type', 'InfoProLocalHead')
            expected = self.backbone.module_out_channels(k)
            given = cfg.get('in_channels', None)
            if given is not None and given != expected:
                raise ValueError(
                    f'local_heads[{k}].in_channels={given}, but the cut '
                    f'{self.backbone.split_points[k]} passes the output of '
                    f'{self.backbone.module_out_name(k)}, which has '
                    f'{expected} channels (leave in_channels out to have it '
                    'filled in)')
            cfg['in_channels'] = expected
            cfg.setdefault('num_classes', self.num_classes)
            cfg.setdefault('align_corners', self.align_corners)
            heads.append(MODELS.build(cfg))
        self.local_heads = nn.ModuleList(heads)
        # Observers of train_step (e.g. the memory-logging hook): objects
        # with optional ``before_module(k)`` / ``after_module(k)`` methods,
        # called around module k's forward + backward. Not state.
        self.module_callbacks: list = []

    # ------------------------------------------------------------ partition
    @property
    def num_modules(self) -> int:
        return self.backbone.num_modules

    def _final_heads(self) -> List[nn.Module]:
        heads = [self.decode_head]
        if self.with_neck:
            heads.insert(0, self.neck)
        if self.with_auxiliary_head:
            heads.append(self.auxiliary_head)
        return heads

    def local_modules(self) -> List[LocalModule]:
        """The K local modules; their parameters partition the model's
        trainable parameters (the data preprocessor has none)."""
        modules = []
        for k in range(self.num_modules):
            parts = self.backbone.module_parts(k)
            if k < self.num_modules - 1:
                parts.append(self.local_heads[k])
            else:
                parts.extend(self._final_heads())
            modules.append(LocalModule(self, k, parts))
        return modules

    def _used_out_layers(self) -> Optional[set]:
        """Backbone layers (0-based) whose outputs the final heads read;
        None means all (a neck reads everything)."""
        if self.with_neck:
            return None
        heads = [self.decode_head]
        if self.with_auxiliary_head:
            heads += list(self.auxiliary_head) if isinstance(
                self.auxiliary_head, nn.ModuleList) else [self.auxiliary_head]
        positions = set()
        for head in heads:
            index = getattr(head, 'in_index', None)
            if index is None:
                return None
            positions.update(index if isinstance(index, Sequence) else
                             [index])
        out_indices = list(self.backbone.out_indices)
        return {out_indices[p] for p in positions}

    # -------------------------------------------------------------- forward
    def forward_local_module(self, k: int, x: Tensor, outs: Dict[int, Tensor],
                             data_samples: SampleList, gt: Tensor,
                             image: Optional[Tensor],
                             mask: Optional[Tensor]):
        """Run local module ``k`` and compute its losses.

        Args:
            k: module index 0..K-1.
            x: its input: the (N, 3, H, W) batch for k=0, else module k-1's
                output, detached.
            outs: backbone layer outputs so far (``{layer: tensor}``, earlier
                ones detached); filled in place with this module's.
            data_samples: the batch's SegDataSamples.
            gt: (N, H, W) labels for the local task heads.
            image, mask: reconstruction target and padding mask.

        Returns:
            ``(losses, output)``: the module's loss dict (keys prefixed
            ``s{k+1}.`` for local modules; ``decode.``/``aux.`` for the last)
            and its output tensor.
        """
        x = self.backbone.forward_module(k, x, outs)
        if k < self.num_modules - 1:
            losses = self.local_heads[k].loss(x, gt, image, mask)
            return add_prefix(losses, f's{k + 1}'), x
        feats = tuple(outs.get(i) for i in self.backbone.out_indices)
        return self.final_losses(feats, data_samples), x

    def final_losses(self, feats, data_samples: SampleList) -> dict:
        """Neck (if any), decode head and auxiliary head losses on the
        backbone outputs ``feats`` (``decode.*`` / ``aux.*`` keys)."""
        if self.with_neck:
            feats = self.neck(feats)
        losses = self._decode_head_forward_train(feats, data_samples)
        if self.with_auxiliary_head:
            losses.update(
                self._auxiliary_head_forward_train(feats, data_samples))
        return losses

    def _local_targets(self, inputs: Tensor, data_samples: SampleList):
        gt = torch.stack([s.gt_sem_seg.data for s in data_samples
                          ]).squeeze(1).long()
        if any(head.needs_image for head in self.local_heads):
            image, mask = reconstruction_target(inputs, data_samples,
                                                self.data_preprocessor)
        else:
            image = mask = None
        return gt, image, mask

    def _iter_modules(self, inputs, data_samples, modules):
        """Yield ``(k, losses)`` module by module; the caller may
        back-propagate ``losses`` before asking for the next module."""
        targets = self._local_targets(inputs, data_samples) \
            if self.num_modules > 1 else (None, None, None)
        used = self._used_out_layers()
        x, outs = inputs, {}
        for k, module in enumerate(modules):
            losses, x = module(x, outs, data_samples, *targets)
            yield k, losses
            x = x.detach()
            outs = {
                i: o.detach()
                for i, o in outs.items() if used is None or i in used
            }

    def loss(self, inputs: Tensor, data_samples: SampleList) -> dict:
        """All modules' losses, without any backward (e.g. for validation
        losses). Training uses :meth:`train_step`."""
        losses = {}
        for _, module_losses in self._iter_modules(inputs, data_samples,
                                                   self.local_modules()):
            losses.update(module_losses)
        return losses

    # ---------------------------------------------------------------- train
    def train_step(self, data, optim_wrapper: OptimWrapper,
                   local_modules: Optional[Sequence[nn.Module]] = None,
                   sync_context: Optional[nn.Module] = None
                   ) -> Dict[str, Tensor]:
        """One InfoPro training iteration.

        Keeps ``OptimWrapper.update_params``' contract: the last module's
        loss goes through ``update_params`` (one ``backward`` per iteration,
        so accumulation counting, ``should_sync`` and the optimizer step are
        mmengine's); the local losses before it are scaled the same way
        (``scale_loss`` and, with AMP, the ``loss_scaler``) and
        back-propagated directly, each as soon as its module has run.

        Args:
            data: a batch from the dataloader.
            optim_wrapper: OptimWrapper or AmpOptimWrapper over all
                parameters.
            local_modules: callables for the K modules (e.g. one DDP each);
                defaults to :meth:`local_modules`.
            sync_context: the model whose ``no_sync`` the optim context
                enters during accumulation (the distributed wrapper);
                defaults to self.

        Returns:
            Log variables: ``loss`` (sum over modules) and every module's
            losses, e.g. ``s1.loss_task``, ``s1.loss_recons``,
            ``decode.loss_ce``, ``aux.loss_ce``.
        """
        backward = type(optim_wrapper).backward
        if backward not in (OptimWrapper.backward, AmpOptimWrapper.backward):
            raise NotImplementedError(
                'InfoProEncoderDecoder.train_step supports OptimWrapper and '
                'AmpOptimWrapper (one optimizer for the whole model), got '
                f'{type(optim_wrapper).__name__}')
        context = self if sync_context is None else sync_context
        modules = self.local_modules() if local_modules is None \
            else list(local_modules)
        if len(modules) != self.num_modules:
            raise ValueError(f'{len(modules)} local modules given, the model '
                             f'has {self.num_modules}')
        with optim_wrapper.optim_context(context):
            data = self.data_preprocessor(data, True)
        steps = self._iter_modules(data['inputs'], data['data_samples'],
                                   modules)
        total = 0.
        log_vars = OrderedDict()
        for k in range(self.num_modules):
            self._notify('before_module', k)
            with optim_wrapper.optim_context(context):
                _, losses = next(steps)
            loss, module_log = self.parse_losses(losses)
            if k < self.num_modules - 1:
                self._backward_local(loss, optim_wrapper)
            else:
                optim_wrapper.update_params(loss)
            self._notify('after_module', k)
            total = total + loss.detach()
            module_log.pop('loss')
            log_vars.update(
                (key, value.detach()) for key, value in module_log.items())
        log_vars['loss'] = total
        log_vars.move_to_end('loss', last=False)
        return log_vars

    def _notify(self, event: str, k: int) -> None:
        for callback in self.module_callbacks:
            method = getattr(callback, event, None)
            if method is not None:
                method(k)

    @staticmethod
    def _backward_local(loss: Tensor, optim_wrapper: OptimWrapper) -> None:
        """Back-propagate a local loss as ``update_params`` would, without
        counting it as an iteration."""
        loss = optim_wrapper.scale_loss(loss)
        scaler = getattr(optim_wrapper, 'loss_scaler', None)
        if scaler is not None:
            loss = scaler.scale(loss)
        loss.backward()
