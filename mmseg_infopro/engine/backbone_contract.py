"""The cut-able backbone contract: what InfoPro needs from a backbone.

Everything that is not a backbone (the segmentor, the distributed wrapper,
the memory hook, the planner, the benchmark, the exporter) talks to a
backbone only through :class:`CuttableBackbone`. A new backbone family is
one file: a subclass of this mixin and of mmseg's own backbone class that
implements the five ``_``-prefixed family methods below.

Units
    The backbone is an ordered list of *units*: an optional ``'stem'``
    (what runs before the first block: ResNet's stem and max-pool, Swin's
    patch embedding) then one unit per block, named ``(stage, block)``,
    ``stage`` 1-based, ``block`` 0-based. A block unit may carry what sits
    between blocks (MiT: stage ``i``'s patch embedding goes with block
    ``(i, 0)``, its norm with the stage's last block; Swin: the patch
    merging goes with the stage's last block).
State
    Between units, and so across every cut, the state is one NCHW tensor
    ``(N, C, H, W)``. Token-based families convert tokens ``(N, H*W, C)``
    to NCHW and back as views (no copy), so a local head always receives a
    map and a detached cut is one ``tensor.detach()``.
Cuts
    ``split_points=[(stage, block), ...]`` cuts *before* those blocks
    (strictly increasing, never before the first block): K = cuts + 1 local
    modules. Module 0 is the stem plus the blocks before the first cut.
Outputs
    A unit that ends a stage listed in ``out_indices`` also returns that
    stage's *raw* output (NCHW). :meth:`format_outputs` turns the raw
    outputs into exactly what the stock ``forward`` returns; it runs in the
    last module, whose parts include :meth:`output_parts` (Swin's output
    norms, which only the final heads read: in an earlier module they would
    never be trained: docs/backbones.md, "Rules every family keeps").
Parts
    :meth:`module_parts` lists the sub-modules (and bare parameters, e.g.
    Swin's absolute position embedding) whose parameters module ``k`` owns;
    over all modules they partition the backbone's parameters.
Checkpointing
    ``checkpoint_blocks=[(stage, block) or 'stem', ...]`` recomputes those
    units' forward in backward (``torch.utils.checkpoint``, non-reentrant,
    so also at a module's detached input, where mmseg's own ``with_cp``
    silently does nothing: its blocks checkpoint only ``if x.requires_grad``).
    ``selective_checkpoint_blocks`` recomputes only the cheap operations of
    those units (PyTorch's selective checkpointing: the outputs of
    convolutions and matrix products are kept, normalisation, activation,
    softmax, dropout and the like are recomputed: almost no FLOPs). Training
    only: inference and exported checkpoints do not see either.

State-dict keys and the plain :meth:`forward` stay the stock class's.
"""
import functools
import numbers
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from torch import Tensor
from torch.utils.checkpoint import (CheckpointPolicy, checkpoint,
                                    create_selective_checkpoint_contexts)

Unit = Union[str, Tuple[int, int]]
SplitPoint = Tuple[int, int]

#: ``{stock mmseg type name: InfoPro type name}`` of every registered family
INFOPRO_TWINS: Dict[str, str] = {}


def cuttable_hint(type_name: str) -> str:
    """What to use instead of a backbone type that is not cut-able: its
    InfoPro twin, or the list of cut-able backbones."""
    twin = INFOPRO_TWINS.get(str(type_name).split('.')[-1])
    if twin:
        return f"use backbone=dict(type='{twin}', split_points=[...])"
    return 'cut-able backbones: ' + ', '.join(sorted(INFOPRO_TWINS.values()))


def _as_list(value):
    """Lists, tuples and numpy arrays/scalars as plain Python lists/ints."""
    if hasattr(value, 'tolist'):
        value = value.tolist()
    return value


def is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def normalize_blocks(points, stage_blocks: Sequence[int],
                     where: str = 'split_points',
                     first_allowed: bool = False,
                     stem: bool = False) -> List[Unit]:
    """Check a list of ``(stage, block)`` pairs against ``stage_blocks``.

    Args:
        points: a sequence of ``(stage, block)`` pairs, ``stage`` in
            ``1..len(stage_blocks)``, ``block`` 0-based; numpy integers and
            arrays are accepted.
        stage_blocks: number of blocks of each stage, e.g. ``(3, 4, 23, 3)``.
        where: the argument's name, for the error messages.
        first_allowed: whether ``(1, 0)`` may appear (a checkpointed block
            may; a cut before the very first block may not).
        stem: whether ``'stem'`` may appear (first), for backbones with a
            stem unit.

    Returns:
        The pairs as a list of ``(int, int)`` tuples, strictly increasing.

    Raises:
        ValueError / TypeError naming the bad value and the allowed range.
    """
    if points is None:
        return []
    if isinstance(points, str) and points == 'auto':
        raise ValueError(
            f"{where}='auto' is not resolved when the model is built: the "
            'balanced cuts depend on the batch and crop size. Plan them '
            'with `python tools/plan_splits.py CONFIG --num-modules K '
            '--write PLANNED_CONFIG.py` and train with the written config')
    points = _as_list(points)
    if isinstance(points, (str, bytes)) or not isinstance(points, Sequence):
        raise TypeError(f'{where} must be a list of (stage, block) pairs, '
                        f'got {points!r}')
    num_stages = len(stage_blocks)
    total = sum(stage_blocks)
    limit = total + int(stem) if first_allowed else total - 1
    if len(points) > limit:
        raise ValueError(
            f'{where} has {len(points)} entries, but this backbone has '
            f'{total} blocks, so at most {limit} are possible' +
            ('' if first_allowed else
             f' (K <= {total} local modules)'))
    out = []
    for point in points:
        point = _as_list(point)
        if point == 'stem' and stem:
            if out:
                raise ValueError(f"{where}: 'stem' must come first, got "
                                 f'{points!r}')
            out.append('stem')
            continue
        if (isinstance(point, (str, bytes)) or
                not isinstance(point, Sequence) or len(point) != 2 or
                not all(is_int(v) for v in point)):
            raise TypeError(f'{where}: each entry must be a (stage, block) '
                            'pair of ints' + (" or 'stem'" if stem else '') +
                            f', got {point!r}')
        stage, block = (int(v) for v in point)
        if not 1 <= stage <= num_stages:
            raise ValueError(
                f'{where}: {(stage, block)} has stage {stage}, allowed '
                f'range is 1..{num_stages}')
        if not 0 <= block < stage_blocks[stage - 1]:
            raise ValueError(
                f'{where}: {(stage, block)} has block {block}, stage '
                f'{stage} has blocks 0..{stage_blocks[stage - 1] - 1}')
        if (stage, block) == (1, 0) and not first_allowed:
            first = (1, 1) if stage_blocks[0] > 1 else (2, 0)
            raise ValueError(
                f'{where}: cut (1, 0) is before the very first block, which '
                'would leave a local module without a block; the first '
                f'allowed cut is {first}')
        out.append((stage, block))
    for prev, cur in zip(out, out[1:]):
        if prev == 'stem':
            continue
        if cur == prev:
            raise ValueError(f'{where}: duplicate entry {cur} in {out}')
        if cur < prev:
            raise ValueError(f'{where} must be sorted in network order, but '
                             f'{cur} comes after {prev} in {out}')
    return out


def normalize_split_points(split_points, stage_blocks: Sequence[int],
                           where: str = 'split_points') -> List[SplitPoint]:
    """:func:`normalize_blocks` for cuts (never before ``(1, 0)``)."""
    return normalize_blocks(split_points, stage_blocks, where)


#: operations whose outputs selective checkpointing keeps (the expensive
#: ones); everything else is recomputed in backward
SAVED_OPS = frozenset(
    getattr(torch.ops.aten, name).default
    for name in ('convolution', 'mm', 'addmm', 'bmm', 'baddbmm',
                 '_scaled_dot_product_flash_attention',
                 '_scaled_dot_product_efficient_attention',
                 '_scaled_dot_product_cudnn_attention')
    if hasattr(torch.ops.aten, name))


def _keep_expensive(ctx, op, *args, **kwargs):
    return CheckpointPolicy.MUST_SAVE if op in SAVED_OPS \
        else CheckpointPolicy.PREFER_RECOMPUTE


def selective_checkpoint(fn, *args):
    """``fn(*args)`` under selective checkpointing: outputs of
    convolutions and matrix products saved, the rest recomputed in
    backward (non-reentrant)."""
    return checkpoint(
        fn, *args, use_reentrant=False,
        context_fn=functools.partial(create_selective_checkpoint_contexts,
                                     _keep_expensive))


class CuttableBackbone:
    """Mixin that makes an mmseg backbone cut-able into local modules.

    Put it first in the bases: ``class InfoProX(CuttableBackbone, X)``,
    with ``plain_type = 'X'`` (the stock type, used by the exporter and in
    error messages). A family implements:

    * ``_stage_depths()``: blocks per stage;
    * ``_has_stem()``: whether a ``'stem'`` unit precedes block ``(1, 0)``;
    * ``_unit_parts(unit)``: the sub-modules / parameters the unit owns;
    * ``_run_unit(unit, x)``: NCHW in, ``(NCHW out, raw stage output or
      None)``;
    * ``_unit_out_channels(unit)``: channels of the unit's output;

    and, if the stock outputs are more than the raw stage outputs,
    :meth:`output_parts` and :meth:`format_outputs`.

    Args:
        split_points (list[tuple[int, int]]): cuts, see the module doc;
            ``[]`` (default) is K=1, i.e. end-to-end.
        checkpoint_blocks (list): units (``(stage, block)`` or ``'stem'``)
            whose forward is recomputed in backward during training
            (default none).
        selective_checkpoint_blocks (list): units whose cheap operations
            are recomputed (see the module doc); disjoint from
            ``checkpoint_blocks``.
        **kwargs: the stock backbone's arguments.
    """

    plain_type: Optional[str] = None
    #: whether a stage's raw output is the output of its last unit (ResNet,
    #: MiT); False where more follows inside that unit (Swin's patch
    #: merging), so that the unit passes on another tensor
    stage_output_is_unit_output: bool = True

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get('plain_type'):
            INFOPRO_TWINS[cls.plain_type] = cls.__name__

    def __init__(self, split_points=(), checkpoint_blocks=(),
                 selective_checkpoint_blocks=(), **kwargs):
        super().__init__(**kwargs)
        self.cut_in_channels = kwargs.get('in_channels', 3)
        depths = list(self._stage_depths())
        self.split_points = normalize_split_points(split_points, depths)
        self.checkpoint_blocks = normalize_blocks(
            checkpoint_blocks, depths, 'checkpoint_blocks',
            first_allowed=True, stem=self._has_stem())
        self.selective_checkpoint_blocks = normalize_blocks(
            selective_checkpoint_blocks, depths,
            'selective_checkpoint_blocks', first_allowed=True,
            stem=self._has_stem())
        both = set(self.checkpoint_blocks) & set(
            self.selective_checkpoint_blocks)
        if both:
            raise ValueError(
                f'units {sorted(both, key=str)} are in both '
                'checkpoint_blocks and selective_checkpoint_blocks: give '
                'each unit one checkpointing mode')

    # ------------------------------------------------- family interface
    def _stage_depths(self) -> Sequence[int]:
        raise NotImplementedError

    def _has_stem(self) -> bool:
        raise NotImplementedError

    def _unit_parts(self, unit: Unit) -> List[Union[nn.Module,
                                                    nn.Parameter]]:
        raise NotImplementedError

    def _run_unit(self, unit: Unit, x: Tensor
                  ) -> Tuple[Tensor, Optional[Tensor]]:
        raise NotImplementedError

    def _unit_out_channels(self, unit: Unit) -> int:
        raise NotImplementedError

    def output_parts(self) -> List[nn.Module]:
        """Sub-modules :meth:`format_outputs` uses (owned by the last
        module). Default: none."""
        return []

    def format_outputs(self, outs: Dict[int, Tensor]) -> tuple:
        """The stock ``forward``'s outputs from the raw stage outputs
        ``{stage index (0-based, as out_indices): NCHW}``; a missing entry
        (an output no final head reads) gives None."""
        return tuple(outs.get(i) for i in self.out_indices)

    # ------------------------------------------------------------ units
    def units(self) -> List[Unit]:
        """Every unit in network order: ``['stem', (1, 0), (1, 1), ...]``
        (no ``'stem'`` for families without one)."""
        blocks = [(s + 1, b) for s, n in enumerate(self._stage_depths())
                  for b in range(n)]
        return (['stem'] if self._has_stem() else []) + blocks

    def unit_parts(self, unit: Unit) -> List[Union[nn.Module, nn.Parameter]]:
        """Sub-modules / parameters the unit owns."""
        return self._unit_parts(self._check_unit(unit))

    def unit_out_channels(self, unit: Unit) -> int:
        return self._unit_out_channels(self._check_unit(unit))

    def unit_stage(self, unit: Unit) -> int:
        """1-based stage of a unit (0 for the stem)."""
        return 0 if unit == 'stem' else unit[0]

    def unit_checkpointing(self, unit: Unit) -> Optional[str]:
        """``'full'``, ``'selective'`` or None: how the unit is
        checkpointed in training."""
        if unit in self.checkpoint_blocks:
            return 'full'
        if unit in self.selective_checkpoint_blocks:
            return 'selective'
        return None

    def forward_unit(self, unit: Unit, x: Tensor,
                     outs: Dict[int, Tensor]) -> Tensor:
        """Run one unit on the NCHW state ``x``; a raw stage output goes
        into ``outs`` (keyed by the 0-based stage index)."""
        mode = self.unit_checkpointing(unit) \
            if self.training and torch.is_grad_enabled() else None
        if mode == 'full':
            out, raw = checkpoint(self._run_unit, unit, x,
                                  use_reentrant=False)
        elif mode == 'selective':
            out, raw = selective_checkpoint(self._run_unit, unit, x)
        else:
            out, raw = self._run_unit(unit, x)
        if raw is not None:
            outs[self.unit_stage(unit) - 1] = raw
        return out

    def _check_unit(self, unit):
        if unit != 'stem':
            unit = tuple(unit)
        if unit not in self.units():
            raise ValueError(f'{unit!r} is not a unit of this '
                             f'{type(self).__name__}: units are '
                             f'{self.units()[0]!r} .. {self.units()[-1]!r}')
        return unit

    # -------------------------------------------------------- partition
    @property
    def num_modules(self) -> int:
        return len(self.split_points) + 1

    def module_units(self, k: int) -> List[Unit]:
        """The units module ``k`` (0-based) runs, in order."""
        if not 0 <= k < self.num_modules:
            raise IndexError(f'local module {k} out of range '
                             f'0..{self.num_modules - 1}')
        units = self.units()
        bounds = [0] + [units.index(p) for p in self.split_points
                        ] + [len(units)]
        return units[bounds[k]:bounds[k + 1]]

    def module_parts(self, k: int) -> List[Union[nn.Module, nn.Parameter]]:
        """Sub-modules and parameters whose parameters module ``k`` owns
        (the last module also owns :meth:`output_parts`)."""
        parts = [p for u in self.module_units(k) for p in self._unit_parts(u)]
        if k == self.num_modules - 1:
            parts += self.output_parts()
        return parts

    def module_in_channels(self, k: int) -> int:
        """Channels of module ``k``'s input (the image's for k=0)."""
        if k == 0:
            return self.cut_in_channels
        return self._unit_out_channels(self.module_units(k - 1)[-1])

    def module_out_channels(self, k: int) -> int:
        """Channels of module ``k``'s output (what its local head sees)."""
        return self._unit_out_channels(self.module_units(k)[-1])

    def module_read_stages(self, k: int,
                           used: Optional[set] = None) -> List[int]:
        """0-based indices (as ``out_indices``) of the stages in
        ``out_indices`` (and in ``used``, when given) whose raw output module
        ``k`` produces: the stages that end inside it."""
        depths = list(self._stage_depths())
        out_indices = getattr(self, 'out_indices', ())
        stages = []
        for unit in self.module_units(k):
            if unit == 'stem':
                continue
            stage, block = unit
            index = stage - 1
            if block == depths[index] - 1 and index in out_indices and (
                    used is None or index in used):
                stages.append(index)
        return stages

    def module_output_is_stage_output(self, k: int) -> bool:
        """Whether module ``k``'s output is itself the raw output of a stage
        in ``out_indices`` (the module ends a stage, and the family passes
        that output on unchanged)."""
        unit = self.module_units(k)[-1]
        if unit == 'stem' or not self.stage_output_is_unit_output:
            return False
        stage, block = unit
        return block == list(self._stage_depths())[stage - 1] - 1 and \
            stage - 1 in getattr(self, 'out_indices', ())

    def module_out_name(self, k: int) -> str:
        unit = self.module_units(k)[-1]
        return unit if unit == 'stem' else f'stage{unit[0]}[{unit[1]}]'

    def forward_module(self, k: int, x: Tensor,
                       outs: Dict[int, Tensor]) -> Tensor:
        """Run module ``k``.

        Args:
            k: module index, 0..K-1. Module 0 takes the image batch
                (N, 3, H, W); module k > 0 takes module k-1's output.
            x: the NCHW input.
            outs: filled in place with the raw outputs of the stages in
                ``out_indices`` that end inside this module.

        Returns:
            The module's NCHW output.
        """
        for unit in self.module_units(k):
            x = self.forward_unit(unit, x, outs)
        return x

    # ------------------------------------------------------------ init
    def init_weights(self):
        """The stock init; a pretrained checkpoint that cannot be fetched
        or read (offline machine, wrong path) fails with the remedy."""
        init_cfg = self.init_cfg if isinstance(self.init_cfg, dict) else {}
        source = init_cfg.get('checkpoint') \
            if init_cfg.get('type') == 'Pretrained' else None
        if source is None:
            return super().init_weights()
        try:
            return super().init_weights()
        except (OSError, ConnectionError, RuntimeError, ValueError) as err:
            raise RuntimeError(
                f'could not load the pretrained backbone weights {source!r}: '
                f'{type(err).__name__}: {err}. If this machine is offline, '
                'download the file elsewhere and pass its local path '
                '(--cfg-options model.backbone.init_cfg.checkpoint=PATH, or '
                'model.pretrained=PATH where the config uses `pretrained`), '
                'or train from scratch with --cfg-options '
                'model.pretrained=None model.backbone.init_cfg=None'
            ) from err
