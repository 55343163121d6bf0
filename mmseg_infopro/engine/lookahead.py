"""Auxiliary networks made of copies of the layers that follow a cut.

A local module's loss judges its output by what a small head can read from
it. Two published remedies give that head the depth of the network that
follows, built from copies of the backbone's own later units (through the
backbone contract only, so any cut-able family works):

* ``'auglocal'`` (AugLocal, Ma et al., ICLR 2024): ``depth`` units sampled
  uniformly from all the units after the module (the last one always the
  backbone's last), fresh weights, trained by the local loss; later
  modules get shallower nets (``depth`` shrinks linearly to about half
  over the modules, at least 1).
* ``'man'`` (MAN, Su et al., ECCV 2024; MAN++'s mixing): the next module's
  first unit twice: a copy whose weights follow the live unit as an
  exponential moving average (no gradient) and a trainable copy, mixed as
  ``s * trainable(x) + (2 - s) * ema(x)`` with a learnable scalar ``s``
  (1 at first).

Copies chain without new layers: every unit between two chosen ones that
changes the width (a stage transition: ResNet's first block, MiT's patch
embedding, Swin's patch merging) is copied too. The copies live in the
local head (``local_heads.*``): trained by their module's loss only, dropped
at export.
"""
import copy
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from torch import Tensor

LOOKAHEADS = ('auglocal', 'man')


def _placeholder(part):
    # a bare parameter (Swin's absolute position embedding) becomes an
    # unset one, a sub-module an empty one
    return None if isinstance(part, nn.Parameter) else nn.Module()


def _tensors(part) -> List[Tensor]:
    if isinstance(part, nn.Parameter):
        return [part]
    return list(part.parameters()) + list(part.buffers())


def _params_to_buffers(parts) -> List[Tuple[nn.Module, str]]:
    """Turn every parameter of ``parts`` into a buffer of the same name;
    returns ``(owner, name)`` in ``parts``' parameter order."""
    out = []
    for part in parts:
        if isinstance(part, nn.Parameter):
            raise TypeError('a bare parameter cannot be averaged')
        for full, _ in list(part.named_parameters()):
            *path, name = full.split('.')
            owner = part.get_submodule('.'.join(path)) if path else part
            param = owner._parameters.pop(name)
            owner.register_buffer(name, param.detach())
            out.append((owner, name))
    return out


def copy_units(backbone, units: Sequence) -> nn.Module:
    """A copy of ``backbone`` holding the weights of ``units`` only (every
    other unit's parts and the output parts are empty placeholders), with
    no checkpointing; run a unit with ``copy.forward_unit(unit, x, {})``."""
    keep = set(units)
    memo = {}
    for unit in backbone.units():
        if unit not in keep:
            for part in backbone.unit_parts(unit):
                memo[id(part)] = _placeholder(part)
    for part in backbone.output_parts():
        memo[id(part)] = _placeholder(part)
    # tensors are cloned, not deep-copied: a deep copy of a fake tensor
    # lands in another FakeTensorMode (the memory tools build under one)
    dropped = {id(t) for unit in backbone.units() if unit not in keep
               for part in backbone.unit_parts(unit)
               for t in _tensors(part)}
    dropped |= {id(t) for part in backbone.output_parts()
                for t in _tensors(part)}
    for t in _tensors(backbone):
        if id(t) not in dropped and id(t) not in memo:
            memo[id(t)] = nn.Parameter(
                t.detach().clone(), requires_grad=t.requires_grad) \
                if isinstance(t, nn.Parameter) else t.detach().clone()
    clone = copy.deepcopy(backbone, memo)
    clone.checkpoint_blocks = []
    clone.selective_checkpoint_blocks = []
    clone.init_cfg = None
    clone.is_init = True  # mmengine's init_weights leaves it as built
    return clone


def chain(backbone, after, picks: Sequence) -> List:
    """``picks`` (units in network order, after unit ``after``) plus every
    width-changing unit between ``after`` and the last pick, so that each
    unit of the result takes the width the previous one gives (the first
    one: ``after``'s)."""
    units = backbone.units()
    first, last = units.index(after) + 1, units.index(picks[-1])
    picked = set(picks)
    out = []
    for i in range(first, last + 1):
        unit = units[i]
        width_in = backbone.unit_out_channels(units[i - 1])
        if unit in picked or backbone.unit_out_channels(unit) != width_in:
            out.append(unit)
    return out


def auglocal_depth(depth: int, k: int, num_modules: int,
                   coeff: float = 0.5) -> int:
    """AugLocal's pyramidal depth of module ``k``'s net: ``depth`` for the
    first module, decreasing linearly (``coeff`` of the way to 1) to the
    last local module; at least 1."""
    locals_ = num_modules - 1
    if locals_ <= 1:
        return depth
    step = k * coeff / (locals_ - 1)
    return max(1, int(round(depth * (1 - step) + step)))


def auglocal_units(backbone, after, depth: int) -> List:
    """The ``depth`` units sampled uniformly after unit ``after``
    (positions ``round(j + (n - j - 1) / depth * i)``, i = 1..depth, of the
    ``n`` units, ``j`` that of ``after``)."""
    units = backbone.units()
    j = units.index(after)
    n = len(units)
    if depth >= n - 1 - j:
        return units[j + 1:]
    picks = sorted({int(round(j + (n - j - 1) / depth * i))
                    for i in range(1, depth + 1)})
    return [units[p] for p in picks]


def check_spec(type: Optional[str] = 'auglocal', depth: int = 2,
               momentum: float = 0.995, checkpoint: bool = True) -> dict:
    """A lookahead spec (``local_heads=dict(lookahead=...)``), checked;
    ``type=None`` means no lookahead (a dict, so that a config can still
    set ``lookahead.type`` on top of it)."""
    if type is not None and type not in LOOKAHEADS:
        raise ValueError(f'lookahead type must be one of {LOOKAHEADS}, '
                         f"'auto' (the model's choice) or None, got "
                         f'{type!r}')
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise ValueError(f'lookahead depth must be an int >= 1, got '
                         f'{depth!r}')
    if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) \
            or not 0.0 <= float(momentum) < 1.0:
        raise ValueError(f'lookahead momentum must be in [0, 1), got '
                         f'{momentum!r}')
    if not isinstance(checkpoint, bool):
        raise ValueError(f'lookahead checkpoint must be True or False, got '
                         f'{checkpoint!r}')
    return dict(type=type, depth=depth, momentum=float(momentum),
                checkpoint=checkpoint)


def lookahead_units(backbone, after, type: str = 'auglocal',
                    depth: int = 2) -> List:
    """The units copied for a module that ends at unit ``after`` (its
    AugLocal ``depth`` already the module's): MAN's next unit, or
    AugLocal's sample; with the width-changing units between
    (:func:`chain`)."""
    if type == 'auglocal':
        picks = auglocal_units(backbone, after, depth)
    else:
        units = backbone.units()
        picks = [units[units.index(after) + 1]]
    return chain(backbone, after, picks)


def build_lookahead(backbone, k: int, num_modules: int, **spec
                    ) -> Optional['Lookahead']:
    """The lookahead of local module ``k`` of K=``num_modules`` from a
    spec (AugLocal's depth shrinks with ``k``, :func:`auglocal_depth`);
    None for ``type=None``."""
    spec = check_spec(**spec)
    if spec['type'] is None:
        return None
    if not 0 <= k < num_modules - 1:
        raise ValueError(f'lookahead: module {k} is not a local module '
                         f'of K={num_modules}')
    depth = auglocal_depth(spec['depth'], k, num_modules)
    units = lookahead_units(backbone, backbone.module_units(k)[-1],
                            spec['type'], depth)
    return Lookahead(backbone, units, spec['type'], spec['momentum'],
                     spec['checkpoint'])


class Lookahead(nn.Module):
    """Copies of the backbone units ``units`` (see the module doc), run on
    the output of the module they follow.

    Args:
        backbone: the model's cut-able backbone (read at build time; for
            ``'man'`` the live units are also read at every training
            step).
        units: the units to copy, in network order, chaining
            (:func:`lookahead_units`).
        type: ``'auglocal'`` or ``'man'``.
        momentum: MAN's EMA momentum (the share of the old average).
        checkpoint: recompute each copied unit's forward in backward
            (the backbone contract's full checkpointing): the copies then
            hold little more than their outputs while the local loss is
            back-propagated, at the cost of one more forward of the copies.
            Their BatchNorm statistics then move twice per step (as with
            mmseg's ``with_cp``); they are training-only.
    """

    def __init__(self, backbone, units: Sequence, type: str = 'auglocal',
                 momentum: float = 0.995, checkpoint: bool = True):
        super().__init__()
        spec = check_spec(type=type, momentum=momentum,
                          checkpoint=checkpoint)
        if spec['type'] is None:
            raise ValueError('Lookahead needs a type (auglocal or man)')
        self.type = spec['type']
        self.momentum = spec['momentum']
        self.units = list(units)
        self.out_channels = backbone.unit_out_channels(self.units[-1])
        self.body = copy_units(backbone, self.units)
        ckpt = list(self.units) if checkpoint else []
        self.body.checkpoint_blocks = ckpt
        if type == 'man':
            # the average is state, not parameters: its weights become
            # buffers (saved, moved, broadcast; no gradient, no optimizer)
            self.ema = copy_units(backbone, self.units)
            self.ema.checkpoint_blocks = ckpt
            self._averaged = _params_to_buffers(
                [part for u in self.units for part in self.ema.unit_parts(u)])
            self.mix = nn.Parameter(torch.ones(()))
            # the live units the average follows: not registered (their
            # parameters belong to module k+1)
            live = [p for u in self.units for part in backbone.unit_parts(u)
                    for p in (part.parameters() if isinstance(
                        part, nn.Module) else [part])]
            object.__setattr__(self, '_live', live)
            self.register_buffer('ema_started', torch.zeros((), dtype=torch.bool))

    def _ema_params(self) -> List[Tensor]:
        """The averaged weights, in the order of the live parameters."""
        return [getattr(owner, name) for owner, name in self._averaged]

    @torch.no_grad()
    def update_average(self) -> None:
        """MAN: move the average towards the live next unit (the first
        call copies it)."""
        # momentum 0 on the first call; a tensor, not a Python branch
        # (the memory tools run this on fake tensors)
        m = self.ema_started.float() * self.momentum
        for avg, live in zip(self._ema_params(), self._live):
            m_ = m.to(avg.dtype)
            avg.mul_(m_).add_((1 - m_) * live.detach().to(avg.dtype))
        self.ema_started.fill_(True)

    def forward(self, x: Tensor) -> Tensor:
        y = x
        for unit in self.units:
            y = self.body.forward_unit(unit, y, {})
        if self.type == 'auglocal':
            return y
        if self.training:
            self.update_average()
        z = x
        for unit in self.units:
            z = self.ema.forward_unit(unit, z, {})
        return self.mix * y + (2 - self.mix) * z
