"""Cut planning (mmseg_infopro.memory.planning, tools/plan_splits.py)
and the InfoProMemoryHook in a real Runner."""
import glob
import itertools
import json
import os.path as osp
import random
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from mmseg.registry import MODELS
from mmseg_infopro.models.backbones import \
    normalize_split_points
from mmseg_infopro.models.segmentors import synthetic_seg_batch
from mmseg_infopro.memory.building import build_model
from mmseg_infopro.memory.schedules import (optimizer_kwargs,
                                            schedule_model_cfg,
                                            sgd_optim_wrapper)
from mmseg_infopro.memory.tracking import measure_schedule, measure_step_memory
from mmseg_infopro.memory.profile import Plan
from mmseg_infopro.memory.planning import (lowest_peak, measure_profile,
                                           minmax_partition,
                                           minsum_partition, plan_cuts,
                                           plan_for_budget)

from conftest import DEMO_K2, REPO, demo_cfg

sys.path.insert(0, osp.join(REPO, 'tools'))
import benchmark  # noqa: E402  (tools/benchmark.py)
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


def test_plan_splits_and_benchmark_take_cfg_options(tmp_path):
    """--cfg-options as in tools/train.py: the paper's plain head on the
    demo model with a second module that hands stage 3 to the auxiliary
    head costs fewer FLOPs than the default head there; the planner's
    prediction holds under the option; --write writes the local heads with
    the option and refuses any other option (the config would lose it)."""
    common = [DEMO_K2, '--batch', '2', '--size', '128', '256', '--fake']
    paper = ['--cfg-options', 'model.local_heads.0.type=InfoProPaperLocalHead']
    bench = [common + ['--cuts', '3,0;4,1', '--schedules', 'e2e,infopro',
                       '--quiet', '--flops', '--no-hook'] + extra
             for extra in ([], paper)]
    default, plain = (benchmark.main(argv)['schedules']['infopro']
                      for argv in bench)
    assert plain['flops_ratio'] < default['flops_ratio']
    planned = plan_splits.main(common + ['--num-modules', '3'] + paper)
    assert abs(planned['prediction_error']) < 0.01
    # the written config holds the local heads in full, options included
    out = str(tmp_path / 'p.py')
    plan_splits.main(common + ['--num-modules', '3', '--write', out] + paper)
    heads = Config.fromfile(out).model.local_heads
    assert [h.type for h in heads] == ['InfoProPaperLocalHead'] * 2
    # any other option would be lost: refused by name
    with pytest.raises(SystemExit, match='--cfg-options model.decode_head'):
        plan_splits.main(common + ['--num-modules', '3', '--write', out,
                                   '--cfg-options',
                                   'model.decode_head.channels=8'])


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
            model, optim, synthetic_seg_batch(2, (64, 128), 19))
    mib = [v / 2**20 for v in ref['infopro']['module_peaks']]
    assert [last['mem.s1'], last['mem.s2']] == pytest.approx(mib, rel=0.02)
    assert last['mem.e2e_est'] == pytest.approx(
        ref['e2e']['peak'] / 2**20, rel=0.03)


def test_memory_hook_estimate_formula():
    """e2e_est = start + earlier modules' activations + the last module's
    working set before the optimizer step, or the step if larger; MiB."""
    from mmseg_infopro.memory import InfoProMemoryHook
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
    # what the local heads hold (end to end they do not exist) is left out
    values = InfoProMemoryHook.summarise(
        before, fwd, peaks={0: 700 * mib, 1: 2000 * mib},
        pre_step={1: 800 * mib}, step={1: 2000 * mib},
        local={'start': 40 * mib, 'step': 60 * mib})
    assert values['mem.e2e_est'] == 2000 - 60
    values = InfoProMemoryHook.summarise(
        before, fwd, peaks={0: 700 * mib, 1: 800 * mib},
        pre_step={1: 800 * mib}, step={1: 300 * mib},
        local={'start': 40 * mib, 'step': 60 * mib})
    assert values['mem.e2e_est'] == 100 - 40 + 500 + (800 - 150)
    with pytest.raises(ValueError, match='interval'):
        InfoProMemoryHook(interval=0)


def test_local_head_bytes_counts_heads_grads_and_states():
    """The local heads' parameters, buffers, gradients and optimizer
    states, and nothing of the backbone."""
    from mmengine.config import Config
    from mmseg.registry import MODELS
    from mmseg_infopro.memory.hook import local_head_bytes
    from conftest import DEMO_K2
    model = MODELS.build(Config.fromfile(DEMO_K2).model)
    heads = model.local_heads
    tensors = list(heads.parameters()) + list(heads.buffers())
    own = sum(t.numel() * t.element_size() for t in tensors)
    grads = sum(p.numel() * p.element_size() for p in heads.parameters())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    assert local_head_bytes(model, optimizer) == own
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    assert local_head_bytes(model, optimizer) == own + grads
    optimizer.step()  # a momentum buffer per parameter
    assert local_head_bytes(model, optimizer) == own + 2 * grads
    assert local_head_bytes(model.backbone) == 0


# ------------------------------------------- checkpointing and budgets
@pytest.mark.parametrize('seed', range(4))
def test_minsum_partition_is_optimal(seed):
    """The min-sum DP equals exhaustive search (forbidden groups too)."""
    rng = random.Random(seed)
    inf = float('inf')
    for trial in range(16):
        n = rng.randint(1, 9)
        k = rng.randint(1, n)
        table = {(s, e, m): rng.choice([inf] + [rng.randint(0, 100)] * 4)
                 for s in range(n) for e in range(s + 1, n + 1)
                 for m in range(k)}
        cost = lambda s, e, m, t=table: t[(s, e, m)]  # noqa: E731
        best = None
        for cuts in itertools.combinations(range(1, n), k - 1):
            bounds = [0, *cuts, n]
            value = sum(cost(a, b, m)
                        for m, (a, b) in enumerate(zip(bounds, bounds[1:])))
            best = value if best is None else min(best, value)
        cuts, value = minsum_partition(n, k, cost)
        assert value == best, (n, k, trial)
        if value < inf:
            bounds = [0, *cuts, n]
            assert sum(cost(a, b, m) for m, (a, b) in
                       enumerate(zip(bounds, bounds[1:]))) == value


def _kept_by_forward(model, batch, k):
    """Bytes module ``k``'s forward keeps for its backward (memory after
    its backbone units ran minus before it started), MemTracker."""
    from mmseg_infopro.memory.tracking import PeakTracker
    optim = sgd_optim_wrapper(model, lr=0.01, momentum=0.9)
    tracker = PeakTracker()
    tracker.track_external(model, optim.optimizer)
    readings = {}

    class Probe:
        def before_module(self, j):
            if j == k:
                readings['before'] = tracker.current_total()

        def after_forward(self, j):
            if j == k:
                readings['after'] = tracker.current_total()

    model.module_callbacks.append(Probe())
    with tracker:
        model.train_step(batch, optim)
    return readings['after'] - readings['before']


def test_checkpointing_at_a_detached_module_input_saves_memory(one_thread):
    """mmseg's blocks checkpoint only ``if self.with_cp and
    x.requires_grad``: at a local module's detached input, with_cp does
    nothing (the trap). The backbone's checkpoint_blocks (non-reentrant
    torch.utils.checkpoint) really saves the first block's activations
    there, and gives the same gradients."""
    base = Config.fromfile(DEMO_K2)
    base.model.data_preprocessor.size = (64, 128)
    batch = synthetic_seg_batch(2, (64, 128), 19)
    peaks, grads = {}, {}
    for name, backbone in (
            ('none', {}),
            ('with_cp', dict(with_cp=True)),
            ('ours', dict(checkpoint_blocks=[(3, 0)])),
            ('ours_selective', dict(selective_checkpoint_blocks=[(3, 0)]))):
        cfg = schedule_model_cfg(base, 'infopro', [(3, 0)])
        cfg.backbone.update(backbone)
        model = build_model(cfg)
        if name == 'with_cp':  # on every block, as mmseg's switch does
            assert model.backbone.layer3[0].with_cp
        peaks[name] = _kept_by_forward(model, batch, 1)
        model.zero_grad()
        torch.manual_seed(0)
        data = model.data_preprocessor(batch, True)
        losses = model.loss(data['inputs'], data['data_samples'])
        sum(v for k, v in losses.items() if 'loss' in k).backward()
        grads[name] = [p.grad.clone()
                       for p in model.backbone.layer3[0].parameters()]
    # the trap: module 2 starts at (3, 0), whose input is detached, so
    # with_cp checkpoints layer3[1], layer4[*] but not layer3[0]; ours
    # checkpoints layer3[0] only: what it saves is that block's
    # activations but its output
    assert peaks['with_cp'] < peaks['none']
    assert peaks['ours'] < peaks['none']
    assert peaks['ours_selective'] < peaks['none']
    profile_cfg = Config.fromfile(DEMO_K2)
    unit = measure_profile(profile_cfg, 2, (64, 128), fake=True).units[
        5]  # (3, 0)
    assert unit.name == (3, 0)
    assert peaks['none'] - peaks['ours'] == \
        unit.modes[None].act - unit.modes['full'].act
    for name in ('with_cp', 'ours', 'ours_selective'):
        assert all(torch.allclose(a, b, atol=1e-6)
                   for a, b in zip(grads[name], grads['none'])), name


@pytest.fixture(scope='module')
def demo_profile():
    cfg = Config.fromfile(DEMO_K2)
    with_single = __import__('conftest').single_thread
    with with_single():
        profile = measure_profile(cfg, 2, (96, 192), fake=False)
    return cfg, profile


def test_combined_plans_predicted_within_one_percent(demo_profile,
                                                     one_thread):
    """Cuts plus per-unit checkpointing (both modes, the stem and a
    module's first unit included): predicted against measured peak of the
    step and of every module within 1%, FLOPs within 0.1%."""
    cfg, profile = demo_profile
    size, batch = (96, 192), 2
    plans = [
        Plan([], {'stem': 'full', (1, 1): 'selective', (2, 0): 'full',
                  (4, 1): 'full'}),
        Plan([(3, 0)], {(1, 0): 'selective', (3, 0): 'full',
                        (3, 1): 'selective', (4, 0): 'full'}),
        Plan([(2, 0), (3, 1)], {'stem': 'selective', (2, 0): 'full',
                                (3, 1): 'full', (4, 1): 'selective'}),
    ]
    for plan in plans:
        pred = profile.predict(plan)
        meas = measure_schedule(cfg, 'plan', plan.cuts, size, batch,
                                checkpoint=plan.checkpoint(), flops=True)
        assert pred['peak'] == pytest.approx(meas['peak'], rel=0.01), plan
        assert pred['modules'] == pytest.approx(meas['module_peaks'],
                                                rel=0.01), plan
        assert pred['flops'] == pytest.approx(meas['flops'], rel=0.001)
    # checkpointing costs FLOPs: full recomputation adds some
    assert profile.predict(plans[0])['flops'] > \
        profile.predict(Plan())['flops']


def test_budget_plan_is_cheapest_that_fits_and_is_met(demo_profile,
                                                      one_thread):
    """For budgets between the lowest reachable peak and E2E the plan's
    predicted and measured peaks fit, and it is at most as costly as every
    candidate family that fits (E2E + checkpointing, pure InfoPro)."""
    cfg, profile = demo_profile
    e2e = profile.predict(Plan())
    low = lowest_peak(profile, 4)['peak']
    assert low < e2e['peak']
    for frac in (0.25, 0.6, 0.9):
        budget = low + frac * (e2e['peak'] - low)
        result = plan_for_budget(profile, budget, max_modules=4)
        assert result['feasible']
        plan, pred = result['plan'], result['prediction']
        assert pred['peak'] <= budget
        meas = measure_schedule(cfg, 'plan', plan.cuts, (96, 192), 2,
                                checkpoint=plan.checkpoint())
        assert meas['peak'] <= budget * 1.01
        for k in range(2, 5):  # pure InfoPro that fits is not cheaper
            cuts, p = plan_cuts(profile, k)
            if p['peak'] <= budget:
                assert pred['flops'] <= p['flops']
        for other in result['candidates']:
            assert other['prediction']['peak'] <= budget
            assert other['prediction']['flops'] >= pred['flops']
    # a budget E2E fits needs no checkpointing and no extra FLOPs (a cut
    # may even save some: the first block of a later module computes no
    # input gradient, which here costs more than the small local head)
    result = plan_for_budget(profile, e2e['peak'] * 1.01, max_modules=4)
    assert not result['plan'].modes
    assert result['prediction']['flops'] <= e2e['flops']


def test_budget_tool_writes_a_config_that_trains(synthetic_root, tmp_path):
    """tools/plan_splits.py --memory-budget: verified (measured <= budget),
    runner-ups printed, the written config holds the plan and trains
    through tools/train.py in the demo's small setting."""
    out_cfg = tmp_path / 'budget.py'
    shape = ['--batch', '2', '--size', '128', '256', '--fake']
    budget = 68.0  # MiB: E2E needs about 81 here, the floor is about 57
    plan = plan_splits.main([
        DEMO_K2, '--memory-budget', f'{budget}MiB', '--max-modules', '3',
        '--write', str(out_cfg), '--out', str(tmp_path / 'plan.json')
    ] + shape)
    assert plan['measured_e2e_mib'] > budget
    assert plan['feasible'] and plan['measured_peak_mib'] <= budget
    assert abs(plan['prediction_error']) < 0.01
    cfg = Config.fromfile(str(out_cfg))
    assert [list(c) for c in cfg.model.backbone.split_points] == \
        plan['cuts']
    assert [list(u) if u != 'stem' else u
            for u in cfg.model.backbone.checkpoint_blocks] == \
        plan['checkpoint_blocks']
    assert len(cfg.model.local_heads or []) == len(plan['cuts'])
    assert plan['cuts'] or plan['checkpoint_blocks'] or \
        plan['selective_checkpoint_blocks']
    train = __import__('train')  # tools/train.py
    work = tmp_path / 'work'
    train.main([str(out_cfg), '--work-dir', str(work), '--cfg-options',
                f'train_dataloader.dataset.data_root={synthetic_root}',
                f'val_dataloader.dataset.data_root={synthetic_root}',
                f'test_dataloader.dataset.data_root={synthetic_root}',
                'train_dataloader.num_workers=0',
                'train_dataloader.persistent_workers=False',
                'val_dataloader.num_workers=0',
                'val_dataloader.persistent_workers=False',
                'test_dataloader.num_workers=0',
                'test_dataloader.persistent_workers=False',
                'train_dataloader.batch_size=2',
                'model.data_preprocessor.size=[64,128]',
                'train_cfg.max_iters=2', 'train_cfg.val_interval=2',
                'param_scheduler.0.end=2',
                'default_hooks.checkpoint.interval=2',
                'custom_hooks=[]', 'visualizer.name=budget_visualizer'])
    assert (work / 'iter_2.pth').exists()


def test_infeasible_budget_names_the_smallest_reachable_peak(demo_profile,
                                                             capsys):
    cfg, profile = demo_profile
    low = lowest_peak(profile, 3)
    result = plan_for_budget(profile, low['peak'] * 0.9, max_modules=3)
    assert not result['feasible']
    assert result['lowest']['peak'] == low['peak']
    with pytest.raises(SystemExit) as info:
        plan_splits.main([DEMO_K2, '--memory-budget', '1MiB', '--batch',
                          '2', '--size', '64', '128', '--max-modules', '2',
                          '--fake'])
    text = str(info.value)
    assert 'nothing fits 1.0 MiB' in text
    assert 'smallest reachable peak' in text and 'parameters' in text


def test_pareto_front_tool(tmp_path):
    pytest.importorskip('matplotlib')
    out = plan_splits.main([
        DEMO_K2, '--pareto', '--max-modules', '3', '--budgets', '5',
        '--batch', '2', '--size', '64', '128', '--fake',
        '--out', str(tmp_path / 'front.json'),
        '--plot', str(tmp_path / 'front.png')])
    assert (tmp_path / 'front.png').stat().st_size > 1000
    saved = json.loads((tmp_path / 'front.json').read_text())
    assert saved['front'] == out['front']
    kinds = {p['kind'] for p in out['front'] + out['checkpointing'] +
             out['infopro'] + out['combined'] + [out['e2e']]}
    assert {'e2e', 'checkpointing', 'infopro K=2', 'combined'} <= kinds
    front = out['front']
    for p in front:  # nothing on the front is dominated
        assert not any(q['peak'] <= p['peak'] and q['flops'] < p['flops']
                       for q in front)
