"""Building the measured step: the model of one schedule, its optimizer
and a batch, with real tensors or under :func:`fake_mode` (FakeTensorMode:
shapes, dtypes and storage sizes, no memory, no arithmetic)."""
import contextlib
import copy
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm

from ..compat import RealLinspace, mmseg_accuracy_without_masks
from .schedules import config_optim_wrapper, config_scope, schedule_model_cfg


def build_model(model_cfg, device: str = 'cpu', seed: int = 0,
                scope: str = 'mmseg') -> nn.Module:
    """Build the model in train mode on ``device`` from ``scope``'s
    registry (under :func:`fake_mode` its tensors are fake)."""
    from mmengine.registry import MODELS
    torch.manual_seed(seed)
    ctx = RealLinspace() if _in_fake_mode() else contextlib.nullcontext()
    with ctx, MODELS.switch_scope_and_registry(scope) as registry:
        model = registry.build(copy.deepcopy(model_cfg))
    # SyncBN needs a process group and GPU inputs; BN holds the same memory
    model = revert_sync_batchnorm(model)
    if device != 'cpu':
        model.to(device)
    model.train()
    return model


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


def _in_fake_mode() -> bool:
    from torch._guards import active_fake_mode
    return active_fake_mode() is not None


@contextlib.contextmanager
def fake_mode():
    """``FakeTensorMode`` for a whole benchmark run: models, batches and
    steps created inside hold fake tensors (shapes, dtypes, storages with
    sizes, no memory); mmseg's ``accuracy`` log metric is swapped for one
    FakeTensorMode accepts (:func:`mmseg_infopro.compat.
    mmseg_accuracy_without_masks`)."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    with mmseg_accuracy_without_masks(), FakeTensorMode():
        yield
