"""Exporting an InfoPro checkpoint for plain mmseg (deployment, mmseg's tools).

:func:`export_checkpoint` (what ``tools/export_checkpoint.py`` runs) writes
two files:

* ``OUT.pth``: ``{'meta': ..., 'state_dict': ...}`` holding exactly the
  weights of the plain mmseg model (``backbone.*``, ``decode_head.*``,
  ``auxiliary_head.*``; the training-only ``local_heads.*``, optimizer,
  message hub and RNG states are dropped). ``meta`` keeps ``dataset_meta``
  (classes and palette, for ``mmseg.apis.inference_model`` and the
  visualiser), the training iteration and the plain config text. Only
  tensors and plain Python values are stored, so it loads with
  ``torch.load(..., weights_only=True)``: torch >= 2.6's default, which
  mmengine's loader (and so mmseg's ``init_model`` and ``tools/test.py``)
  uses. Training checkpoints need more (they pickle mmengine's
  ``HistoryBuffer`` and numpy RNG states): the input is loaded with
  :func:`mmseg_infopro.safe_loading.load_checkpoint`, which allows exactly
  those and refuses a file that names any other global.
* ``OUT.py``: the matching plain mmseg config (:func:`to_plain_config`):
  model ``EncoderDecoder`` with the stock backbone (``InfoProResNetV1c`` ->
  ``ResNetV1c``, ``InfoProMixVisionTransformer`` -> ``MixVisionTransformer``,
  ``InfoProSwinTransformer`` -> ``SwinTransformer``, ...: every cut-able
  backbone names its stock class; no ``split_points``, no checkpointing
  lists, no ``local_heads``, ``pretrained=None``), datasets
  ``CityscapesDataset`` instead of ``CheckedCityscapesDataset``; no
  ``custom_imports``, no ``model_wrapper_cfg`` and no hooks of this package.

The training config is read from the checkpoint (mmengine stores it in
``meta['cfg']``) unless ``config`` is given. The plain model is built from
``OUT.py`` and ``OUT.pth`` is loaded into it with strict keys before
:func:`export_checkpoint` returns, so a successful export is loadable by
plain mmseg::

    from mmseg.apis import inference_model, init_model
    model = init_model('OUT.py', 'OUT.pth', device='cpu')
    result = inference_model(model, 'image.png')
    # or: python mmseg/tools/test.py OUT.py OUT.pth
"""
import os
import os.path as osp
import warnings
from collections import OrderedDict
from typing import Optional

import numpy as np
import torch
from mmengine.config import Config
from mmengine.registry import Registry, init_default_scope

from ..safe_loading import load_checkpoint
from .backbones import INFOPRO_TWINS

#: arguments every cut-able backbone adds to its stock class
BACKBONE_KEYS = ('split_points', 'checkpoint_blocks',
                 'selective_checkpoint_blocks')
#: this package's types and their plain mmseg equivalents:
#: ``type: (plain type, keys only the InfoPro type accepts)``; every
#: cut-able backbone (``CuttableBackbone.plain_type``) is one
PLAIN_TYPES = {
    'InfoProEncoderDecoder': ('EncoderDecoder', ('local_heads', )),
    'InfoProImageClassifier': ('ImageClassifier',
                               ('local_heads', 'local_loss_weights')),
    'CheckedCityscapesDataset': ('CityscapesDataset', ('on_bad_sample', )),
    **{infopro: (plain, BACKBONE_KEYS)
       for plain, infopro in INFOPRO_TWINS.items()},
}
#: top-level config keys plain mmseg has no use for (or that would make it
#: import this package / load another checkpoint)
DROP_KEYS = ('custom_imports', 'model_wrapper_cfg', 'work_dir', 'load_from',
             'resume')
#: the exported model type of image classification: mmseg has no image
#: classifier, so that export keeps this package's plain (end-to-end)
#: classifier, backbone, head, datasets and metric, and its custom_imports
CLASSIFIER = 'ImageClassifier'


class ExportError(ValueError):
    """A checkpoint or config that cannot be exported (the message names
    the file, key or type)."""


# ------------------------------------------------------------------ config
def _package_types() -> dict:
    """``{type name: registry name}`` of everything this package
    registered (in mmseg's and mmengine's registries)."""
    import mmengine.registry as engine_registry

    import mmseg.registry as seg_registry
    found = {}
    for module in (seg_registry, engine_registry):
        for value in vars(module).values():
            if not isinstance(value, Registry):
                continue
            for name, cls in value.module_dict.items():
                if getattr(cls, '__module__', '').startswith('mmseg_infopro'):
                    found[name] = value.name
    return found


def _walk(node, path=''):
    """Yield ``(path, dict)`` for every dict in a config tree."""
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from _walk(value, f'{path}.{key}' if path else str(key))
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _walk(value, f'{path}[{i}]')


def _is_training_only(name: str) -> bool:
    """Whether a type of this package exists only for InfoPro training
    (the InfoPro twins, local heads and their parts, hooks, the wrapper)."""
    return name in PLAIN_TYPES or name.startswith('InfoPro') or \
        name in ('RNGStateHook', 'ImageReconsDecoder', 'AuxClassifier1c2f',
                 'AuxConvClassifier', 'SupConLoss', 'LocalTaskHead',
                 'ReconstructionDecoder', 'FeatureReconstructionDecoder')


def to_plain_config(cfg: Config) -> Config:
    """The plain mmseg config of an InfoPro training config (a copy).

    An image classifier (``InfoProImageClassifier``) becomes this package's
    end-to-end ``ImageClassifier`` with the stock backbone: mmseg has no
    classifier, so that config keeps ``custom_imports`` of this package,
    and only the training-only types are removed."""
    cfg = Config(cfg.to_dict())
    classifier = str(cfg.model.get('type', '')).split('.')[-1] in (
        'InfoProImageClassifier', CLASSIFIER)
    imports = cfg.get('custom_imports')
    for key in DROP_KEYS:
        cfg.pop(key, None)
    if classifier and imports:
        cfg.custom_imports = imports
    package_types = _package_types()
    if classifier:
        package_types = {name: registry
                         for name, registry in package_types.items()
                         if _is_training_only(name)}
    if cfg.get('custom_hooks'):
        cfg.custom_hooks = [
            hook for hook in cfg.custom_hooks
            if str(hook.get('type', '')).split('.')[-1] not in package_types
        ]
        if not cfg.custom_hooks:
            cfg.pop('custom_hooks')
    for _, node in _walk(cfg._cfg_dict):
        kind = node.get('type')
        if not isinstance(kind, str):
            continue
        name = kind.split('.')[-1]
        if name in PLAIN_TYPES:
            node['type'], extra_keys = PLAIN_TYPES[name]
            for key in extra_keys:
                node.pop(key, None)
    model = cfg.model
    model.pretrained = None
    backbone = model.get('backbone')
    if isinstance(backbone, dict) and isinstance(
            backbone.get('init_cfg'), dict) and \
            backbone.init_cfg.get('type') == 'Pretrained':
        backbone.init_cfg = None
    left = [(path, node['type']) for path, node in _walk(cfg._cfg_dict)
            if isinstance(node.get('type'), str) and
            node['type'].split('.')[-1] in package_types]
    if left:
        raise ExportError(
            'the config uses types of mmseg_infopro that have no plain mmseg '
            'equivalent: ' + ', '.join(f'{p}: {t}' for p, t in left) +
            f'. Known equivalents: {PLAIN_TYPES}')
    return cfg


def load_training_config(checkpoint: dict, config: Optional[str] = None,
                         checkpoint_path: str = 'the checkpoint') -> Config:
    """The training config: the file ``config``, else the text mmengine's
    Runner stored in ``checkpoint['meta']['cfg']``."""
    if config:
        if not osp.isfile(config):
            raise ExportError(f'config file not found: {config}')
        return Config.fromfile(config)
    text = checkpoint.get('meta', {}).get('cfg') \
        if isinstance(checkpoint.get('meta'), dict) else None
    if not text:
        raise ExportError(
            f"{checkpoint_path} holds no config (no meta['cfg']; mmengine's "
            'Runner stores it in every checkpoint it saves): pass the '
            'training config with --config')
    return Config.fromstring(text, file_format='.py')


# -------------------------------------------------------------- checkpoint
def _plain_value(value, where='meta'):
    """``value`` as types ``torch.load(weights_only=True)`` accepts."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {(k.item() if isinstance(k, np.generic) else k):
                _plain_value(v, f'{where}[{k!r}]')
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(
            _plain_value(v, f'{where}[{i}]') for i, v in enumerate(value))
    warnings.warn(f'{where}: {type(value).__name__} stored as its str() in '
                  'the exported meta')
    return str(value)


def training_state_dict(checkpoint) -> 'OrderedDict[str, torch.Tensor]':
    """The model weights of a training checkpoint (its ``state_dict``,
    without a DDP ``module.`` prefix)."""
    state = checkpoint.get('state_dict', checkpoint) \
        if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not state or not all(
            isinstance(v, torch.Tensor) for v in state.values()):
        raise ExportError('the checkpoint holds no state_dict of tensors')
    if all(k.startswith('module.') for k in state):
        state = {k[len('module.'):]: v for k, v in state.items()}
    return OrderedDict(state)


def plain_state_dict(state: dict, model: torch.nn.Module):
    """``(exported, dropped)``: exactly ``model``'s keys, taken from
    ``state``; raises if one is missing or has another shape."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    if missing:
        raise ExportError(
            f'the checkpoint lacks {len(missing)} weights of the plain model '
            f'(does the config match the checkpoint?): {missing[:10]}')
    bad = [f'{k}: {tuple(state[k].shape)} vs {tuple(v.shape)}'
           for k, v in expected.items() if state[k].shape != v.shape]
    if bad:
        raise ExportError('shape mismatch between the checkpoint and the '
                          f'config (checkpoint vs model): {bad[:10]}')
    exported = OrderedDict((k, state[k].detach().cpu().clone())
                           for k in expected)
    dropped = [k for k in state if k not in expected]
    return exported, dropped


def export_checkpoint(checkpoint_path: str, out: str,
                      config: Optional[str] = None) -> dict:
    """Export ``checkpoint_path`` to ``out`` (``.pth``) and the plain
    config next to it (``.py``); returns ``dict(checkpoint=out,
    config=..., dropped=[training-only keys], exported=[kept keys])``."""
    stem, ext = osp.splitext(out)
    if ext == '.py':
        raise ExportError(f'--out {out}: give the checkpoint path (e.g. '
                          f'{stem}.pth); the config goes to {stem}.py')
    out_cfg = stem + '.py'
    if not osp.isfile(checkpoint_path):
        raise ExportError(f'checkpoint not found: {checkpoint_path}')
    if osp.abspath(checkpoint_path) == osp.abspath(out):
        raise ExportError('--out must differ from the input checkpoint')
    # weights_only=True with what training checkpoints hold allowed
    # (HistoryBuffer, numpy RNG states); anything else is refused
    checkpoint = load_checkpoint(checkpoint_path, map_location='cpu')
    cfg = to_plain_config(
        load_training_config(checkpoint, config, checkpoint_path))
    state = training_state_dict(checkpoint)

    from mmseg.registry import MODELS
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    model = MODELS.build(cfg.model)
    foreign = sorted({
        type(m).__name__
        for m in model.modules()
        if type(m).__module__.startswith('mmseg_infopro') and (
            type(model).__name__ != CLASSIFIER or
            _is_training_only(type(m).__name__))
    })
    if foreign:
        raise ExportError(f'the exported model still uses {foreign} of '
                          'mmseg_infopro: cannot export it for plain mmseg')
    exported, dropped = plain_state_dict(state, model)
    model.load_state_dict(exported, strict=True)

    if osp.dirname(out):
        os.makedirs(osp.dirname(out), exist_ok=True)
    torch.save(dict(meta=_export_meta(checkpoint, checkpoint_path, cfg),
                    state_dict=exported), out)
    cfg.dump(out_cfg)
    # the promise: plain torch (and so mmengine under torch >= 2.6) loads it
    reloaded = torch.load(out, map_location='cpu', weights_only=True)
    model.load_state_dict(reloaded['state_dict'], strict=True)
    return dict(checkpoint=out, config=out_cfg, dropped=dropped,
                exported=list(exported))


def _export_meta(checkpoint: dict, checkpoint_path: str, cfg: Config) -> dict:
    """The exported ``meta``: dataset_meta (the test dataset's classes
    when the checkpoint has none), iteration, versions, the plain config."""
    import mmengine

    import mmseg
    old_meta = checkpoint.get('meta') or {}
    dataset_meta = old_meta.get('dataset_meta')
    if dataset_meta is None:
        from mmseg.registry import DATASETS
        dataset_type = cfg.get('test_dataloader', {}).get('dataset', {}).get(
            'type', 'CityscapesDataset')
        dataset_meta = dict(DATASETS.get(dataset_type).METAINFO)
        warnings.warn(f"{checkpoint_path} has no meta['dataset_meta']; using "
                      f"{dataset_type}'s classes and palette")
    return _plain_value(
        dict(
            dataset_meta=dataset_meta,
            iter=old_meta.get('iter'),
            epoch=old_meta.get('epoch'),
            experiment_name=old_meta.get('experiment_name'),
            exported_from=osp.abspath(checkpoint_path),
            mmseg_version=mmseg.__version__,
            mmengine_version=mmengine.__version__,
            cfg=cfg.pretty_text))
