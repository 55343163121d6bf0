"""One local module as an nn.Module of its own (what DDP wraps)."""
from typing import List

import torch.nn as nn


class LocalModule(nn.Module):
    """Local module ``k`` of an :class:`InfoProEncoderDecoder`.

    Its ``parts`` (stem/blocks of the backbone and the heads that module
    ``k``'s loss trains) are the segmentor's own sub-modules, registered here
    again so that ``parameters()`` lists exactly the parameters this module
    trains, e.g. for one ``DistributedDataParallel`` per module. The
    segmentor itself does not register LocalModules, so its state-dict keys
    are unchanged.

    ``forward(x, outs, data_samples, gt, image, mask)`` runs the module and
    returns ``(losses, output)``, see
    :meth:`InfoProEncoderDecoder.forward_local_module`.
    """

    def __init__(self, segmentor: nn.Module, index: int,
                 parts: List[nn.Module]):
        super().__init__()
        self.index = index
        self.parts = nn.ModuleList(parts)
        # a plain attribute: not a sub-module, no cycle in modules()
        object.__setattr__(self, '_segmentor', segmentor)

    def forward(self, *args, **kwargs):
        return self._segmentor.forward_local_module(self.index, *args,
                                                    **kwargs)

    def extra_repr(self) -> str:
        return f'index={self.index}'
