"""The engine's model protocol and the InfoPro training step.

:class:`LocalLearningModel` is what makes any mmengine model (a segmentor,
a classifier) train as K gradient-isolated local modules. It owns the
task-agnostic half: the partition into :class:`LocalModule` s, running
module k on the detached output of module k-1, back-propagating each
module's loss before the next one runs, the optimizer-wrapper contract,
the observers around every module, and building the local heads. The task
model supplies the other half through the protocol below; the distributed
wrapper, the hooks and the memory tools talk to models only through it.
"""
import copy
import logging
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.distributed as torch_dist
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.optim import OptimWrapper
from torch import Tensor

from .backbone_contract import CuttableBackbone, cuttable_hint
from .local_module import LocalModule
from .lookahead import build_lookahead
from .optim_contract import backward_local, check_optim_wrapper

WRAPPER_HINT = "model_wrapper_cfg = dict(type='InfoProDistributedDataParallel')"


def add_prefix(losses: dict, prefix: str) -> dict:
    """``{f'{prefix}.{key}': value}`` for every entry."""
    return {f'{prefix}.{key}': value for key, value in losses.items()}


class LocalLearningModel:
    """Mixin: a model whose backbone is trained as K local modules.

    Put it first in the bases of a task model, an mmengine ``BaseModel``:
    ``class InfoProEncoderDecoder(LocalLearningModel, EncoderDecoder)``, and
    call :meth:`init_local_learning` at the end of ``__init__``.

    The task model implements :class:`~mmseg_infopro.engine.task_protocol.
    LocalLearningTask` (the protocol: local head defaults, targets and loss,
    final heads and losses, the stages they read, an example batch).

    **What the mixin provides**: :attr:`num_modules`,
    :meth:`local_modules`, :meth:`forward_local_module`,
    :meth:`iter_module_losses`, :meth:`loss` (every module's losses, no
    backward), :meth:`train_step` (the InfoPro step) and
    ``module_callbacks``, the observers of the step: objects with optional
    ``before_module(k)``, ``after_forward(k)`` (module k's backbone units
    ran) and ``after_module(k)`` (its loss was back-propagated; for the
    last module, the optimizer stepped) methods.
    """

    local_head_registry = None
    default_input_size = (512, 1024)

    # --------------------------------------------------------------- set-up
    def init_local_learning(self, local_heads) -> None:
        """Check the backbone, build the local heads (``self.local_heads``)
        and the observer list. Call at the end of ``__init__``.

        Args:
            local_heads (dict | list[dict] | None): one head config per cut
                (a single dict is used for every cut). ``in_channels`` and
                ``target_channels`` are filled in from the cut (a given
                value must match), then :meth:`local_head_defaults`. At K=1
                there is no local head and ``local_heads`` is ignored (a
                warning says so).
        """
        name = type(self).__name__
        if not isinstance(self.backbone, CuttableBackbone):
            bname = type(self.backbone).__name__
            raise TypeError(
                f'{name} needs a backbone that knows its cuts (a '
                f'CuttableBackbone), got {bname}: {cuttable_hint(bname)}')
        num_cuts = self.backbone.num_modules - 1
        if num_cuts == 0 and local_heads:
            given = 1 if isinstance(local_heads, dict) else len(local_heads)
            print_log(
                f'{name}: K=1 (no split_points), so the {given} local head '
                'config(s) are not used',
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
            cfg = self.local_head_config(cfg)
            if isinstance(cfg.get('lookahead'), dict):
                spec = cfg['lookahead']
                if spec.get('type') == 'auto':
                    spec = self.default_lookahead(
                        cfg, self.level_channels(k) is not None) or \
                        dict(type=None)
                cfg['lookahead'] = build_lookahead(
                    self.backbone, k, self.num_modules, **spec)
            heads.append(self.build_local_head(
                cfg, self.backbone.module_out_channels(k),
                self.backbone.module_in_channels(k),
                self.level_channels(k)))
        self.local_heads = nn.ModuleList(heads)
        # observers of train_step (not state)
        self.module_callbacks: list = []

    def build_local_head(self, cfg: dict, in_channels: int,
                         target_channels: int,
                         level_channels: Optional[List[int]] = None
                         ) -> nn.Module:
        """One local head from its config, for a module whose output has
        ``in_channels`` and whose input has ``target_channels`` channels,
        and whose levels (when it produces stage outputs the final heads
        read) have ``level_channels`` (also used by the memory tools for
        any module)."""
        cfg = dict(self.local_head_config(cfg), in_channels=in_channels,
                   target_channels=target_channels)
        if level_channels is not None:
            cfg['level_channels'] = list(level_channels)
        return self.local_head_registry.build(cfg)

    def local_head_config(self, cfg: dict) -> dict:
        """``cfg`` completed with :meth:`local_head_defaults` (its own
        values win; ``lookahead=None`` switches a default lookahead off)."""
        out = dict(cfg)
        for key, value in self.local_head_defaults().items():
            out.setdefault(key, copy.deepcopy(value))
        return out

    # --------------------------------------------------------------- levels
    def module_levels(self, k: int) -> Tuple[List[int], bool]:
        """``(stages, with_output)``: module ``k``'s *levels* are the raw
        outputs of ``stages`` (the stages the final heads read that end
        inside it, in order) followed by its output when ``with_output``
        (it is not the last of those outputs itself)."""
        stages = self.backbone.module_read_stages(k, self.used_out_indices())
        with_output = not (stages and
                           self.backbone.module_output_is_stage_output(k) and
                           stages[-1] == self.backbone.module_units(k)[-1][0]
                           - 1)
        return stages, with_output

    def level_channels(self, k: int) -> Optional[List[int]]:
        """Widths of module ``k``'s levels, or None when its only level is
        its output (no stage output of it is read by the final heads)."""
        stages, with_output = self.module_levels(k)
        if not stages:
            return None
        known = dict(self.stage_channels())
        for s in stages:  # a width no head config states: the backbone's
            if s not in known and self.backbone.stage_output_is_unit_output:
                last = [u for u in self.backbone.units()
                        if u != 'stem' and u[0] == s + 1][-1]
                known[s] = self.backbone.unit_out_channels(last)
        missing = [s for s in stages if s not in known]
        if missing:
            raise ValueError(
                f'{type(self).__name__}.stage_channels() has no width for '
                f'stage(s) {missing} that local module {k} hands to the '
                f'final heads (it knows {sorted(known)})')
        out = [known[s] for s in stages]
        if with_output:
            out.append(self.backbone.module_out_channels(k))
        return out

    def stage_channels(self) -> Dict[int, int]:
        """Protocol default: no final head reads an early stage."""
        return {}

    @staticmethod
    def local_loss(head: nn.Module, feat: Tensor, targets,
                   inputs: Optional[Tensor], levels=None) -> dict:
        """Protocol default: ``head.loss(feat, *targets, inputs=inputs)``
        (and ``levels=`` for a head that reads them)."""
        if levels is None:
            return head.loss(feat, *targets, inputs=inputs)
        return head.loss(feat, *targets, inputs=inputs, levels=levels)

    def default_lookahead(self, cfg: dict, has_levels: bool
                          ) -> Optional[dict]:
        """Protocol default: ``lookahead=dict(type='auto')`` gives no
        lookahead. A task returns the lookahead spec a module gets, given
        its local head config ``cfg`` and whether it hands stage outputs to
        the final heads (``has_levels``)."""
        return None

    # ------------------------------------------------------------ partition
    @property
    def num_modules(self) -> int:
        return self.backbone.num_modules

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

    # -------------------------------------------------------------- forward
    def forward_local_module(self, k: int, x: Tensor, outs: Dict[int, Tensor],
                             data_samples, targets):
        """Run local module ``k`` and compute its losses.

        Args:
            k: module index 0..K-1.
            x: its input: the preprocessed (N, C, H, W) batch for k=0, else
                module k-1's output, detached.
            outs: raw backbone stage outputs so far (``{stage index:
                tensor}``, earlier ones detached); filled in place with this
                module's.
            data_samples: the batch's data samples.
            targets: :meth:`local_targets` of the batch (None at K=1).

        Returns:
            ``(losses, output)``: the module's loss dict (keys prefixed
            ``s{k+1}.`` for local modules; the task's final loss keys for
            the last) and its output tensor.
        """
        before = set(outs)
        out = self.backbone.forward_module(k, x, outs)
        self._notify('after_forward', k)
        if k < self.num_modules - 1:
            head = self.local_heads[k]
            levels = None
            if getattr(head, 'reads_levels', False):
                stages, with_output = self.module_levels(k)
                assert not set(stages) & before, (stages, before)
                levels = [outs[s] for s in stages] + (
                    [out] if with_output else [])
            losses = self.local_loss(head, out, targets, x, levels)
            return add_prefix(losses, f's{k + 1}'), out
        feats = self.backbone.format_outputs(outs)
        return self.final_losses(feats, data_samples), out

    def iter_module_losses(self, inputs: Tensor, data_samples,
                           modules: Sequence[nn.Module]):
        """Yield ``(k, losses)`` module by module; the caller may
        back-propagate ``losses`` before asking for the next module, whose
        input (and the stage outputs the final heads read) are detached."""
        targets = self.local_targets(inputs, data_samples,
                                     list(self.local_heads)) \
            if self.num_modules > 1 else None
        used = self.used_out_indices()
        x, outs = inputs, {}
        for k, module in enumerate(modules):
            losses, x = module(x, outs, data_samples, targets)
            yield k, losses
            x = x.detach()
            outs = {
                i: o.detach()
                for i, o in outs.items() if used is None or i in used
            }

    def loss(self, inputs: Tensor, data_samples) -> dict:
        """All modules' losses, without any backward (e.g. for validation
        losses). Training uses :meth:`train_step`.

        Raises:
            RuntimeError: when called for training under torch.distributed
                with K > 1: mmengine's default MMDistributedDataParallel
                trains through ``forward(mode='loss')``, which would keep
                every module's graph alive (no memory saving) and never run
                the local backward passes.
        """
        if (self.num_modules > 1 and self.training and
                torch.is_grad_enabled() and torch_dist.is_available() and
                torch_dist.is_initialized()):
            raise RuntimeError(
                f'{type(self).__name__} is being trained through '
                "forward(mode='loss') in a distributed run: mmengine's "
                'default MMDistributedDataParallel does that, which keeps '
                'all local modules\' graphs alive at once and loses the '
                'memory saving. Add this line to the config: '
                f'{WRAPPER_HINT}')
        losses = {}
        for _, module_losses in self.iter_module_losses(
                inputs, data_samples, self.local_modules()):
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
        mmengine's); the local losses before it are scaled the same way and
        back-propagated directly (:func:`backward_local`), each as soon as
        its module has run, which frees its graph before the next module.

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
            losses, e.g. ``s1.loss_task``, ``s1.loss_recons`` and the final
            loss's keys.
        """
        check_optim_wrapper(optim_wrapper,
                            f'{type(self).__name__}.train_step')
        context = self if sync_context is None else sync_context
        modules = self.local_modules() if local_modules is None \
            else list(local_modules)
        if len(modules) != self.num_modules:
            raise ValueError(f'{len(modules)} local modules given, the model '
                             f'has {self.num_modules}')
        with optim_wrapper.optim_context(context):
            data = self.data_preprocessor(data, True)
        steps = self.iter_module_losses(data['inputs'], data['data_samples'],
                                        modules)
        total = 0.
        log_vars = OrderedDict()
        for k in range(self.num_modules):
            self._notify('before_module', k)
            with optim_wrapper.optim_context(context):
                _, losses = next(steps)
            loss, module_log = self.parse_losses(losses)
            if k < self.num_modules - 1:
                backward_local(loss, optim_wrapper)
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


def find_local_learning_model(model, who: str) -> LocalLearningModel:
    """The :class:`LocalLearningModel` inside ``model`` (model wrappers are
    unwrapped through ``.module``); ``TypeError`` naming ``who`` if there is
    none."""
    inner = model
    while not isinstance(inner, LocalLearningModel) and \
            hasattr(inner, 'module'):
        inner = inner.module
    if not isinstance(inner, LocalLearningModel):
        raise TypeError(
            f'{who} needs an InfoPro model (a LocalLearningModel, e.g. '
            f'InfoProEncoderDecoder), got {type(model).__name__}')
    return inner
