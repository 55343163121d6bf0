"""EncoderDecoder trained with InfoPro local supervision."""
import logging
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence

import torch
import torch.distributed as torch_dist
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from torch import Tensor

from mmseg.models.segmentors import EncoderDecoder
from mmseg.registry import MODELS
from mmseg.utils import SampleList, add_prefix
from ..backbones import CuttableBackbone, cuttable_hint
from ..heads.recons_decoder import reconstruction_target
from .local_module import LocalModule


#: what :meth:`InfoProEncoderDecoder.train_step` relies on in an optimizer
#: wrapper: these methods must be OptimWrapper's or AmpOptimWrapper's own
RELIED_ON = ('update_params', 'backward', 'step', 'zero_grad', 'scale_loss',
             'should_update', 'should_sync', 'optim_context')
WRAPPER_HINT = "model_wrapper_cfg = dict(type='InfoProDistributedDataParallel')"


def check_optim_wrapper(optim_wrapper) -> None:
    """Raise ``NotImplementedError`` unless ``optim_wrapper`` is an
    OptimWrapper / AmpOptimWrapper whose :data:`RELIED_ON` methods are
    those classes' own (a subclass overriding one of them would be
    bypassed or called in a way it does not expect: the local losses are
    scaled and back-propagated outside ``update_params``)."""
    if not isinstance(optim_wrapper, OptimWrapper):
        raise NotImplementedError(
            'InfoProEncoderDecoder.train_step needs one OptimWrapper or '
            'AmpOptimWrapper for the whole model, got '
            f'{type(optim_wrapper).__name__}')
    overridden = [
        name for name in RELIED_ON
        if getattr(type(optim_wrapper), name) not in (
            getattr(OptimWrapper, name), getattr(AmpOptimWrapper, name))
    ]
    if overridden:
        raise NotImplementedError(
            'InfoProEncoderDecoder.train_step supports OptimWrapper and '
            f'AmpOptimWrapper; {type(optim_wrapper).__name__} overrides '
            f'{", ".join(overridden)}, which the InfoPro step calls in its '
            'own order (local losses are scaled and back-propagated outside '
            'update_params)')


@MODELS.register_module()
class InfoProEncoderDecoder(EncoderDecoder):
    """EncoderDecoder whose backbone is trained as K local modules.

    The backbone (any :class:`~mmseg_infopro.models.backbones.
    CuttableBackbone`: ``InfoProResNetV1c``, ``InfoProMixVisionTransformer``,
    ``InfoProSwinTransformer``, ...) is cut at ``split_points`` into K
    modules. :meth:`train_step` runs them one after the other: module
    ``k < K-1`` takes the previous output *detached*, computes its local loss
    (``local_heads[k]``), back-propagates it and frees its graph before
    module ``k+1`` runs; the last module (rest of the backbone, neck,
    decode and auxiliary heads) is trained by the usual losses. There is one
    optimizer step per iteration. Inference is EncoderDecoder's: local heads
    are used in training only. K=1 is EncoderDecoder exactly.

    Heads that read several stages (SegformerHead, UPerHead, FPN necks):
    the outputs of stages that end in an earlier module reach them
    *detached*. Nothing back-propagates across a cut: those stages are
    trained by their own module's local loss only, and the final loss
    trains the last module (and the heads themselves).

    Args:
        local_heads (dict | list[dict]): one ``InfoProLocalHead`` config per
            cut (a single dict is used for every cut). ``in_channels``,
            ``target_channels`` and ``num_classes`` are filled in from the
            cut and the decode head. At K=1 there is no local head and
            ``local_heads`` is ignored (a warning says so).
        **kwargs: EncoderDecoder's arguments.
    """

    def __init__(self, backbone: dict, decode_head: dict,
                 local_heads=None, **kwargs):
        super().__init__(backbone=backbone, decode_head=decode_head,
                         **kwargs)
        if not isinstance(self.backbone, CuttableBackbone):
            name = type(self.backbone).__name__
            raise TypeError(
                'InfoProEncoderDecoder needs a backbone that knows its cuts '
                f'(a CuttableBackbone), got {name}: {cuttable_hint(name)}')
        num_cuts = self.backbone.num_modules - 1
        if num_cuts == 0 and local_heads:
            given = 1 if isinstance(local_heads, dict) else len(local_heads)
            print_log(
                f'InfoProEncoderDecoder: K=1 (no split_points), so the '
                f'{given} local head config(s) are not used',
                logger='current', level=logging.WARNING)
            local_heads = []
        if isinstance(local_heads, dict):
            local_heads = [local_heads] * num_cuts
        local_heads = list(local_heads or [])
        if len(local_heads) != num_cuts:
            raise ValueError(
                f'local_heads has {len(local_heads)} entries but '
                f'backbone.split_points={self.backbone.split_points} makes '
                f'{num_cuts} cut(s): give one local head per cut (or one '
                'dict for all of them)')
        heads = []
        for k, cfg in enumerate(local_heads):
            cfg = dict(cfg)
            cfg.setdefault('type', 'InfoProLocalHead')
            for key, expected, what in (
                    ('in_channels', self.backbone.module_out_channels(k),
                     'output'),
                    ('target_channels', self.backbone.module_in_channels(k),
                     'input')):
                given = cfg.get(key, None)
                if given is not None and given != expected:
                    raise ValueError(
                        f'local_heads[{k}].{key}={given}, but the '
                        f'{what} of local module {k} (cut '
                        f'{self.backbone.split_points[k]}, ending at '
                        f'{self.backbone.module_out_name(k)}) has '
                        f'{expected} channels (leave {key} out to have it '
                        'filled in)')
                cfg[key] = expected
            cfg.setdefault('num_classes', self.num_classes)
            cfg.setdefault('align_corners', self.align_corners)
            heads.append(MODELS.build(cfg))
        self.local_heads = nn.ModuleList(heads)
        # Observers of train_step (e.g. the memory-logging hook): objects
        # with optional ``before_module(k)`` / ``after_forward(k)`` (module
        # k's backbone units ran) / ``after_module(k)`` methods, called
        # around module k's forward + backward. Not state.
        self.module_callbacks: list = []

    # ------------------------------------------------------------ partition
    @property
    def num_modules(self) -> int:
        return self.backbone.num_modules

    def final_heads(self) -> List[nn.Module]:
        """Neck, decode head and auxiliary head(s): trained by the final
        loss, in the last module."""
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
                parts.extend(self.final_heads())
            modules.append(LocalModule(self, k, parts))
        return modules

    def used_out_indices(self) -> Optional[set]:
        """Backbone stages (0-based, as ``out_indices``) whose outputs the
        final heads read; None means all (a neck reads everything)."""
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
            outs: raw backbone stage outputs so far (``{stage index:
                tensor}``, earlier ones detached); filled in place with this
                module's.
            data_samples: the batch's SegDataSamples.
            gt: (N, H, W) labels for the local task heads.
            image, mask: reconstruction target and padding mask.

        Returns:
            ``(losses, output)``: the module's loss dict (keys prefixed
            ``s{k+1}.`` for local modules; ``decode.``/``aux.`` for the last)
            and its output tensor.
        """
        out = self.backbone.forward_module(k, x, outs)
        self._notify('after_forward', k)
        if k < self.num_modules - 1:
            losses = self.local_heads[k].loss(out, gt, image, mask,
                                              inputs=x)
            return add_prefix(losses, f's{k + 1}'), out
        feats = self.backbone.format_outputs(outs)
        return self.final_losses(feats, data_samples), out

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

    def local_targets(self, inputs: Tensor, data_samples: SampleList):
        """``(gt, image, mask)`` for the local heads: (N, H, W) labels, and
        the reconstruction target and padding mask
        (:func:`reconstruction_target`; image None when no local head
        reconstructs the image)."""
        gt = torch.stack([s.gt_sem_seg.data for s in data_samples
                          ]).squeeze(1).long()
        image, mask = reconstruction_target(
            inputs, data_samples, self.data_preprocessor,
            with_image=any(head.needs_image for head in self.local_heads))
        return gt, image, mask

    def _iter_modules(self, inputs, data_samples, modules):
        """Yield ``(k, losses)`` module by module; the caller may
        back-propagate ``losses`` before asking for the next module."""
        targets = self.local_targets(inputs, data_samples) \
            if self.num_modules > 1 else (None, None, None)
        used = self.used_out_indices()
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
        losses). Training uses :meth:`train_step`.

        Raises:
            RuntimeError: when called for training under torch.distributed
                with K > 1: mmengine's default MMDistributedDataParallel
                trains through ``forward(mode='loss')``, which would keep
                every module's graph alive (no memory saving) and never run
                the local backward passes.
        """
        if (self.num_modules > 1 and self.training
                and torch.is_grad_enabled() and torch_dist.is_available()
                and torch_dist.is_initialized()):
            raise RuntimeError(
                'InfoProEncoderDecoder is being trained through '
                "forward(mode='loss') in a distributed run: mmengine's "
                'default MMDistributedDataParallel does that, which keeps '
                'all local modules\' graphs alive at once and loses the '
                'memory saving. Add this line to the config: '
                f'{WRAPPER_HINT}')
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
                parameters (see :func:`check_optim_wrapper`).
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
        check_optim_wrapper(optim_wrapper)
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
        if not loss.requires_grad:  # a frozen local module and head
            return
        loss = optim_wrapper.scale_loss(loss)
        scaler = getattr(optim_wrapper, 'loss_scaler', None)
        if scaler is not None:
            loss = scaler.scale(loss)
        loss.backward()
