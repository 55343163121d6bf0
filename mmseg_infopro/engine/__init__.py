"""The task-agnostic InfoPro engine.

* :mod:`.local_learning`: :class:`LocalLearningModel`, the protocol a task
  model implements and the K-module training step built on it;
* :mod:`.local_module`: :class:`LocalModule`, one module as an nn.Module;
* :mod:`.optim_contract`: what the step needs from mmengine's optimizer
  wrapper, and how a local loss is back-propagated;
* :mod:`.distributed`: :class:`InfoProDistributedDataParallel` (one DDP per
  local module);
* :mod:`.backbone_contract` and :mod:`.task_protocol`: what the engine
  needs from a backbone and from a task model;
* :mod:`.lookahead`: auxiliary nets of copied later units (AugLocal, MAN);
* :mod:`.hooks`: ``RNGStateHook``.

Nothing here imports a task (segmentation, classification); hooks and the
wrapper are registered in mmengine's root registries, so configs of any
OpenMMLab scope find them.
"""
from .distributed import BufferSyncedModule, InfoProDistributedDataParallel
from .hooks import RNGStateHook
from .local_learning import (WRAPPER_HINT, LocalLearningModel,
                             find_local_learning_model)
from .local_module import LocalModule
from .optim_contract import RELIED_ON, backward_local, check_optim_wrapper

__all__ = [
    'LocalLearningModel', 'LocalModule', 'find_local_learning_model',
    'check_optim_wrapper', 'backward_local', 'RELIED_ON', 'WRAPPER_HINT',
    'InfoProDistributedDataParallel', 'BufferSyncedModule',
    'RNGStateHook'
]
