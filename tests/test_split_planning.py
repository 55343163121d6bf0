"""Cut planning (mmseg_infopro.utils.split_planning, tools/plan_splits.py)
and the InfoProMemoryHook in a real Runner."""
import glob
import itertools
import json
import os.path as osp
import random
import sys

import pytest
from mmengine.config import Config
from mmengine.runner import Runner

from mmseg.registry import MODELS
from mmseg_infopro.models.backbones import \
    normalize_split_points
from mmseg_infopro.utils.memory import (build_model, measure_schedule,
                                        measure_step_memory,
                                        optimizer_kwargs, schedule_model_cfg,
                                        sgd_optim_wrapper, synthetic_batch)
from mmseg_infopro.utils.split_planning import (measure_profile,
                                                minmax_partition, plan_cuts)

from conftest import DEMO_K2, REPO, demo_cfg

sys.path.insert(0, osp.join(REPO, 'tools'))
import plan_splits  # noqa: E402  (tools/plan_splits.py)


# ---------------------------------------------------------------- solver
def brute_force_partition(n: int, k: int, cost, allowed=None
                          ) -> tuple:
    """The same objective as :func:`minmax_partition` by enumerating every
    partition."""
    allowed = sorted(set(range(1, n) if allowed is None else allowed))
    best = None
    for cuts in itertools.combinations(allowed, k - 1):
        bounds = [0, *cuts, n]
        value = max(cost(a, b, m)
                    for m, (a, b) in enumerate(zip(bounds, bounds[1:])))
        if best is None or value < best[1]:
            best = (list(cuts), value)
    if best is None:
        raise ValueError(f'k={k} groups impossible for n={n} items')
    return best


def _memory_like_costs(rng, n):
    """Costs shaped like module peaks: a start term (gradients and inputs
    of earlier modules), the items' activations, an end term (the head),
    a per-group term (the earlier local heads' gradients)."""
    act = [rng.randint(1, 50) for _ in range(n)]
    start = [rng.randint(0, 20) for _ in range(n)]
    head = [rng.randint(0, 40) for _ in range(n + 1)]
    group = [rng.randint(0, 10) for _ in range(n)]
    return lambda s, e, m: start[s] + sum(act[s:e]) + head[e] + group[m]


@pytest.mark.parametrize('seed', range(6))
def test_minmax_partition_is_optimal(seed):
    """The DP's objective equals exhaustive search for random costs
    (arbitrary, memory-shaped, with forbidden groups), with and without a
    restricted set of cut positions; its cuts achieve that objective."""
    rng = random.Random(seed)
    inf = float('inf')
    for trial in range(16):
        n = rng.randint(1, 9)
        k = rng.randint(1, n)
        if trial % 2:
            table = {(s, e, m): rng.choice([inf] + [rng.randint(0, 100)] * 5)
                     if trial % 4 == 3 else rng.randint(0, 100)
                     for s in range(n) for e in range(s + 1, n + 1)
                     for m in range(k)}
            cost = lambda s, e, m, t=table: t[(s, e, m)]  # noqa: E731
        else:
            cost = _memory_like_costs(rng, n)
        allowed = None
        if trial % 4 == 1 and n > 2:
            allowed = sorted(rng.sample(range(1, n), rng.randint(k - 1,
                                                                 n - 1)))
        num_allowed = n - 1 if allowed is None else len(allowed)
        if k - 1 > num_allowed:
            continue
        cuts, value = minmax_partition(n, k, cost, allowed)
        _, best = brute_force_partition(n, k, cost, allowed)
        assert value == best, (n, k, trial)
        if value == inf:
            continue
        assert len(cuts) == k - 1 and cuts == sorted(set(cuts))
        if allowed is not None:
            assert set(cuts) <= set(allowed)
        bounds = [0, *cuts, n]
        assert max(cost(a, b, m) for m, (a, b) in
                   enumerate(zip(bounds, bounds[1:]))) == value


def test_minmax_partition_prefers_balanced_ties():
    """When the largest group is fixed (a heavy last item), the other
    groups are balanced rather than arbitrary."""
    weights = [1, 1, 1, 1, 1, 1, 100]
    cuts, value = minmax_partition(
        7, 3, lambda s, e, m: sum(weights[s:e]))
    assert value == 100 and cuts == [3, 6]


def test_minmax_partition_errors():
    with pytest.raises(ValueError, match='k=4 groups impossible'):
        minmax_partition(3, 4, lambda s, e, m: 1)
    with pytest.raises(ValueError, match='out of range'):
        minmax_partition(3, 2, lambda s, e, m: 1, allowed=[3])


# -------------------------------------------------------------- planning
def test_plan_on_demo_model_predicts_measured_peak(one_thread):
    """Real tensors: the planner's per-block measurements predict the
    measured peak of every local module of the planned partition (and of
    E2E and the config's own cut); the planned cuts are valid split
    points; planning never loses to the config's hand-picked cut."""
    cfg = Config.fromfile(DEMO_K2)
    size, batch = (96, 192), 2
    profile = measure_profile(cfg, batch, size, fake=False)
    names = profile.names
    assert names[0] == 'stem' and len(names) == 1 + 8  # ResNet-18: 8 blocks

    def measured(cuts):
        return measure_schedule(cfg, 'infopro' if cuts else 'e2e', cuts,
                                size, batch)

    cuts, pred = plan_cuts(profile, 2)
    assert normalize_split_points(cuts, (2, 2, 2, 2)) == cuts
    assert len(cuts) == 1
    for c in (cuts, [(3, 0)], []):
        p, m = profile.predict(c), measured(c)
        assert p['peak'] == pytest.approx(m['peak'], rel=0.01), c
        assert p['modules'] == pytest.approx(m['module_peaks'], rel=0.01), c
    assert pred['peak'] <= profile.predict([(3, 0)])['peak']


def test_plan_splits_tool_writes_loadable_config(tmp_path):
    """tools/plan_splits.py (fake tensors, K=3): verified prediction, and
    the written config inherits the demo config with the planned cuts and
    the demo's local head repeated."""
    out_cfg = tmp_path / 'planned_k3.py'
    plan = plan_splits.main([
        DEMO_K2, '--num-modules', '3', '--batch', '4', '--size', '256',
        '512', '--fake', '--write', str(out_cfg),
        '--out', str(tmp_path / 'plan.json')])
    assert json.loads((tmp_path / 'plan.json').read_text())['cuts'] == \
        plan['cuts']
    assert abs(plan['prediction_error']) < 0.01
    assert plan['measured_ratio'] < 0.75
    cfg = Config.fromfile(str(out_cfg))
    base = Config.fromfile(DEMO_K2)
    assert [list(c) for c in cfg.model.backbone.split_points] == \
        plan['cuts']
    assert len(cfg.model.local_heads) == 2
    assert cfg.model.local_heads[1] == base.model.local_heads[0]
    assert cfg.model.backbone.depth == 18  # the rest is inherited
    model = MODELS.build(cfg.model)
    assert model.num_modules == 3 and len(model.local_heads) == 2


# ------------------------------------------------------------------ hook
def _scalars(work_dir):
    [path] = glob.glob(osp.join(str(work_dir), '*', 'vis_data',
                                'scalars.json'))
    with open(path) as f:
        return [json.loads(line) for line in f]


def test_memory_hook_logs_module_peaks(synthetic_root, tmp_path, one_thread):
    """A 2-iteration Runner run on the CPU with the hook every iteration:
    mem.s1, mem.s2, mem.e2e_est and mem.saving reach the log; the second
    iteration's module peaks are those the benchmark measures for the
    same shapes, and the E2E estimate is within 3% of the measured E2E
    step."""
    cfg = demo_cfg(synthetic_root, tmp_path, max_iters=2,
                   custom_hooks=[dict(type='InfoProMemoryHook',
                                      interval=1)])
    cfg.default_hooks.pop('visualization', None)
    runner = Runner.from_cfg(cfg)
    runner.train()
    records = [r for r in _scalars(tmp_path) if 'mem.s1' in r]
    assert [r['iter'] for r in records] == [1, 2]
    for r in records:
        assert {'mem.s1', 'mem.s2', 'mem.e2e_est', 'mem.saving'} <= set(r)
    [hook] = [h for h in runner.hooks
              if type(h).__name__ == 'InfoProMemoryHook']
    last = hook.last
    assert 0 < last['mem.saving'] < 1
    assert last['mem.e2e_est'] > max(last['mem.s1'], last['mem.s2'])
    # the hook is detached after the run
    assert hook not in runner.model.module_callbacks

    # same model, batch 2 at 64x128, momentum present: the benchmark's
    # measurement of the same step
    base = Config.fromfile(DEMO_K2)
    base.model.data_preprocessor.size = (64, 128)
    ref = {}
    for schedule, cuts in (('infopro', [(3, 0)]), ('e2e', [])):
        model = build_model(schedule_model_cfg(base, schedule, cuts))
        optim = sgd_optim_wrapper(model, **optimizer_kwargs(base))
        ref[schedule] = measure_step_memory(
            model, optim, synthetic_batch(2, (64, 128), 19))
    mib = [v / 2**20 for v in ref['infopro']['module_peaks']]
    assert [last['mem.s1'], last['mem.s2']] == pytest.approx(mib, rel=0.02)
    assert last['mem.e2e_est'] == pytest.approx(
        ref['e2e']['peak'] / 2**20, rel=0.03)


def test_memory_hook_estimate_formula():
    """e2e_est = start + earlier modules' activations + the last module's
    working set before the optimizer step, or the step if larger; MiB."""
    from mmseg_infopro.hooks import InfoProMemoryHook
    mib = 2**20
    before = {0: 100 * mib, 1: 150 * mib}
    fwd = {0: 600 * mib, 1: 700 * mib}
    values = InfoProMemoryHook.summarise(
        before, fwd, peaks={0: 700 * mib, 1: 800 * mib},
        pre_step={1: 800 * mib}, step={1: 300 * mib})
    assert values['mem.s1'] == 700 and values['mem.s2'] == 800
    assert values['mem.e2e_est'] == 100 + 500 + (800 - 150)
    assert values['mem.saving'] == pytest.approx(1 - 800 / 1250)
    # a step larger than everything else is the estimate
    values = InfoProMemoryHook.summarise(
        before, fwd, peaks={0: 700 * mib, 1: 2000 * mib},
        pre_step={1: 800 * mib}, step={1: 2000 * mib})
    assert values['mem.e2e_est'] == 2000
    with pytest.raises(ValueError, match='interval'):
        InfoProMemoryHook(interval=0)
