"""The task protocol: what a task model provides to the engine.

A task (segmentation, classification) joins the engine with one model class
whose bases are :class:`~mmseg_infopro.engine.local_learning.
LocalLearningModel` first and the task's stock mmengine model second; that
class implements :class:`LocalLearningTask`. Each member is used by the
training step, the distributed wrapper, the memory hook or the memory tools,
and by nothing else. ``tests/test_layout.py`` checks every task model against
it (``isinstance`` with this runtime-checkable protocol, and that the
methods without a default are the task's own).
"""
from typing import (Any, Dict, List, Optional, Protocol, Sequence, Set, Tuple,
                    runtime_checkable)

import torch.nn as nn
from torch import Tensor


@runtime_checkable
class LocalLearningTask(Protocol):
    """The task half of an InfoPro model (plus mmengine's
    ``data_preprocessor`` and ``parse_losses``).

    A local head is an ``nn.Module`` built from :attr:`local_head_registry`;
    it may set ``needs_image`` (the targets must carry the reconstruction
    image), ``needs_inputs`` (its cost depends on its module's input, e.g.
    it reconstructs the input features) and ``reads_levels`` (it reads its
    module's levels: the stage outputs the final heads read that end in the
    module, then its output). A module whose stages the final heads read
    builds its head with ``level_channels`` (the levels' widths).
    """

    #: a cut-able backbone (engine/backbone_contract.py): its
    #: ``split_points`` define the K modules
    backbone: nn.Module
    #: the registry the local head configs are built from
    local_head_registry: Any
    #: ``(H, W)`` the memory tools use when the config names no size
    default_input_size: Tuple[int, int]

    def local_head_defaults(self) -> dict:
        """Config values every local head gets unless its config sets them
        (e.g. ``num_classes``)."""

    def local_targets(self, inputs: Tensor, data_samples,
                      heads: Optional[Sequence[nn.Module]] = None) -> Any:
        """What the local heads ``heads`` need besides the features, from
        the preprocessed batch (any object; the step passes it on)."""

    def local_loss(self, head: nn.Module, feat: Tensor, targets: Any,
                   inputs: Optional[Tensor],
                   levels: Optional[List[Tensor]] = None) -> dict:
        """The loss dict of one local head on its module's output ``feat``
        (NCHW); ``inputs`` is the module's detached input, ``levels`` its
        levels for a head that reads them (else None). Default
        (``LocalLearningModel``): ``head.loss(feat, *targets,
        inputs=inputs[, levels=levels])``."""

    def final_heads(self) -> List[nn.Module]:
        """The heads the final loss trains (they join the last module)."""

    def final_losses(self, feats, data_samples) -> dict:
        """The task losses on the backbone's outputs (what the stock
        model's ``loss`` computes after its backbone)."""

    def used_out_indices(self) -> Optional[Set[int]]:
        """The backbone stages (``out_indices`` values) the final heads
        read; None: all. Earlier modules' outputs are kept (detached) only
        for these."""

    def stage_channels(self) -> Dict[int, int]:
        """``{stage: channels}`` of the stage outputs the final heads read,
        from their configs. Default (``LocalLearningModel``): ``{}``, no
        early stage is read."""

    def default_lookahead(self, cfg: dict, has_levels: bool
                          ) -> Optional[dict]:
        """The lookahead spec a module gets for ``lookahead=dict(type=
        'auto')`` (the segmentation heads' default), given its local head
        config and whether it hands stage outputs to the final heads.
        Default (``LocalLearningModel``): None, no lookahead."""

    def example_batch(self, batch: int, size: Tuple[int, int],
                      seed: int = 0) -> dict:
        """A fabricated dataloader batch of ``batch`` images of ``size``
        ``(H, W)`` (fake tensors under FakeTensorMode), for the memory
        tools."""


#: the protocol's methods a task model must define itself (the others have
#: defaults in ``LocalLearningModel``)
REQUIRED_METHODS = ('local_head_defaults', 'local_targets', 'final_heads',
                    'final_losses', 'used_out_indices', 'example_batch')
