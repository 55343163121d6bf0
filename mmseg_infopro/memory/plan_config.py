"""Planning a config's training step, end to end (``tools/plan_splits.py``).

:func:`plan_splits` measures every unit of the config's backbone
(:func:`~mmseg_infopro.memory.profile.measure_profile`: activations, peaks
and FLOPs, with and without checkpointing), the local head on every cut
shape, the final heads, the batch and the config's optimizer step. Then:

* ``num_modules=K``: the cuts that minimise the largest module's
  predicted peak (exact);
* ``memory_budget``: among end to end, end to end + checkpointing, pure
  InfoPro and their combinations (K = 1 .. ``max_modules``, per-unit
  ``'selective'`` or ``'full'`` checkpointing), the plan of least predicted
  FLOPs whose predicted peak fits; the runner-ups (the best plan of every
  other K) are printed, and when nothing fits, :class:`PlanningError`
  names the smallest reachable peak and what dominates it;
* ``pareto=True``: predicted peak against FLOPs of every family of plans
  (and a PNG with ``plot``).

Unless ``verify=False``, the chosen plan and the E2E step are then measured
(MemTracker, or ``max_memory_allocated`` on ``device='cuda'``; FLOPs with
FlopCounterMode) and printed against the prediction; in budget mode a plan
whose measured peak exceeds the budget is planned again with the budget
lowered by the excess (at most 3 times). ``write`` writes a config that
inherits the config with the plan (:func:`config_delta`): ``split_points``,
one copy of the config's first local head per cut, ``checkpoint_blocks``
and ``selective_checkpoint_blocks`` (training only: inference and exported
checkpoints do not see them).

Also here: :func:`parse_bytes` (``'7GiB'``, ``'0.45x'``) and
:func:`plan_json` (a plan and its prediction as JSON).
"""
import os
import os.path as osp
import re
from typing import Callable, Optional, Sequence, Union

from mmengine.config import Config

from .planning import pareto_front, plan_cuts, plan_for_budget
from .profile import Plan
from .profile_measure import measure_profile
from .describe import describe
from .schedules import check_cuttable, local_head_template, step_shape
from .tracking import measure_schedule, MiB

UNITS = dict(b=1, kb=1e3, mb=1e6, gb=1e9, tb=1e12, kib=2**10, mib=2**20,
             gib=2**30, tib=2**40)


class PlanningError(ValueError):
    """No plan fits the budget (``result`` holds what was planned, with
    ``feasible=False`` and the smallest reachable peak), or none was
    measured within it."""

    def __init__(self, message: str, result: Optional[dict] = None):
        super().__init__(message)
        self.result = result


def parse_bytes(text: str):
    """``'7GiB'``, ``'7.5 GB'``, ``'7000MiB'``, ``'7e9'`` -> bytes (float);
    ``'0.45x'`` -> ``('x', 0.45)``, a fraction of the predicted E2E peak.
    ValueError otherwise."""
    match = re.fullmatch(r'\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([a-z]*)\s*',
                         str(text).lower())
    unit = match.group(2) if match else None
    if not match or unit not in UNITS and unit not in ('', 'x'):
        raise ValueError(
            f'bad memory size {text!r}: expected a number with an optional '
            'unit, e.g. 7GiB, 7.5GB, 7000MiB, 7e9 (bytes) or 0.45x (of the '
            'E2E peak)')
    value = float(match.group(1))
    if value <= 0:
        raise ValueError(f'memory size {text!r} must be > 0')
    if unit == 'x':
        return ('x', value)
    return value * UNITS.get(unit or 'b')


def py_source(value) -> str:
    """A config value as Python source, dicts written ``dict(k=v)``."""
    if isinstance(value, dict):
        if all(isinstance(k, str) and k.isidentifier() for k in value):
            return 'dict(' + ', '.join(f'{k}={py_source(v)}'
                                       for k, v in value.items()) + ')'
        return '{' + ', '.join(f'{k!r}: {py_source(v)}'
                               for k, v in value.items()) + '}'
    if isinstance(value, tuple):
        if len(value) == 1:
            return f'({py_source(value[0])}, )'
        return '(' + ', '.join(py_source(v) for v in value) + ')'
    if isinstance(value, list):
        return '[' + ', '.join(py_source(v) for v in value) + ']'
    return repr(value)


def config_delta(base_config: str, out_path: str, cuts, head: dict,
                 header: str, checkpoint: dict = None) -> str:
    """The text of a config inheriting ``base_config`` (path relative to
    ``out_path``) with ``cuts``, ``len(cuts)`` copies of ``head`` and the
    backbone's per-unit checkpointing (``dict(full=[...],
    selective=[...])``)."""
    rel = osp.relpath(osp.abspath(base_config),
                      osp.dirname(osp.abspath(out_path)))
    checkpoint = checkpoint or {}
    backbone = [
        f'split_points={py_source([tuple(c) for c in cuts])}',
        f'checkpoint_blocks={py_source(list(checkpoint.get("full", [])))}',
        'selective_checkpoint_blocks='
        f'{py_source(list(checkpoint.get("selective", [])))}']
    lines = [f'# {line}' for line in header.splitlines()]
    lines.append(f'_base_ = {rel!r}')
    lines += ['model = dict(', '    backbone=dict(']
    lines += [f'        {b},' for b in backbone[:-1]]
    lines += [f'        {backbone[-1]}),']
    if not cuts:
        lines += ['    local_heads=None)']
    else:
        lines += ['    local_heads=[']
        lines += [f'        {py_source(dict(head))},' for _ in cuts]
        lines += ['    ])']
    return '\n'.join(lines) + '\n'


def plan_json(plan: Plan, pred: dict, e2e: dict) -> dict:
    """``plan.to_json()`` with its prediction (MiB, and as multiples of
    the predicted E2E step ``e2e``)."""
    out = plan.to_json()
    out.update(predicted_peak_mib=pred['peak'] / MiB,
               predicted_module_peaks_mib=[v / MiB for v in pred['modules']],
               predicted_phases=pred['phases'],
               predicted_ratio=pred['peak'] / e2e['peak'],
               predicted_flops_ratio=pred['flops'] / e2e['flops'])
    return out


def _infeasible(found: dict, budget: float, max_modules: int,
                e2e_pred: dict, result: dict) -> PlanningError:
    """The error of a budget nothing fits, naming the smallest reachable
    peak and what every module holds whatever the plan."""
    low = found['lowest']
    parts = low['parts']
    text = (
        f'nothing fits {budget / MiB:.1f} MiB: the smallest '
        f'reachable peak (K <= {max_modules}, every '
        'checkpointing mode) is '
        f'{low["peak"] / MiB:.1f} MiB, with '
        f'{describe(low["plan"], low["prediction"], e2e_pred)}. '
        f'It is module {low["module"] + 1}\'s {low["phase"]} '
        'phase; what every module holds whatever the plan: '
        'parameters + optimizer states + buffers '
        f'{parts["parameters_optimizer_buffers"] / MiB:.1f} MiB, '
        f'the batch {parts["data"] / MiB:.1f} MiB; the final '
        'heads\' working set is '
        f'{parts["final_heads_working_set"] / MiB:.1f} MiB. '
        'Lower the batch or crop (--batch, --size), or raise '
        '--max-modules.')
    result.update(feasible=False, lowest_peak_mib=low['peak'] / MiB,
                  lowest_plan=plan_json(low['plan'], low['prediction'],
                                        e2e_pred),
                  message=text)
    return PlanningError(text, result)


def _verify(cfg, plan: Plan, pred: dict, e2e_pred: dict, e2e, size, batch,
            device, fake, seed) -> tuple:
    """``(measured, e2e, attempt)``: the plan's measured step (and the E2E
    step's unless given), the attempt's JSON."""
    measured = measure_schedule(cfg, 'plan', plan.cuts, size, batch, device,
                                fake, seed, checkpoint=plan.checkpoint(),
                                flops=True)
    if e2e is None:
        e2e = measure_schedule(cfg, 'e2e', [], size, batch, device, fake,
                               seed, flops=True)
    verified = dict(
        measured_peak_mib=measured['peak'] / MiB,
        measured_module_peaks_mib=[v / MiB for v in measured['module_peaks']],
        measured_e2e_mib=e2e['peak'] / MiB,
        measured_ratio=measured['peak'] / e2e['peak'],
        measured_flops_ratio=measured['flops'] / e2e['flops'],
        prediction_error=pred['peak'] / measured['peak'] - 1)
    return measured, e2e, dict(plan_json(plan, pred, e2e_pred), **verified)


def write_plan_config(path: str, config: str, cfg: Config, plan: Plan,
                      header: str) -> None:
    """Write :func:`config_delta` of ``plan`` (inheriting ``config``, the
    config's first local head repeated) to ``path``."""
    head = local_head_template(cfg.model)
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'w') as f:
        f.write(config_delta(config, path, plan.cuts, head, header,
                             plan.checkpoint()))


def plan_splits(config: Union[str, Config], num_modules: Optional[int] = None,
                memory_budget=None, pareto: bool = False,
                max_modules: int = 8, budgets: int = 24,
                batch: Optional[int] = None,
                size: Optional[Sequence[int]] = None, fake: bool = False,
                device: str = 'cpu', verify: bool = True,
                write: Optional[str] = None, seed: int = 0,
                command: Optional[str] = None,
                log: Optional[Callable[[str], None]] = None,
                show: Optional[object] = None) -> dict:
    """Plan ``config`` (a path or a Config) in one of three modes (give
    exactly one of ``num_modules``, ``memory_budget``: bytes or ``('x',
    fraction of the predicted E2E peak)``, or ``pareto``) and return the
    dict ``tools/plan_splits.py --out`` writes (for ``pareto``: with the
    front, :func:`~mmseg_infopro.memory.planning.pareto_front`). Raises
    :class:`PlanningError` when nothing fits the budget (its ``result`` is
    the dict to save) or when no plan was measured within it.

    ``show`` (optional) is told what happens, as it happens:
    ``show.plan(plan, prediction, e2e_prediction, runner_ups,
    num_modules)``, ``show.verified(measured, e2e, prediction,
    e2e_prediction, verified)`` and ``show.front(front, e2e_prediction)``;
    ``log`` gets progress lines."""
    if sum((num_modules is not None, memory_budget is not None,
            bool(pareto))) != 1:
        raise ValueError('give exactly one of num_modules, memory_budget '
                         'and pareto')
    log = log or (lambda msg: None)
    cfg = config if isinstance(config, Config) else Config.fromfile(config)
    config = config if isinstance(config, str) else cfg.filename
    check_cuttable(cfg.model, 'tools/plan_splits.py')
    batch, size = step_shape(cfg, batch, size)
    device = 'cpu' if fake else device
    log(f'{config}: batch {batch}, {size[0]}x{size[1]}'
        f'{" (fake tensors)" if fake else ", " + device}; measuring '
        'every unit')
    profile = measure_profile(
        cfg, batch, size, device=device, fake=fake, seed=seed,
        modes=() if num_modules else ('selective', 'full'))
    e2e_pred = profile.predict(Plan())
    result = dict(command=command, config=config, batch=batch,
                  size=list(size), fake=fake, device=device,
                  optimizer=profile.optimizer,
                  predicted_e2e_mib=e2e_pred['peak'] / MiB,
                  predicted_e2e_gflops=e2e_pred['flops'] / 1e9,
                  profile=profile.to_json())

    if pareto:
        log(f'front: E2E + checkpointing, InfoPro K=2..{max_modules}, '
            f'{budgets} budgets')
        front = pareto_front(profile, max_modules, budgets)
        result.update(front)
        if show:
            show.front(front, e2e_pred)
        return result

    budget = memory_budget
    if isinstance(budget, tuple):  # ('x', fraction of E2E)
        budget = budget[1] * e2e_pred['peak']
        log(f'budget {memory_budget[1]}x the predicted E2E peak: '
            f'{budget / MiB:.1f} MiB')
    attempts, target, e2e = [], budget, None
    for _ in range(4 if budget and verify else 1):
        if num_modules:
            cuts, pred = plan_cuts(profile, num_modules)
            plan, candidates = Plan(cuts), []
        else:
            found = plan_for_budget(profile, target, max_modules)
            if not found['feasible']:
                raise _infeasible(found, budget, max_modules, e2e_pred,
                                  result)
            plan, pred = found['plan'], found['prediction']
            candidates = found['candidates'][1:]
        if show:
            show.plan(plan, pred, e2e_pred, candidates,
                      None if budget else num_modules)
        if not verify:
            break
        log('verifying: measuring the plan and the E2E step')
        measured, e2e, attempt = _verify(cfg, plan, pred, e2e_pred, e2e,
                                         size, batch, device, fake, seed)
        if show:
            show.verified(measured, e2e, pred, e2e_pred, attempt)
        attempts.append(attempt)
        if not budget or measured['peak'] <= budget:
            break
        target -= measured['peak'] - budget + 0.001 * budget
        log(f'measured peak exceeds the budget by '
            f'{(measured["peak"] - budget) / MiB:.1f} MiB: planning again '
            f'for {target / MiB:.1f} MiB')
    else:
        if budget and verify:
            raise PlanningError(
                f'no plan was measured within the budget '
                f'{budget / MiB:.1f} MiB after {len(attempts)} attempts')

    result.update(plan_json(plan, pred, e2e_pred), feasible=True,
                  budget_mib=budget / MiB if budget else None,
                  runner_ups=[plan_json(c['plan'], c['prediction'],
                                        e2e_pred) for c in candidates],
                  attempts=attempts)
    if attempts:
        result.update({k: v for k, v in attempts[-1].items()
                       if k.startswith(('measured', 'prediction'))})
    if write:
        what = f'memory budget {budget / MiB:.0f} MiB' if budget else \
            f'K={num_modules}'
        header = (f'InfoPro plan for {what}, by\n{command}\n'
                  f'(batch {batch}, {size[0]}x{size[1]}, '
                  f'{profile.optimizer}): {describe(plan, pred, e2e_pred)}')
        write_plan_config(write, config, cfg, plan, header)
        log(f'wrote {write}')
    return result
