"""Measuring a :class:`~mmseg_infopro.memory.profile.MemoryProfile`: every
unit of a cut-able backbone in every checkpointing mode, the local head of
every distinct module, the final heads, the data and the optimizer step
(MemTracker on real or fake tensors, FlopCounterMode; nothing is estimated
from shapes)."""
import contextlib
import copy
from typing import Callable, Optional, Sequence, Tuple

import torch
from mmengine.model import revert_sync_batchnorm

from ..engine.lookahead import (Lookahead, auglocal_depth, check_spec,
                                lookahead_units)
from .building import build_model, fake_mode
from .profile import (MODES, HeadCost, MemoryProfile, ModeCost, UnitCost,
                      _unit_name, head_cost_key, module_levels)
from .schedules import (config_optim_wrapper, config_scope,
                        local_head_template, schedule_model_cfg)
from .tracking import PeakTracker, _storage_bytes


def _zero_grads(*modules):
    for m in modules:
        for p in m.parameters():
            p.grad = None


def _trainable_bytes(parts) -> int:
    return _storage_bytes(p for m in parts for p in _params(m)
                          if p.requires_grad)


def _params(part):
    return [part] if isinstance(part, torch.nn.Parameter) else \
        list(part.parameters())


def _buffers(part):
    return [] if isinstance(part, torch.nn.Parameter) else \
        list(part.buffers())


def _flops(fn) -> Tuple[object, int]:
    from torch.utils.flop_counter import FlopCounterMode
    counter = FlopCounterMode(display=False)
    with counter:
        result = fn()
    return result, counter.get_total_flops()


def _measure_unit(run, x, parts, need_input_grad: bool) -> dict:
    """Forward ``run(x_in)`` and backward it under a fresh tracker and a
    FLOP counter.

    The input and the parameters are registered with the tracker first
    (MemTracker counts any storage it sees in an op's output, views of
    untracked inputs or weights included), and every figure is relative to
    that level.

    Returns act (kept after forward), fwd (forward peak), bwd (backward
    peak above the post-forward level, incoming gradient included), the
    FLOPs of both, and the detached output."""
    params = [p for part in parts for p in _params(part)]
    for p in params:
        p.grad = None
    x_in = x.detach().requires_grad_(need_input_grad) \
        if x.is_floating_point() else x
    tracker = PeakTracker()
    tracker.track_external(x_in, *params)
    with tracker:
        level = tracker.current_total()
        out, flops_fwd = _flops(lambda: run(x_in))
        after = tracker.current_total()
        fwd = tracker.window_peak() - level
        tracker.start_window()
        _, flops_bwd = _flops(
            lambda: out.backward(torch.ones_like(out)))
        bwd = tracker.window_peak() - after
    for p in params:
        p.grad = None
    return dict(act=after - level, fwd=fwd, bwd=bwd, out=out.detach(),
                flops_fwd=flops_fwd, flops_bwd=flops_bwd)


def _loss_peak(run_loss, inputs, modules, requires_grad=None,
               externals=()) -> Tuple[int, int]:
    """Peak and FLOPs of ``run_loss(*leaves)`` (returns a scalar loss) and
    its backward, above the level before; ``leaves`` are ``inputs``
    detached, requiring grad (or as ``requires_grad`` says, one flag per
    input), registered with the tracker with the parameters of ``modules``
    (whose gradients, allocated in the window, count)."""
    _zero_grads(*modules)
    if requires_grad is None:
        requires_grad = [True] * len(inputs)
    leaves = [x.detach().requires_grad_(flag)
              for x, flag in zip(inputs, requires_grad)]
    tracker = PeakTracker()
    tracker.track_external(*leaves, *modules, *externals)
    with tracker:
        level = tracker.current_total()

        def step():
            loss = run_loss(*leaves)
            loss.backward()

        _, flops = _flops(step)
        peak = tracker.overall_peak() - level
    _zero_grads(*modules)
    return peak, flops


def _optimizer_state_bytes(model, cfg) -> dict:
    """``{id(parameter): bytes of its optimizer states}`` after one step of
    the config's optimizer over ``model``, the step's temporaries (key -1),
    measured on a second step, and the optimizer's class name (key
    ``'name'``)."""
    optim = config_optim_wrapper(model, cfg)
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.grad = torch.zeros_like(p)
    optim.step()  # creates the states
    tracker = PeakTracker()
    tracker.track_external(model, optim.optimizer)
    with tracker:
        level = tracker.current_total()
        optim.step()
        step_temp = tracker.overall_peak() - level
    out = {-1: step_temp, 'name': type(optim.optimizer).__name__}
    for p in params:
        state = optim.optimizer.state.get(p, {})
        out[id(p)] = _storage_bytes(
            v for v in state.values() if isinstance(v, torch.Tensor))
    optim.zero_grad()
    for p in params:
        p.grad = None
    return out


def _key(t) -> str:
    return 'x'.join(str(v) for v in t.shape[1:])


def measure_profile(cfg, batch: int, size: Tuple[int, int],
                    device: str = 'cpu', fake: bool = True, seed: int = 0,
                    modes: Sequence[str] = MODES,
                    log: Optional[Callable[[str], None]] = None
                    ) -> MemoryProfile:
    """Measure a config's model unit by unit (see the module doc).

    Args:
        cfg: the config (its model: an InfoPro model with a cut-able
            backbone, which it reaches only through the backbone contract
            and the engine's protocol; its first local head is the one measured; its
            optimizer is the one whose states count).
        batch, size: the training batch and crop ``(H, W)``.
        device: where real tensors live (ignored with ``fake``).
        fake: measure under FakeTensorMode (no memory, seconds for the
            full-size ResNet-101).
        modes: checkpointing modes to measure besides none (``()``: only
            cut planning without checkpointing).
    """
    ctx = fake_mode() if fake else contextlib.nullcontext()
    if fake:
        device = 'cpu'
    with ctx:
        model = build_model(schedule_model_cfg(cfg, 'e2e', size=size),
                            device, seed, config_scope(cfg))
        backbone = model.backbone
        data = model.example_batch(batch, size, seed)
        opt_bytes = _optimizer_state_bytes(model, cfg)

        def opt_of(parts):
            return sum(opt_bytes.get(id(p), 0) for part in parts
                       for p in _params(part) if p.requires_grad)

        # data: the preprocessed batch, then the local-loss targets
        head_cfg = local_head_template(cfg.model)
        # a head for a real cut's width (heads may only accept some)
        width = backbone.unit_out_channels(backbone.units()[0])
        # the heads' defaults (a default lookahead included) as the model
        # builds them
        head_cfg = model.local_head_config(head_cfg)
        ahead_spec = head_cfg.get('lookahead', None)
        head_cfg['lookahead'] = None  # built per module below
        ahead_units = None
        # 'auto': the model's choice, for modules with levels (and without)
        ahead_auto = None
        if ahead_spec and ahead_spec.get('type') == 'auto':
            ahead_auto = (model.default_lookahead(head_cfg, True),
                          model.default_lookahead(head_cfg, False))
            if ahead_auto[1] is not None:
                raise ValueError(
                    "the memory profile costs lookahead=dict(type='auto') "
                    'where only modules with levels get one')
            ahead_spec = ahead_auto[0]
        if ahead_spec:
            ahead_spec = check_spec(**ahead_spec)
        if ahead_spec and ahead_spec['type'] is not None:
            if ahead_spec['type'] == 'auglocal' and any(
                    auglocal_depth(ahead_spec['depth'], m, k) !=
                    ahead_spec['depth'] for k in range(3, 17)
                    for m in range(k - 1)):
                raise ValueError(
                    'the memory profile costs AugLocal lookaheads of depth '
                    '<= 2 (the same for every module) and MAN; depth '
                    f"{ahead_spec['depth']} shrinks with the module index. "
                    'Measure such a config with tools/benchmark.py')
            names = backbone.units()
            ahead_units = {
                e: lookahead_units(backbone, names[e - 1],
                                   ahead_spec['type'], ahead_spec['depth'])
                for e in range(1, len(names))}
        # a two-level probe where a module can hand stages to the heads
        probe = model.build_local_head(
            copy.deepcopy(head_cfg), width, width,
            [width, width] if model.stage_channels() else None)
        by_input = bool(getattr(probe, 'needs_inputs', False))
        by_levels = bool(getattr(probe, 'reads_levels', False))
        used = model.used_out_indices()
        tracker = PeakTracker()
        with tracker:
            pre = model.data_preprocessor(data, True)
            inputs, samples = pre['inputs'], pre['data_samples']
            data_e2e = tracker.current_total()
            targets = model.local_targets(inputs, samples, [probe])
            data_local = tracker.current_total()
        del probe

        # units, chained on detached outputs, in every mode
        units, outs, examples, raws = [], {}, {'image': inputs}, {}
        x = inputs
        saved = (backbone.checkpoint_blocks,
                 backbone.selective_checkpoint_blocks)
        for unit in backbone.units():
            if log:
                log(f'  measuring {unit}')
            parts = backbone.unit_parts(unit)
            first = unit == backbone.units()[0]
            figures = {}
            for mode in (None, ) + tuple(modes):
                backbone.checkpoint_blocks = [unit] if mode == 'full' else []
                backbone.selective_checkpoint_blocks = \
                    [unit] if mode == 'selective' else []
                unit_outs = {}

                def run(x_in, unit=unit, unit_outs=unit_outs):
                    out = backbone.forward_unit(unit, x_in, unit_outs)
                    # a raw stage output that is the unit's output itself
                    # (ResNet, MiT) is no tensor of its own
                    unit_outs['same'] = [
                        i for i, raw in unit_outs.items() if raw is out]
                    return out

                r = _measure_unit(run, x, parts, not first)
                r0 = r if first else _measure_unit(run, x, parts, False)
                figures[mode] = (r, r0, unit_outs)
            backbone.checkpoint_blocks, \
                backbone.selective_checkpoint_blocks = saved
            r, r0, unit_outs = figures[None]
            same = unit_outs.pop('same')
            raw_stage, raw_out, raw_key = None, 0, None
            for stage, raw in unit_outs.items():
                raw_stage = stage
                outs[stage] = raw.detach()
                raw_key = _key(raw)
                raws.setdefault(raw_key, outs[stage])
                if stage not in same:
                    raw_out = _storage_bytes([raw])
            units.append(UnitCost(
                name=unit,
                modes={mode: ModeCost(
                    act=fr['act'], fwd_peak=fr['fwd'], bwd_peak=fr['bwd'],
                    bwd_peak_detached=fr0['bwd'],
                    flops_bwd=fr['flops_bwd'],
                    flops_bwd_detached=fr0['flops_bwd'])
                    for mode, (fr, fr0, _) in figures.items()},
                out=_storage_bytes([r['out']]), raw_stage=raw_stage,
                raw_out=raw_out, params=_trainable_bytes(parts),
                buffers=sum(_storage_bytes(_buffers(p)) for p in parts),
                opt=opt_of(parts), head_key=_key(r['out']),
                flops_fwd=r['flops_fwd'], raw_key=raw_key))
            x = r['out']
            examples.setdefault(units[-1].head_key, x)

        if log:
            log("local heads")
        # one local head per distinct key of a possible local module
        # (head_cost_key); their gradients are allocated in the measured
        # window, as in the first step of a module
        first_block = 1 if units[0].name == 'stem' else 0
        allowed = list(range(first_block + 1, len(units)))
        ahead_keys = None if ahead_units is None else {
            e: '/'.join(map(_unit_name, ahead_units[e])) for e in allowed}
        only_with_levels = ahead_auto is not None
        wanted = {}
        for s_ in [0] + allowed:
            for e_ in allowed:
                if e_ > s_:
                    key = head_cost_key(units, used, by_input, by_levels, s_,
                                        e_, ahead_keys, only_with_levels)
                    wanted.setdefault(key, (s_, e_))
        local = {}
        for key, (s_, e_) in wanted.items():
            feat = examples[units[e_ - 1].head_key]
            feat_in = None
            if by_input:
                feat_in = inputs if s_ == 0 else \
                    examples[units[s_ - 1].head_key]
            # the module's levels as the engine hands them over: the raw
            # outputs of the read stages it ends (the output itself where
            # that is one), then its output
            read, with_output = module_levels(units, used, s_, e_)
            levels = [feat if i == e_ - 1 and not units[i].raw_out
                      else raws[units[i].raw_key] for i in read] + (
                [feat] if with_output else [])
            torch.manual_seed(seed)
            cfg_k = copy.deepcopy(head_cfg)
            if ahead_units is not None and '|' in key:
                cfg_k['lookahead'] = Lookahead(
                    backbone, ahead_units[e_], ahead_spec['type'],
                    ahead_spec['momentum'], ahead_spec['checkpoint'])
            head = revert_sync_batchnorm(model.build_local_head(
                cfg_k, feat.shape[1],
                feat_in.shape[1] if feat_in is not None else None,
                [t.shape[1] for t in levels] if read else None))
            if device != 'cpu':
                head.to(device)
            head.train()
            multi = bool(getattr(head, 'reads_levels', False))
            # the output first, then the other levels (each tensor once)
            leaves = [feat] + ([t for t in levels if t is not feat]
                               if multi else [])

            def run_local(*xs, head=head, feat_in=feat_in, multi=multi,
                          levels=levels):
                if multi:
                    rest = iter(xs[1:])
                    xs_levels = [xs[0] if t is feat else next(rest)
                                 for t in levels]
                else:
                    xs_levels = None
                losses = model.local_loss(head, xs[0], targets, feat_in,
                                          xs_levels)
                return model.parse_losses(losses)[0]

            ahead = getattr(head, 'lookahead', None)
            peak, flops = _loss_peak(run_local, leaves, [head],
                                     externals=getattr(ahead, '_live', ()))
            head_opt = _optimizer_state_bytes(head, cfg)
            local[key] = HeadCost(
                peak, flops, _trainable_bytes([head]),
                _storage_bytes(head.buffers()),
                sum(v for k, v in head_opt.items()
                    if isinstance(k, int) and k != -1))

        if log:
            log("final heads")
        # neck, decode and auxiliary heads (and the backbone.s output
        # parts) on the raw stage outputs
        final_mods = model.final_heads() + backbone.output_parts()
        stages = sorted(outs)

        def run_final(*raws):
            feats = backbone.format_outputs(dict(zip(stages, raws)))
            return model.parse_losses(model.final_losses(feats, samples))[0]

        # ... with the first j stages they read detached (those stages end
        # in earlier modules), j = 0 (end to end) .. all
        reads = [i for i in stages if used is None or i in used]
        raws = [outs[i] for i in stages]
        detached = [
            _loss_peak(run_final, raws, final_mods,
                       [i not in reads[:j] for i in stages])
            for j in range(len(reads) + 1)
        ]
        final = HeadCost(
            detached[0][0], detached[0][1], _trainable_bytes(final_mods),
            sum(_storage_bytes(_buffers(m)) for m in final_mods),
            opt_of(final_mods))
    return MemoryProfile(
        units=units, local_heads=local, final_heads=final,
        data_e2e=data_e2e, data_local=data_local,
        step_temp=opt_bytes[-1], used_stages=used,
        final_peaks_detached=[d[0] for d in detached],
        final_flops_detached=[d[1] for d in detached],
        optimizer=opt_bytes['name'],
        head_by_input=by_input, head_by_levels=by_levels,
        lookahead_keys=ahead_keys,
        lookahead_with_levels_only=ahead_auto is not None)
