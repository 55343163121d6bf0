"""Plan a training step: InfoPro cuts and per-unit checkpointing.

Built on the measured model of :mod:`.profile` (every unit's
activations, peaks and FLOPs in each checkpointing mode, every local head,
the final heads, the data and the optimizer step):

* :func:`plan_cuts`: the cuts for K modules that minimise the largest
  module's predicted peak, exactly (:func:`minmax_partition`, one dynamic
  program per sequence of cut shapes, since a local head's size depends on
  the shape it reads);
* :func:`plan_for_budget`: the plan of least FLOPs whose predicted peak
  fits a memory budget: over K = 1 (end to end, with or without
  checkpointing) .. ``max_modules``, the cuts (:func:`minsum_partition`,
  exact for the FLOPs each module needs to fit) and, within every module,
  which units to checkpoint and how (``'selective'``: recompute the cheap
  operations only; ``'full'``: recompute the unit), chosen greedily by
  bytes saved per FLOP recomputed, the module's exact predicted peak checked
  after every step;
* :func:`pareto_front`: peak memory against FLOPs of end to end +
  checkpointing, pure InfoPro K=2..``max_modules`` and the combined plans.
"""
import bisect
import itertools
from typing import Callable, Dict, Iterable, List, Optional, Tuple

from .profile import (MODES, HeadCost, MemoryProfile, ModeCost, Plan,
                      UnitCost)
from .profile_measure import measure_profile

__all__ = [
    'minmax_partition', 'minsum_partition', 'plan_cuts', 'plan_for_budget',
    'pareto_front', 'MemoryProfile', 'measure_profile', 'Plan', 'UnitCost',
    'HeadCost', 'ModeCost', 'MODES'
]


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
    allowed = _check_partition(n, k, allowed)
    cuts, value = _partition_dp(n, k, cost, allowed, max, lambda v: v)
    if cuts is None:
        return [], float('inf')
    balanced, _ = _partition_dp(n, k, cost, allowed,
                                lambda acc, v: acc + v * v, lambda v: v * v,
                                limit=value)
    return balanced, value


def minsum_partition(n: int, k: int, cost: Callable[[int, int, int], float],
                     allowed: Optional[Iterable[int]] = None
                     ) -> Tuple[List[int], float]:
    """Like :func:`minmax_partition`, minimising the *sum* of the group
    costs exactly (one dynamic program, ``O(k * n^2)`` cost evaluations).
    Returns ``([], inf)`` when every partition is forbidden."""
    allowed = _check_partition(n, k, allowed)
    cuts, value = _partition_dp(n, k, cost, allowed,
                                lambda acc, v: acc + v, lambda v: v)
    return ([], float('inf')) if cuts is None else (cuts, value)


def _check_partition(n, k, allowed) -> List[int]:
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
    return allowed


def _partition_dp(n, k, cost, allowed, combine, start,
                  limit=float('inf')):
    """``f[m][e]``: best ``combine``-d value of ``m+1`` groups covering
    items ``0..e-1``, groups costing more than ``limit`` forbidden.
    Returns ``(cuts, value)`` or ``(None, inf)``."""
    inf = float('inf')
    ends = list(allowed) + [n]
    memo: Dict[Tuple[int, int, int], float] = {}

    def c(s, e, m):
        key = (s, e, m)
        if key not in memo:
            memo[key] = float(cost(s, e, m))
        return memo[key]

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
    if f[k - 1][n] == inf:
        return None, inf
    cuts, e = [], n
    for m in range(k - 1, 0, -1):
        e = arg[m][e]
        cuts.append(e)
    return sorted(cuts), f[k - 1][n]


# ------------------------------------------------------------ cut planning
def _head_sequences(profile: MemoryProfile, num_modules: int):
    """Every non-decreasing sequence of cut shapes (head keys) for
    ``num_modules - 1`` cuts, with the local heads it implies, their total
    state and, per module, the earlier heads' gradients. A sequence no
    module can follow (no local head has its keys) is left out."""
    keys = profile.head_keys()
    for seq in itertools.combinations_with_replacement(keys,
                                                       num_modules - 1):
        heads = [profile.local_head('image' if m == 0 else seq[m - 1],
                                    seq[m]) for m in range(len(seq))]
        if any(h is None for h in heads):
            continue
        state = sum(h.state for h in heads)
        grads = [sum(h.params for h in heads[:m])
                 for m in range(num_modules)]
        yield seq, state, grads


def _sequence_costs(profile: MemoryProfile, num_modules: int, value):
    """For every sequence of cut shapes (:func:`_head_sequences`):
    ``(state, grads, cost)``, where ``cost(s, e, m)`` is
    ``value(s, e, m, state, grads)`` for a module whose cut passes the
    sequence's shape, and inf otherwise."""
    n = len(profile.units)
    for seq, state, grads in _head_sequences(profile, num_modules):
        def cost(s, e, m, seq=seq, state=state, grads=grads):
            if m < num_modules - 1 and (
                    e == n or profile.head_key(e) != seq[m]):
                return float('inf')
            return value(s, e, m, state, grads)

        yield state, grads, cost


def _check_modules(profile: MemoryProfile, num_modules: int) -> None:
    allowed = profile.allowed_positions()
    if not isinstance(num_modules, int) or \
            not 1 <= num_modules <= len(allowed) + 1:
        raise ValueError(f'num_modules={num_modules!r} impossible: allowed '
                         f'range is 1..{len(allowed) + 1} for this backbone '
                         f'({len(profile.units)} units)')


def plan_cuts(profile: MemoryProfile, num_modules: int
              ) -> Tuple[List[Tuple[int, int]], dict]:
    """Cuts for ``num_modules`` local modules minimising the largest
    module's predicted peak, without checkpointing (exact). Returns
    ``(cuts, prediction)``.

    For every non-decreasing sequence of cut shapes, the partitions whose
    cuts pass exactly those shapes are searched by
    :func:`minmax_partition` (the local heads' states and the earlier
    heads' gradients are then known per module); the best over the
    sequences wins, ties going to the smaller sum of squared module
    peaks."""
    _check_modules(profile, num_modules)
    if num_modules == 1:
        return [], profile.predict([])
    n = len(profile.units)
    allowed = profile.allowed_positions()
    memo: Dict[Tuple[int, int], float] = {}

    def own(s, e):
        if (s, e) not in memo:
            memo[(s, e)] = profile.module_cost(s, e, num_modules)['peak']
        return memo[(s, e)]

    best = None
    for _, _, cost in _sequence_costs(
            profile, num_modules,
            lambda s, e, m, state, grads: own(s, e) + state + grads[m]):
        positions, value = minmax_partition(n, num_modules, cost, allowed)
        if value == float('inf'):
            continue
        bounds = [0] + positions + [n]
        balance = sum(cost(a, b, m)**2
                      for m, (a, b) in enumerate(zip(bounds, bounds[1:])))
        if best is None or (value, balance) < best[:2]:
            best = (value, balance, positions)
    if best is None:
        raise ValueError(
            f'no partition into {num_modules} modules found: every '
            f'sequence of cut shapes ({profile.head_keys()}) was infeasible '
            f'for the {n} units {profile.names[0]}..{profile.names[-1]}')
    cuts = [profile.names[p] for p in best[2]]
    return cuts, profile.predict(cuts)


# ------------------------------------------------- checkpointing planning
class _ModuleCurves:
    """For a module made of units ``s..e-1``: the checkpointing modes that
    bring its predicted peak down, cheapest first.

    Every unit offers upgrades none -> 'selective' -> 'full' (each kept
    only if it saves bytes; the two merged into none -> 'full' when the
    second step saves more per FLOP than the first, so that the upgrades
    of a unit keep their order). All upgrades of the module are sorted by
    activation bytes saved per recomputed FLOP (free ones first, the
    largest saving first) and applied one after the other; after each, the
    module's exact predicted peak and FLOPs are recorded. The curve is
    that list: ``lookup(limit)`` is the first point whose peak fits."""

    def __init__(self, profile: MemoryProfile, num_modules: int,
                 modes=MODES):
        self.profile, self.k, self.modes = profile, num_modules, modes
        self.cache: Dict[Tuple[int, int], tuple] = {}

    def _upgrades(self, s, e):
        steps = []
        for i in range(s, e):
            u = self.profile.units[i]
            first = i == s
            none = u.mode(None)

            def gain(mode):
                c = u.mode(mode)
                extra = (c.flops_bwd_detached - none.flops_bwd_detached) \
                    if first else (c.flops_bwd - none.flops_bwd)
                return none.act - c.act, max(extra, 0)

            chain, done_act, done_flops = [], 0, 0
            for mode in self.modes:
                if mode not in u.modes:
                    continue
                saved, flops = gain(mode)
                if saved <= done_act:
                    continue
                chain.append([mode, saved - done_act, flops - done_flops])
                done_act, done_flops = saved, flops
            # convex hull: a later step that is more efficient than the
            # one before it is merged into it
            hull = []
            for mode, saved, flops in chain:
                while hull and _ratio(saved, flops) > _ratio(hull[-1][1],
                                                             hull[-1][2]):
                    _, s0, f0 = hull.pop()
                    saved, flops = saved + s0, flops + f0
                hull.append([mode, saved, flops])
            for order, (mode, saved, flops) in enumerate(hull):
                steps.append((-_ratio(saved, flops), -saved, i, order,
                              u.name, mode))
        steps.sort(key=lambda t: t[:4])
        return steps

    def curve(self, s, e):
        if (s, e) not in self.cache:
            modes: Dict[object, str] = {}
            cost = self.profile.module_cost(s, e, self.k, modes)
            points = [(cost['flops'], cost['peak'], dict(modes))]
            for *_, name, mode in self._upgrades(s, e):
                modes[name] = mode
                cost = self.profile.module_cost(s, e, self.k, modes)
                points.append((cost['flops'], cost['peak'], dict(modes)))
            # the lowest peak reached so far, for bisection on a limit
            lows, low = [], float('inf')
            for _, peak, _ in points:
                low = min(low, peak)
                lows.append(-low)
            self.cache[(s, e)] = (points, lows)
        return self.cache[(s, e)]

    def lookup(self, s, e, limit):
        """``(flops, peak, modes)`` of the cheapest point of the curve
        whose peak is ``<= limit``, or None."""
        points, lows = self.curve(s, e)
        i = bisect.bisect_left(lows, -limit)
        return points[i] if i < len(points) else None

    def lowest(self, s, e):
        """The curve's lowest peak and its point."""
        points, _ = self.curve(s, e)
        return min(points, key=lambda p: (p[1], p[0]))


def _ratio(saved, flops):
    return float('inf') if flops <= 0 else saved / flops


def _curves(profile: MemoryProfile, num_modules: int, modes,
            cache: Optional[dict] = None) -> _ModuleCurves:
    """The module curves for K modules; a module's cost depends on K only
    through whether the local-loss targets exist (K > 1), so one set serves
    every K > 1 (shared through ``cache`` across calls)."""
    if cache is None:
        return _ModuleCurves(profile, num_modules, modes)
    key = (num_modules > 1, tuple(modes))
    if key not in cache:
        cache[key] = _ModuleCurves(profile, num_modules, modes)
    return cache[key]


def _plan_k(profile: MemoryProfile, num_modules: int, budget: float,
            curves: _ModuleCurves) -> Optional[Tuple[float, Plan]]:
    """The plan of least predicted FLOPs with ``num_modules`` modules whose
    every module fits ``budget`` (bytes), or None."""
    n = len(profile.units)
    allowed = profile.allowed_positions()

    def flops(s, e, m, state, grads):
        point = curves.lookup(s, e, budget - state - grads[m])
        return float('inf') if point is None else point[0]

    best = None
    for state, grads, cost in _sequence_costs(profile, num_modules, flops):
        positions, value = minsum_partition(n, num_modules, cost, allowed)
        if value == float('inf') or (best and value >= best[0]):
            continue
        bounds = [0] + positions + [n]
        modes: Dict[object, str] = {}
        for m, (a, b) in enumerate(zip(bounds, bounds[1:])):
            modes.update(curves.lookup(a, b, budget - state - grads[m])[2])
        best = (value, Plan([profile.names[p] for p in positions], modes))
    return best


def lowest_peak(profile: MemoryProfile, max_modules: int = 8,
                modes=MODES, cache: Optional[dict] = None) -> dict:
    """The smallest predicted peak reachable with up to ``max_modules``
    modules and any checkpointing, and what dominates it: ``dict(peak,
    plan, module, phase, parts)`` with ``parts`` the byte counts that make
    up the peak module's base (parameters + optimizer states + buffers,
    data, local heads' state)."""
    best = None
    for k in range(1, min(max_modules, len(profile.allowed_positions()) + 1) +
                   1):
        curves = _curves(profile, k, modes, cache)
        n = len(profile.units)

        def lowest(s, e, m, state, grads, curves=curves):
            return curves.lowest(s, e)[1] + state + grads[m]

        for _, _, cost in _sequence_costs(profile, k, lowest):
            positions, value = minmax_partition(
                n, k, cost, profile.allowed_positions())
            if value == float('inf') or (best and value >= best[0]):
                continue
            bounds = [0] + positions + [n]
            modes_all: Dict[object, str] = {}
            for a, b in zip(bounds, bounds[1:]):
                modes_all.update(curves.lowest(a, b)[2])
            best = (value, Plan([profile.names[p] for p in positions],
                                modes_all))
    value, plan = best
    pred = profile.predict(plan)
    m = max(range(len(pred['modules'])), key=pred['modules'].__getitem__)
    return dict(peak=value, plan=plan, prediction=pred, module=m,
                phase=pred['phases'][m],
                parts=dict(
                    parameters_optimizer_buffers=profile.persist(),
                    data=profile.data_local if plan.num_modules > 1
                    else profile.data_e2e,
                    final_heads_working_set=profile.final_peaks_detached[0]))


def plan_for_budget(profile: MemoryProfile, budget: float,
                    max_modules: int = 8, modes=MODES,
                    cache: Optional[dict] = None) -> dict:
    """The plan of least predicted FLOPs whose predicted peak is at most
    ``budget`` bytes, over K = 1 .. ``max_modules``.

    Returns ``dict(feasible=True, plan, prediction, candidates)`` with
    ``candidates`` the best plan for every K that can fit (sorted by
    FLOPs; the first is the plan), or ``dict(feasible=False, lowest=...)``
    (:func:`lowest_peak`) when nothing fits. ``cache`` (a dict) keeps the
    module curves between calls on the same profile."""
    cache = {} if cache is None else cache
    candidates = []
    top = min(max_modules, len(profile.allowed_positions()) + 1)
    for k in range(1, top + 1):
        found = _plan_k(profile, k, budget, _curves(profile, k, modes, cache))
        if found is not None:
            plan = found[1]
            candidates.append(dict(plan=plan,
                                   prediction=profile.predict(plan)))
    if not candidates:
        return dict(feasible=False,
                    lowest=lowest_peak(profile, max_modules, modes, cache))
    candidates.sort(key=lambda c: (c['prediction']['flops'],
                                   c['prediction']['peak']))
    best = candidates[0]
    return dict(feasible=True, plan=best['plan'],
                prediction=best['prediction'], candidates=candidates)


def pareto_front(profile: MemoryProfile, max_modules: int = 8,
                 budgets: int = 24, modes=MODES) -> dict:
    """Predicted peak against FLOPs of:

    * ``checkpointing``: end to end with per-unit checkpointing (the K=1
      curve: each point one more unit checkpointed, cheapest first), and
      every unit fully checkpointed;
    * ``infopro``: pure InfoPro, K = 2 .. ``max_modules``, cuts by
      :func:`plan_cuts`;
    * ``combined``: :func:`plan_for_budget` for ``budgets`` budgets spread
      evenly between the lowest reachable peak and the E2E peak;

    and ``front``, the points of all three no other point beats in both.
    Every point is ``dict(kind, plan (JSON), peak, flops)``."""
    def point(kind, plan, pred=None):
        pred = pred or profile.predict(plan)
        return dict(kind=kind, plan=plan.to_json(), peak=pred['peak'],
                    flops=pred['flops'])

    e2e = point('e2e', Plan())
    ckpt = []
    cache: dict = {}
    curves = _curves(profile, 1, modes, cache)
    for flops, peak, m in curves.curve(0, len(profile.units))[0][1:]:
        ckpt.append(dict(kind='checkpointing', plan=Plan([], m).to_json(),
                         peak=peak, flops=flops))
    if 'full' in modes:
        ckpt.append(point('checkpointing (all units full)',
                          Plan([], {u: 'full' for u in profile.names})))
    infopro = []
    top = min(max_modules, len(profile.allowed_positions()) + 1)
    for k in range(2, top + 1):
        cuts, pred = plan_cuts(profile, k)
        infopro.append(point(f'infopro K={k}', Plan(cuts), pred))
    low = lowest_peak(profile, max_modules, modes, cache)['peak']
    combined = []
    for i in range(budgets):
        budget = low + (e2e['peak'] - low) * i / max(1, budgets - 1)
        result = plan_for_budget(profile, budget, max_modules, modes, cache)
        if result['feasible']:
            p = point('combined', result['plan'], result['prediction'])
            p['budget'] = budget
            combined.append(p)
    everything = [e2e] + ckpt + infopro + combined
    front = [p for p in everything if not any(
        q['peak'] <= p['peak'] and q['flops'] <= p['flops'] and
        (q['peak'] < p['peak'] or q['flops'] < p['flops'])
        for q in everything)]
    front.sort(key=lambda p: p['peak'])
    unique = []
    for p in front:
        if not unique or (p['peak'], p['flops']) != (unique[-1]['peak'],
                                                     unique[-1]['flops']):
            unique.append(p)
    return dict(e2e=e2e, checkpointing=ckpt, infopro=infopro,
                combined=combined, front=unique)
