"""Choose InfoPro cuts that balance the local modules' peak memory.

Two parts:

* :func:`measure_profile` measures, block by block, what a local module
  made of those blocks will hold (with MemTracker, on real or fake tensors;
  nothing is estimated from FLOPs or shapes): for the stem and every
  residual block the bytes its forward keeps for backward (``act``, output
  included), its forward peak, its backward peak (with and without a
  gradient for its input), its output and its parameters; for every layer
  the peak of a local head on that layer's output (forward, loss,
  backward); the peak of the final heads; the data tensors; the optimizer
  step's temporaries. :meth:`MemoryProfile.predict` adds these up into the
  peak of each local module of any partition.
* :func:`minmax_partition` finds the contiguous partition that minimises
  the largest group cost exactly (dynamic programming), and
  :func:`plan_cuts` applies it to a profile.

A module made of items ``s..e-1`` (item 0 is the stem, then the blocks in
network order) starts from ``base(s)`` = data + parameters, buffers and
optimizer states of the whole model (local heads included) + gradients of
the earlier modules and of their local heads (kept until the optimizer
step) + its input and the layer outputs the final heads will read (both
detached, kept from earlier modules). Its peak is the largest of:

* forward, in block b: ``base + act(s..b-1) + fwd_peak(b)``;
* its loss: ``base + act(s..e-1) + head_peak`` (the local head of the
  layer the module ends in, or the decode and auxiliary heads for the last
  module, measured with the layer outputs that reach it detached from
  earlier modules as such; the head's own gradients included);
* backward, in block b (later blocks' activations are freed, their
  parameter gradients exist): ``base + act(s..b) + grads(b+1..e-1) +
  head gradients + bwd_peak(b)`` (``bwd_peak`` without an input gradient
  for the module's first block);
* last module only, the optimizer step: every gradient + the step's
  temporaries.

What a local head adds to the other modules depends on the layer it reads
(its channels), so :func:`plan_cuts` solves one exact min-max problem per
sequence of cut layers (cuts are in network order, so their layers are
non-decreasing: at most ``C(K+2, 3)`` sequences for a 4-layer ResNet) and
keeps the best.
"""
import contextlib
import copy
import itertools
from dataclasses import dataclass, field
from typing import (Callable, Dict, Iterable, List, Optional, Sequence, Set,
                    Tuple)

import torch
from mmengine.model import revert_sync_batchnorm

from .memory import (PeakTracker, _storage_bytes, build_model, fake_mode,
                     local_head_template, optimizer_kwargs,
                     schedule_model_cfg, sgd_optim_wrapper, synthetic_batch)

Item = object  # 'stem' or (layer, block)


# ---------------------------------------------------------------- solver
def minmax_partition(n: int, k: int, cost: Callable[[int, int, int], float],
                     allowed: Optional[Iterable[int]] = None
                     ) -> Tuple[List[int], float]:
    """Cut ``n`` items into ``k`` contiguous non-empty groups minimising
    the largest group cost, exactly.

    Group ``m`` (0-based, in order) holds items ``s..e-1`` and costs
    ``cost(s, e, m)`` (``float('inf')`` forbids it); a cut ``p``
    (``0 < p < n``) separates item ``p-1`` from item ``p``.

    Two dynamic programs over the cut positions, ``O(k * n^2)`` cost
    evaluations each: the first finds the optimal largest cost ``M``; the
    second, among the partitions whose groups all cost ``<= M``, picks the
    one with the smallest sum of squared group costs (balanced groups
    rather than an arbitrary optimum when one group's cost is fixed).

    Args:
        n: number of items, ``>= 1``.
        k: number of groups, ``1 <= k <= 1 + len(allowed)``.
        cost: ``cost(s, e, m)`` of group ``m`` made of items ``s..e-1``.
        allowed: cut positions allowed (default ``1..n-1``).

    Returns:
        ``(cuts, value)``: the sorted cut positions (``k-1`` of them) and
        the largest group cost (``inf`` if every partition is forbidden).
    """
    if n < 1:
        raise ValueError(f'need at least one item, got n={n}')
    allowed = sorted(set(range(1, n) if allowed is None else allowed))
    bad = [p for p in allowed if not 0 < p < n]
    if bad:
        raise ValueError(f'cut positions {bad} out of range 1..{n - 1}')
    if not 1 <= k <= len(allowed) + 1:
        raise ValueError(f'k={k} groups impossible: allowed range is '
                         f'1..{len(allowed) + 1} ({len(allowed)} cut '
                         'positions)')
    inf = float('inf')
    ends = allowed + [n]
    memo: Dict[Tuple[int, int, int], float] = {}

    def c(s, e, m):
        key = (s, e, m)
        if key not in memo:
            memo[key] = float(cost(s, e, m))
        return memo[key]

    def solve(combine, start, limit=inf):
        """f[m][e]: best value of m groups covering items 0..e-1."""
        f = [{e: start(c(0, e, 0)) if c(0, e, 0) <= limit else inf
              for e in ends}]
        arg: List[Dict[int, int]] = [{}]
        for m in range(1, k):
            row, back = {}, {}
            for e in ends:
                best, best_s = inf, None
                for s in allowed:
                    if s >= e or f[m - 1][s] == inf:
                        continue
                    cost_m = c(s, e, m)
                    if cost_m > limit:
                        continue
                    value = combine(f[m - 1][s], cost_m)
                    if value < best:
                        best, best_s = value, s
                row[e], back[e] = best, best_s
            f.append(row)
            arg.append(back)
        cuts, e = [], n
        if f[k - 1][n] == inf:
            return None, inf
        for m in range(k - 1, 0, -1):
            e = arg[m][e]
            cuts.append(e)
        return sorted(cuts), f[k - 1][n]

    cuts, value = solve(max, lambda v: v)
    if cuts is None:
        return [], inf
    balanced, _ = solve(lambda acc, v: acc + v * v, lambda v: v * v,
                        limit=value)
    return balanced, value


# --------------------------------------------------------------- profile
@dataclass
class ItemCost:
    """Measured bytes of one item (the stem or one residual block).

    ``act``: kept after its forward (saved tensors and output);
    ``fwd_peak``: peak during its forward above the level before;
    ``bwd_peak`` / ``bwd_peak_detached``: peak during its backward above
    the level after its forward, the incoming gradient included, with /
    without computing its input's gradient; ``out``: its output;
    ``params``: its trainable parameters; ``buffers``: its buffers."""
    name: Item
    act: int
    fwd_peak: int
    bwd_peak: int
    bwd_peak_detached: int
    out: int
    params: int
    buffers: int
    layer: int  # 1-based layer of the output (0 for the stem)


@dataclass
class HeadCost:
    """Peak of a head's forward + loss + backward above the level before
    (the gradients of its input and of its parameters included), and its
    parameters/buffers."""
    peak: int
    params: int
    buffers: int


@dataclass
class MemoryProfile:
    """Everything :meth:`predict` needs, measured once per model/batch/size.

    Items are ``['stem', (1, 0), (1, 1), ...]``; a cut before item ``p``
    is the split point ``items[p]``; item 1, ``(1, 0)``, cannot start a
    module (the stem would be alone)."""
    items: List[ItemCost]
    local_heads: Dict[int, HeadCost]  # by layer, 1-based
    final_heads: HeadCost
    data_e2e: int        # preprocessed batch
    data_local: int      # + labels, reconstruction target and mask (K > 1)
    opt_per_param: float  # optimizer-state bytes per parameter byte
    step_temp: int       # temporaries of the optimizer step
    used_layers: Optional[Set[int]]  # 1-based layers read by final heads
    # peak of the final heads when the outputs of the first j layers they
    # read come detached from earlier modules (no gradient computed)
    final_peaks_detached: List[int] = field(default_factory=list)

    # ---------------------------------------------------------- indexing
    @property
    def names(self) -> List[Item]:
        return [it.name for it in self.items]

    def allowed_positions(self) -> List[int]:
        return list(range(2, len(self.items)))

    def position(self, cut: Tuple[int, int]) -> int:
        """Item index of a split point ``(layer, block)``."""
        try:
            p = self.names.index(tuple(cut))
        except ValueError:
            raise ValueError(f'cut {tuple(cut)} is not a block of this '
                             f'backbone') from None
        if p not in self.allowed_positions():
            raise ValueError(f'cut {tuple(cut)} would leave the stem alone')
        return p

    def layer_last_item(self) -> Dict[int, int]:
        last = {}
        for i, it in enumerate(self.items):
            if it.layer:
                last[it.layer] = i
        return last

    # ---------------------------------------------------------- the model
    def _persist(self) -> float:
        """Parameters, optimizer states and buffers of the backbone and the
        final heads (local heads: :meth:`head_state`)."""
        params = sum(it.params for it in self.items) + \
            self.final_heads.params
        buffers = sum(it.buffers for it in self.items) + \
            self.final_heads.buffers
        return (1 + self.opt_per_param) * params + buffers

    def head_layer(self, p: int) -> int:
        """Layer (1-based) of the output a cut before item ``p`` passes to
        its local head."""
        return self.items[p - 1].layer

    def head_state(self, layer: int) -> float:
        """Bytes a local head on ``layer`` holds during the whole step:
        parameters, optimizer states, buffers."""
        head = self.local_heads[layer]
        return (1 + self.opt_per_param) * head.params + head.buffers

    def head_grads(self, layer: int) -> float:
        """Its gradients, held from its module's backward to the step."""
        return self.local_heads[layer].params

    def _inputs(self, s: int) -> int:
        """Detached tensors a module starting at item ``s`` receives: its
        input and the earlier layer outputs the final heads read."""
        if s == 0:
            return 0
        total = self.items[s - 1].out
        for layer, i in self.layer_last_item().items():
            if i < s - 1 and (self.used_layers is None
                              or layer in self.used_layers):
                total += self.items[i].out
        return total

    def _detached_reads(self, s: int) -> int:
        """How many of the layers the final heads read end before item
        ``s`` (their outputs reach the last module detached)."""
        last = self.layer_last_item()
        layers = sorted(last) if self.used_layers is None else \
            sorted(self.used_layers)
        return sum(1 for layer in layers if last[layer] < s)

    def module_cost(self, s: int, e: int, num_modules: int = 2) -> dict:
        """Predicted peak (bytes) of the module made of items ``s..e-1``,
        without the local heads' :meth:`head_state` and the earlier local
        heads' :meth:`head_grads`; ``num_modules`` only decides whether the
        local-loss targets exist (K > 1).

        Returns ``dict(peak=..., phase=...)`` with the phase of the peak
        (forward, loss, backward, step)."""
        n = len(self.items)
        last = e == n
        data = self.data_local if num_modules > 1 else self.data_e2e
        base = data + self._persist() + self._inputs(s) + \
            sum(it.params for it in self.items[:s])
        phases = {}
        act = 0
        fwd = 0
        for it in self.items[s:e]:
            fwd = max(fwd, act + it.fwd_peak)
            act += it.act
        phases['forward'] = base + fwd
        head = self.final_heads if last else \
            self.local_heads[self.items[e - 1].layer]
        head_peak = head.peak
        if last and self.final_peaks_detached:
            head_peak = self.final_peaks_detached[self._detached_reads(s)]
        phases['loss'] = base + act + head_peak
        bwd, later_grads = 0, head.params
        for b in range(e - 1, s - 1, -1):
            it = self.items[b]
            peak = it.bwd_peak_detached if b == s else it.bwd_peak
            bwd = max(bwd, act + later_grads + peak)  # act = act(s..b)
            act -= it.act
            later_grads += it.params
        phases['backward'] = base + bwd
        if last:
            all_grads = sum(it.params for it in self.items) + \
                self.final_heads.params
            phases['step'] = data + self._persist() + all_grads + \
                self._inputs(n) + self.step_temp
        phase = max(phases, key=phases.get)
        return dict(peak=phases[phase], phase=phase)

    def predict(self, cuts: Sequence[Tuple[int, int]]) -> dict:
        """Predicted peaks of the partition at ``cuts``.

        Returns ``dict(peak=bytes, modules=[bytes per module],
        phases=[phase of each module's peak])``."""
        positions = [self.position(c) for c in cuts]
        if positions != sorted(set(positions)):
            raise ValueError(f'cuts {list(cuts)} must be increasing')
        bounds = [0] + positions + [len(self.items)]
        k = len(bounds) - 1
        layers = [self.head_layer(p) for p in positions]
        state = sum(self.head_state(layer) for layer in layers)
        peaks, phases = [], []
        for m, (a, b) in enumerate(zip(bounds, bounds[1:])):
            cost = self.module_cost(a, b, k)
            grads = sum(self.head_grads(layer) for layer in layers[:m])
            peaks.append(cost['peak'] + state + grads)
            phases.append(cost['phase'])
        return dict(peak=max(peaks), modules=peaks, phases=phases)


def plan_cuts(profile: MemoryProfile, num_modules: int
              ) -> Tuple[List[Tuple[int, int]], dict]:
    """Cuts for ``num_modules`` local modules minimising the largest
    module's predicted peak (exact). Returns ``(cuts, prediction)``.

    For every non-decreasing sequence of cut layers, the partitions whose
    cuts read exactly those layers are searched by :func:`minmax_partition`
    (the local heads' states and the earlier heads' gradients are then
    known per module); the best over the sequences wins, ties going to the
    smaller sum of squared module peaks."""
    n = len(profile.items)
    if num_modules == 1:
        return [], profile.predict([])
    allowed = profile.allowed_positions()
    if not 1 <= num_modules <= len(allowed) + 1:
        raise ValueError(f'num_modules={num_modules} impossible: allowed '
                         f'range is 1..{len(allowed) + 1}')
    memo: Dict[Tuple[int, int], float] = {}

    def own(s, e):
        if (s, e) not in memo:
            memo[(s, e)] = profile.module_cost(s, e, num_modules)['peak']
        return memo[(s, e)]

    layers = sorted({profile.head_layer(p) for p in allowed})
    best = None
    for seq in itertools.combinations_with_replacement(layers,
                                                       num_modules - 1):
        state = sum(profile.head_state(layer) for layer in seq)
        grads = [sum(profile.head_grads(layer) for layer in seq[:m])
                 for m in range(num_modules)]

        def cost(s, e, m, seq=seq, state=state, grads=grads):
            if m < num_modules - 1 and (
                    e == n or profile.head_layer(e) != seq[m]):
                return float('inf')
            return own(s, e) + state + grads[m]

        positions, value = minmax_partition(n, num_modules, cost, allowed)
        if value == float('inf'):
            continue
        bounds = [0] + positions + [n]
        balance = sum(cost(a, b, m)**2
                      for m, (a, b) in enumerate(zip(bounds, bounds[1:])))
        if best is None or (value, balance) < best[:2]:
            best = (value, balance, positions)
    cuts = [profile.names[p] for p in best[2]]
    return cuts, profile.predict(cuts)


# ----------------------------------------------------------- measurement
def _zero_grads(module):
    for p in module.parameters():
        p.grad = None


def _trainable_bytes(module) -> int:
    return _storage_bytes(p for p in module.parameters() if p.requires_grad)


def _measure_item(run, x, params_of, need_input_grad=True) -> dict:
    """Forward ``run(x_in)`` and backward it under a fresh tracker.

    The input and the parameters are registered with the tracker first
    (MemTracker counts any storage it sees in an op's output, views of
    untracked inputs or weights included), and every figure is relative to
    that level.

    Returns bytes: act (kept after forward), fwd (forward peak), bwd
    (backward peak above the post-forward level, incoming gradient
    included) and the detached output."""
    for m in params_of:
        _zero_grads(m)
    x_in = x.detach().requires_grad_(need_input_grad) \
        if x.is_floating_point() else x
    tracker = PeakTracker()
    tracker.track_external(x_in, *params_of)
    with tracker:
        level = tracker.current_total()
        out = run(x_in)
        after = tracker.current_total()
        fwd = tracker.window_peak() - level
        tracker.start_window()
        out.backward(torch.ones_like(out))
        bwd = tracker.window_peak() - after
    for m in params_of:
        _zero_grads(m)
    return dict(act=after - level, fwd=fwd, bwd=bwd, out=out.detach())


def _loss_peak(run_loss, inputs, params_of, requires_grad=None) -> int:
    """Peak of ``run_loss(*leaves)`` (returns a scalar loss) and its
    backward, above the level before; ``leaves`` are ``inputs`` detached,
    requiring grad (or as ``requires_grad`` says, one flag per input),
    registered with the tracker with the parameters of ``params_of``
    (whose gradients, allocated in the window, count)."""
    for m in params_of:
        _zero_grads(m)
    if requires_grad is None:
        requires_grad = [True] * len(inputs)
    leaves = [x.detach().requires_grad_(flag)
              for x, flag in zip(inputs, requires_grad)]
    tracker = PeakTracker()
    tracker.track_external(*leaves, *params_of)
    with tracker:
        level = tracker.current_total()
        loss = run_loss(*leaves)
        loss.backward()
        peak = tracker.overall_peak() - level
    for m in params_of:
        _zero_grads(m)
    return peak


def measure_profile(cfg, batch: int, size: Tuple[int, int],
                    device: str = 'cpu', fake: bool = True, seed: int = 0,
                    log: Optional[Callable[[str], None]] = None
                    ) -> MemoryProfile:
    """Measure a config's model block by block (see the module doc).

    Args:
        cfg: the config (its model: InfoProEncoderDecoder with an
            InfoProResNetV1c; its first local head is the one measured).
        batch, size: the training batch and crop ``(H, W)``.
        device: where real tensors live (ignored with ``fake``).
        fake: measure under FakeTensorMode (no memory, seconds for the
            full-size ResNet-101).
    """
    from mmseg.registry import MODELS
    from ..models.heads.recons_decoder import reconstruction_target
    ctx = fake_mode() if fake else contextlib.nullcontext()
    if fake:
        device = 'cpu'
    with ctx:
        model_cfg = schedule_model_cfg(cfg, 'e2e', size=size)
        model = build_model(model_cfg, device, seed)
        backbone = model.backbone
        num_classes = model.decode_head.num_classes
        data = synthetic_batch(batch, size, num_classes, seed)

        head_cfg = local_head_template(cfg.model)
        head_cfg.setdefault('type', 'InfoProLocalHead')
        heads = {}
        for layer in range(1, len(backbone.stage_blocks) + 1):
            c = dict(copy.deepcopy(head_cfg))
            c.update(in_channels=backbone.block_out_channels(layer),
                     num_classes=num_classes,
                     align_corners=model.align_corners)
            torch.manual_seed(seed)
            heads[layer] = revert_sync_batchnorm(MODELS.build(c))
            if device != 'cpu':
                heads[layer].to(device)
            heads[layer].train()

        # data: the preprocessed batch, then the local-loss targets
        tracker = PeakTracker()
        with tracker:
            pre = model.data_preprocessor(data, True)
            inputs, samples = pre['inputs'], pre['data_samples']
            data_e2e = tracker.current_total()
            gt = torch.stack([s.gt_sem_seg.data for s in samples
                              ]).squeeze(1).long()
            if any(h.needs_image for h in heads.values()):
                image, mask = reconstruction_target(inputs, samples,
                                                    model.data_preprocessor)
            else:
                image = mask = None
            data_local = tracker.current_total()

        # stem and blocks, chained on detached outputs
        items = []
        stem = backbone.stem_modules()

        def run_stem(x):
            for m in stem:
                x = m(x)
            return x

        r = _measure_item(run_stem, inputs, stem, need_input_grad=False)
        items.append(ItemCost(
            'stem', r['act'], r['fwd'], r['bwd'], r['bwd'],
            _storage_bytes([r['out']]),
            sum(_trainable_bytes(m) for m in stem),
            sum(_storage_bytes(m.buffers()) for m in stem), 0))
        x = r['out']
        layer_out = {}
        for layer, block in backbone.all_blocks():
            mod = backbone.get_block(layer, block)
            if log:
                log(f'  measuring layer{layer}[{block}]')
            r = _measure_item(mod, x, [mod], True)
            r0 = _measure_item(mod, x, [mod], False)
            items.append(ItemCost(
                (layer, block), r['act'], r['fwd'], r['bwd'], r0['bwd'],
                _storage_bytes([r['out']]), _trainable_bytes(mod),
                _storage_bytes(mod.buffers()), layer))
            x = r['out']
            layer_out[layer] = x

        # local heads, one per layer (their gradients are allocated in
        # the measured window, as in the first step of a module)
        local = {}
        for layer, head in heads.items():
            feat = layer_out[layer]

            def run_local(feat, head=head):
                losses = head.loss(feat, gt, image, mask)
                return model.parse_losses(losses)[0]

            local[layer] = HeadCost(
                _loss_peak(run_local, [feat], [head]),
                _trainable_bytes(head), _storage_bytes(head.buffers()))

        # decode (+ auxiliary, + neck) heads on the backbone outputs
        final_mods = model._final_heads()

        def run_final(*feats):
            return model.parse_losses(model.final_losses(feats, samples))[0]

        # ... with the first j layers they read detached (those layers
        # end in earlier modules), j = 0 (end to end) .. all
        used = model._used_out_layers()
        reads = [i for i in backbone.out_indices
                 if used is None or i in used]
        feats = [layer_out[i + 1] for i in backbone.out_indices]
        detached_peaks = [
            _loss_peak(run_final, feats, final_mods,
                       [i not in reads[:j] for i in backbone.out_indices])
            for j in range(len(reads) + 1)
        ]
        final = HeadCost(
            detached_peaks[0],
            sum(_trainable_bytes(m) for m in final_mods),
            sum(_storage_bytes(m.buffers()) for m in final_mods))

        # optimizer step: states (momentum) and temporaries
        optim = sgd_optim_wrapper(model, **optimizer_kwargs(cfg))
        params = [p for p in model.parameters() if p.requires_grad]
        for p in params:
            p.grad = torch.zeros_like(p)
        optim.step()  # creates the momentum buffers
        tracker = PeakTracker()
        tracker.track_external(model, optim.optimizer)
        with tracker:
            level = tracker.current_total()
            optim.step()
            step_temp = tracker.overall_peak() - level
        states = [v for s in optim.optimizer.state.values()
                  for v in s.values() if isinstance(v, torch.Tensor)]
        opt_per_param = _storage_bytes(states) / max(1,
                                                     _storage_bytes(params))
        optim.zero_grad()

        used = None if used is None else {i + 1 for i in used}
    return MemoryProfile(
        items=items, local_heads=local, final_heads=final,
        data_e2e=data_e2e, data_local=data_local,
        opt_per_param=opt_per_param, step_temp=step_temp, used_layers=used,
        final_peaks_detached=detached_peaks)
