"""A measured memory and FLOP model of one training step, unit by unit.

:func:`measure_profile` measures, with MemTracker (real or fake tensors;
nothing is estimated from shapes) and FlopCounterMode, what every unit of a
cut-able backbone (``CuttableBackbone.units()``: the stem, if any, and
every block) holds and costs, in each checkpointing mode (none,
``'selective'``, ``'full'``), plus the local head on every distinct cut
shape, the final heads, the data and the optimizer step.
:meth:`MemoryProfile.predict` adds these up into the peak of every local
module and the FLOPs of the step for any *plan*: cuts plus a checkpointing
mode per unit.

A module made of units ``s..e-1`` starts from ``base(s)`` = data +
parameters, buffers and optimizer states of the whole model (local heads
included) + gradients of the earlier modules and of their local heads (kept
until the optimizer step) + its input and the stage outputs the final heads
will read (both detached, kept from earlier modules). With ``act'``,
``fwd'``, ``bwd'`` the figures of each unit in its checkpointing mode, the
module's peak is the largest of:

* forward, in unit b: ``base + act'(s..b-1) + fwd'(b)``;
* its loss: ``base + act'(s..e-1) + head_peak`` (the local head on the
  module's output, or the decode and auxiliary heads for the last module,
  measured with the stage outputs that reach them detached as such; the
  head's own gradients included);
* backward, in unit b (later units' activations are freed, their parameter
  gradients exist): ``base + act'(s..b) + grads(b+1..e-1) + head gradients
  + bwd'(b)`` (without an input gradient for the module's first unit);
* last module only, the optimizer step: every gradient + the step's
  temporaries.

A checkpointed unit keeps (``act'``) only its output and what its mode saves
(selective: the outputs of convolutions and matrix products), and its
backward (``bwd'``) recomputes its forward first: both are measured, as is
the recomputation's FLOPs.
"""
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence, Set, Tuple

Unit = object  # 'stem' or (stage, block)
#: checkpointing modes of a unit, beside None (no checkpointing)
MODES = ('selective', 'full')


# ----------------------------------------------------------------- figures
@dataclass
class ModeCost:
    """One unit in one checkpointing mode (bytes, FLOPs).

    ``act``: kept after its forward (saved tensors and output);
    ``fwd_peak``: peak during its forward above the level before;
    ``bwd_peak`` / ``bwd_peak_detached``: peak during its backward above the
    level after its forward, the incoming gradient (and any recomputation)
    included, with / without computing its input's gradient;
    ``flops_bwd`` / ``flops_bwd_detached``: FLOPs of that backward
    (recomputation included)."""
    act: int
    fwd_peak: int
    bwd_peak: int
    bwd_peak_detached: int
    flops_bwd: int
    flops_bwd_detached: int


@dataclass
class UnitCost:
    """Measured figures of one unit.

    ``modes``: ``{None | 'selective' | 'full': ModeCost}``; ``out``: bytes
    of its output; ``raw_stage`` / ``raw_out``: the 0-based stage whose raw
    output it produces (None if none) and that output's bytes when it is a
    tensor of its own (0 when it is the unit's output, as for ResNet and
    MiT; Swin's pre-merge output is separate); ``params`` / ``buffers`` /
    ``opt``: bytes of its trainable parameters, buffers and optimizer
    states; ``head_key``: the shape of its output (``'CxHxW'``), i.e. which
    local head a cut after it needs; ``flops_fwd``: FLOPs of its forward;
    ``raw_key``: the shape of its raw stage output (a head-aware local
    head's cost depends on it)."""
    name: Unit
    modes: Dict[Optional[str], ModeCost]
    out: int
    raw_stage: Optional[int]
    raw_out: int
    params: int
    buffers: int
    opt: int
    head_key: str
    flops_fwd: int
    raw_key: Optional[str] = None  # the raw output's shape, if any

    def mode(self, mode: Optional[str]) -> ModeCost:
        return self.modes[mode]


@dataclass
class HeadCost:
    """A head's forward + loss + backward: peak above the level before
    (the gradients of its input and parameters included), FLOPs, and its
    parameters / buffers / optimizer states (bytes)."""
    peak: int
    flops: int
    params: int
    buffers: int
    opt: int

    @property
    def state(self) -> int:
        return self.params + self.buffers + self.opt


@dataclass
class Plan:
    """What to train: cuts (split points) and a checkpointing mode per
    unit (units not listed are not checkpointed)."""
    cuts: List[Tuple[int, int]] = field(default_factory=list)
    modes: Dict[Unit, str] = field(default_factory=dict)

    @property
    def num_modules(self) -> int:
        return len(self.cuts) + 1

    def checkpoint(self) -> dict:
        """``dict(full=[units], selective=[units])`` in network order, as
        the backbone's ``checkpoint_blocks`` /
        ``selective_checkpoint_blocks`` take them."""
        def order(u):
            return (0, 0) if u == 'stem' else tuple(u)
        return {mode: sorted((u for u, m in self.modes.items() if m == mode),
                             key=order) for mode in MODES}

    def to_json(self) -> dict:
        ckpt = self.checkpoint()

        def js(u):
            return u if u == 'stem' else list(u)
        return dict(num_modules=self.num_modules,
                    cuts=[list(c) for c in self.cuts],
                    checkpoint_blocks=[js(u) for u in ckpt['full']],
                    selective_checkpoint_blocks=[
                        js(u) for u in ckpt['selective']])


@dataclass
class MemoryProfile:
    """Everything :meth:`predict` needs, measured once per model, batch,
    crop and optimizer.

    A cut before unit ``p`` is the split point ``units[p].name``; allowed
    positions are the block units but the first block (a module needs a
    block)."""
    units: List[UnitCost]
    # by the output's head_key or, when the local head reconstructs its
    # module's input features, by 'INPUT_KEY->OUTPUT_KEY' (INPUT_KEY
    # 'image' for the first module)
    local_heads: Dict[str, HeadCost]
    final_heads: HeadCost             # end to end (no input detached)
    data_e2e: int        # preprocessed batch
    data_local: int      # + labels, reconstruction target and mask (K > 1)
    step_temp: int       # temporaries of the optimizer step
    used_stages: Optional[Set[int]]  # 0-based stages the final heads read
    # peak / FLOPs of the final heads when the outputs of the first j
    # stages they read come detached from earlier modules
    final_peaks_detached: List[int]
    final_flops_detached: List[int]
    optimizer: str = 'SGD'
    head_by_input: bool = False
    # the local heads read their module's levels (head-aware): their cost
    # depends on the read stages inside the module, keyed by
    # :meth:`levels_key`
    head_by_levels: bool = False
    # the local heads hold a lookahead (copies of later units, see
    # engine/lookahead.py): the copied units of a module ending before
    # unit ``e``, by ``e`` (joined names), part of the head's key
    lookahead_keys: Optional[Dict[int, str]] = None
    # ... only for the modules that have levels (lookahead 'auto')
    lookahead_with_levels_only: bool = False

    # ---------------------------------------------------------- indexing
    @property
    def names(self) -> List[Unit]:
        return [u.name for u in self.units]

    def allowed_positions(self) -> List[int]:
        first_block = 1 if self.names[0] == 'stem' else 0
        return list(range(first_block + 1, len(self.units)))

    def position(self, cut: Sequence[int]) -> int:
        """Unit index of a split point ``(stage, block)``."""
        try:
            p = self.names.index(tuple(cut))
        except ValueError:
            raise ValueError(f'cut {tuple(cut)} is not a block of this '
                             f'backbone') from None
        if p not in self.allowed_positions():
            raise ValueError(f'cut {tuple(cut)} is before the first block')
        return p

    def raw_producers(self) -> Dict[int, int]:
        """``{stage (0-based): index of the unit producing its raw output}``
        for the stages in ``out_indices``."""
        return {u.raw_stage: i for i, u in enumerate(self.units)
                if u.raw_stage is not None}

    def head_key(self, p: int) -> str:
        """The local head a cut before unit ``p`` needs."""
        return self.units[p - 1].head_key

    def local_head(self, in_key: str, out_key: str) -> Optional[HeadCost]:
        """The local head of a module whose input / output have these
        head keys (``in_key`` 'image' for the first module). When the heads
        read levels (their cost also depends on where the module starts),
        the largest of the heads that end at ``out_key``: a bound, used by
        the cut search for the heads' states; :meth:`module_head` is
        exact. None when no module has these keys (e.g. both in a stage
        with one cut point)."""
        key = f'{in_key}->{out_key}' if self.head_by_input else out_key
        if not self.head_by_levels and not self.lookahead_keys:
            return self.local_heads.get(key)
        prefix = f'{in_key}->' if self.head_by_input else ''
        heads = [h for k, h in self.local_heads.items()
                 if k.startswith(prefix) and
                 k[len(prefix):].split('|')[0].split('+')[-1] == out_key]
        return max(heads, key=lambda h: (h.state, h.peak)) if heads \
            else None

    def module_head(self, s: int, e: int) -> HeadCost:
        """The local head of the module made of units ``s..e-1``."""
        return self.local_heads[head_cost_key(
            self.units, self.used_stages, self.head_by_input,
            self.head_by_levels, s, e, self.lookahead_keys,
            self.lookahead_with_levels_only)]

    def head_keys(self) -> List[str]:
        """Distinct head keys in network order."""
        keys = []
        for p in self.allowed_positions():
            if self.head_key(p) not in keys:
                keys.append(self.head_key(p))
        return keys

    # ---------------------------------------------------------- the model
    def persist(self) -> int:
        """Parameters, optimizer states and buffers of the backbone and
        the final heads (local heads: :meth:`HeadCost.state`)."""
        return sum(u.params + u.opt + u.buffers for u in self.units) + \
            self.final_heads.state

    def _inputs(self, s: int) -> int:
        """Detached tensors a module starting at unit ``s`` receives: its
        input and the earlier raw stage outputs the final heads read."""
        if s == 0:
            return 0
        total = self.units[s - 1].out
        for stage, i in self.raw_producers().items():
            if self.used_stages is not None and stage not in self.used_stages:
                continue
            unit = self.units[i]
            if i < s - 1 or (i == s - 1 and unit.raw_out):
                total += unit.raw_out or unit.out
        return total

    def detached_reads(self, s: int) -> int:
        """How many of the stages the final heads read are produced before
        unit ``s`` (their outputs reach the last module detached)."""
        producers = self.raw_producers()
        stages = sorted(producers) if self.used_stages is None else \
            sorted(self.used_stages)
        return sum(1 for stage in stages if producers[stage] < s)

    def module_cost(self, s: int, e: int, num_modules: int = 2,
                    modes: Optional[Dict[Unit, str]] = None) -> dict:
        """Predicted peak (bytes) and FLOPs of the module made of units
        ``s..e-1``, without the local heads' states and the earlier local
        heads' gradients (:meth:`predict` adds them); ``num_modules`` only
        decides whether the local-loss targets exist (K > 1).

        Returns ``dict(peak=..., phase=..., flops=...)``: the phase of the
        peak (forward, loss, backward, step), and the FLOPs of the module's
        forward, backward, recomputation and head."""
        modes = modes or {}
        n = len(self.units)
        last = e == n
        data = self.data_local if num_modules > 1 else self.data_e2e
        base = data + self.persist() + self._inputs(s) + \
            sum(u.params for u in self.units[:s])
        costs = [u.mode(modes.get(u.name)) for u in self.units[s:e]]
        phases = {}
        act = fwd = flops = 0
        for u, c in zip(self.units[s:e], costs):
            fwd = max(fwd, act + c.fwd_peak)
            act += c.act
            flops += u.flops_fwd
        phases['forward'] = base + fwd
        if last:
            j = self.detached_reads(s)
            head_peak = self.final_peaks_detached[j]
            head_params = self.final_heads.params
            flops += self.final_flops_detached[j]
        else:
            head = self.module_head(s, e)
            head_peak, head_params = head.peak, head.params
            flops += head.flops
        phases['loss'] = base + act + head_peak
        bwd, later_grads = 0, head_params
        for b in range(e - 1, s - 1, -1):
            c = costs[b - s]
            first = b == s
            peak = c.bwd_peak_detached if first else c.bwd_peak
            flops += c.flops_bwd_detached if first else c.flops_bwd
            bwd = max(bwd, act + later_grads + peak)  # act = act'(s..b)
            act -= c.act
            later_grads += self.units[b].params
        phases['backward'] = base + bwd
        if last:
            all_grads = sum(u.params for u in self.units) + \
                self.final_heads.params
            phases['step'] = data + self.persist() + all_grads + \
                self._inputs(n) + self.step_temp
        phase = max(phases, key=phases.get)
        return dict(peak=phases[phase], phase=phase, flops=flops)

    def bounds(self, cuts: Sequence[Sequence[int]]) -> List[int]:
        positions = [self.position(c) for c in cuts]
        if positions != sorted(set(positions)):
            raise ValueError(f'cuts {list(cuts)} must be increasing')
        return [0] + positions + [len(self.units)]

    def predict(self, plan) -> dict:
        """Predicted peaks and FLOPs of a :class:`Plan` (or a list of cuts,
        no checkpointing).

        Returns ``dict(peak=bytes, modules=[bytes per module],
        phases=[phase of each module's peak], flops=FLOPs of the step)``."""
        if not isinstance(plan, Plan):
            plan = Plan([tuple(c) for c in plan])
        bounds = self.bounds(plan.cuts)
        k = len(bounds) - 1
        heads = [self.module_head(a, b)
                 for a, b in zip(bounds[:-2], bounds[1:-1])]
        state = sum(h.state for h in heads)
        peaks, phases, flops = [], [], 0
        for m, (a, b) in enumerate(zip(bounds, bounds[1:])):
            cost = self.module_cost(a, b, k, plan.modes)
            grads = sum(h.params for h in heads[:m])
            peaks.append(cost['peak'] + state + grads)
            phases.append(cost['phase'])
            flops += cost['flops']
        return dict(peak=max(peaks), modules=peaks, phases=phases,
                    flops=flops)

    def to_json(self) -> dict:
        """The measured figures (units, heads, data, step), for plan JSON
        files."""
        def unit(u):
            d = asdict(u)
            d['name'] = u.name if u.name == 'stem' else list(u.name)
            d['modes'] = {str(k): v for k, v in d['modes'].items()}
            return d
        return dict(
            units=[unit(u) for u in self.units],
            local_heads={k: asdict(h) for k, h in self.local_heads.items()},
            final_heads=asdict(self.final_heads),
            final_peaks_detached=self.final_peaks_detached,
            final_flops_detached=self.final_flops_detached,
            data_e2e=self.data_e2e, data_local=self.data_local,
            step_temp=self.step_temp, optimizer=self.optimizer,
            head_by_input=self.head_by_input,
            used_stages=None if self.used_stages is None else sorted(
                self.used_stages))


def _unit_name(unit) -> str:
    return unit if unit == 'stem' else f'{unit[0]},{unit[1]}'


def module_levels(units: Sequence[UnitCost], used: Optional[Set[int]],
                  s: int, e: int) -> Tuple[List[int], bool]:
    """``(producers, with_output)`` of the module of units ``s..e-1``: the
    units producing the raw outputs of read stages inside it, and whether
    its output is a further level (as
    :meth:`LocalLearningModel.module_levels`)."""
    read = [i for i in range(s, e) if units[i].raw_stage is not None and (
        used is None or units[i].raw_stage in used)]
    with_output = not (read and read[-1] == e - 1 and
                       units[e - 1].raw_out == 0)
    return read, with_output


def head_cost_key(units: Sequence[UnitCost], used: Optional[Set[int]],
                  by_input: bool, by_levels: bool, s: int, e: int,
                  lookahead_keys: Optional[Dict[int, str]] = None,
                  with_levels_only: bool = False) -> str:
    """The key of the local head of the module of units ``s..e-1`` in
    :attr:`MemoryProfile.local_heads`: its output's shape, the shapes of
    its levels (``'+'``-joined) when head-aware and there are several, its
    lookahead's units (``'|UNITS'``) when it has one, and its input's shape
    first (``'IN->OUT'``) when the head reads it."""
    out_key = units[e - 1].head_key
    if by_levels:
        read, with_output = module_levels(units, used, s, e)
        keys = [units[i].raw_key for i in read] + (
            [out_key] if with_output else [])
        if len(keys) > 1:
            out_key = '+'.join(keys)
    if lookahead_keys and (read or not with_levels_only):
        out_key = f'{out_key}|{lookahead_keys[e]}'
    if not by_input:
        return out_key
    return f"{'image' if s == 0 else units[s - 1].head_key}->{out_key}"
