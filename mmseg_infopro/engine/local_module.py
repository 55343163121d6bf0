"""One local module as an nn.Module of its own (what DDP wraps)."""
from typing import List, Union

import torch.nn as nn


class LocalModule(nn.Module):
    """Local module ``k`` of a :class:`~.local_learning.LocalLearningModel`.

    Its ``parts`` (the backbone units of module ``k``, see
    ``CuttableBackbone.module_parts``, and the heads that module ``k``'s
    loss trains) are the model's own sub-modules and parameters,
    registered here again so that ``parameters()`` lists exactly the
    parameters this module trains, e.g. for one
    ``DistributedDataParallel`` per module. Bare parameters (e.g. Swin's
    absolute position embedding) go into ``params``. The model itself
    does not register LocalModules, so its state-dict keys are unchanged.

    ``forward(x, outs, data_samples, targets)`` runs the module and returns
    ``(losses, output)``, see
    :meth:`LocalLearningModel.forward_local_module`.
    """

    def __init__(self, model: nn.Module, index: int,
                 parts: List[Union[nn.Module, nn.Parameter]]):
        super().__init__()
        self.index = index
        self.parts = nn.ModuleList(
            [p for p in parts if isinstance(p, nn.Module)])
        self.params = nn.ParameterList(
            [p for p in parts if isinstance(p, nn.Parameter)])
        # a plain attribute: not a sub-module, no cycle in modules()
        object.__setattr__(self, '_model', model)

    def forward(self, *args, **kwargs):
        return self._model.forward_local_module(self.index, *args,
                                                **kwargs)

    def extra_repr(self) -> str:
        return f'index={self.index}'
