"""Rewriting a config into one schedule of its model (end to end, end to
end with checkpointing, InfoPro, a plan), and what the measured step reads
from a config (its cuts, checkpointing, optimizer, batch and crop)."""
import copy
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.config import Config, ConfigDict
from mmengine.optim import OptimWrapper

#: The schedules compared by tools/benchmark.py; ``plan`` (cuts plus
#: per-unit checkpointing, any K) is what tools/plan_splits.py writes.
SCHEDULES = ('e2e', 'checkpoint', 'infopro')
SCHEDULE_TITLES = dict(
    e2e='E2E (K=1)',
    checkpoint='E2E + checkpointing',
    infopro='InfoPro')


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
    from ..engine.backbone_contract import CuttableBackbone, cuttable_hint
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


def sgd_optim_wrapper(model: nn.Module, **sgd_kwargs) -> OptimWrapper:
    """A plain OptimWrapper around SGD over every trainable parameter."""
    params = [p for p in model.parameters() if p.requires_grad]
    return OptimWrapper(torch.optim.SGD(params, **sgd_kwargs))


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
