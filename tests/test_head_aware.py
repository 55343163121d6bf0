"""Local heads that keep accuracy where the final heads read every stage
(issue 23): head-aware local heads (a module's stage outputs fused the way
the final head fuses them), and auxiliary nets of copied later units
(AugLocal, MAN). Small real models of every family, real tensors:

* the new heads' shapes and losses;
* each module's levels, derived from the heads' configs;
* isolation both ways and no orphans, for every mechanism;
* K=1 unchanged; MAN's average follows the live unit;
* export drops the new parts, plain mmseg loads it strictly, same logits;
* the memory tools: the planner predicts head-aware heads as measured,
  the benchmark measures every mechanism.
"""
import copy
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config

from mmseg.registry import MODELS
from mmseg_infopro.engine.lookahead import (auglocal_depth, auglocal_units,
                                            build_lookahead, chain)
from mmseg_infopro.models.heads import (InfoProLocalHead, LocalTaskHead,
                                        MultiLevelTaskHead, fusion_style)

from conftest import REPO, export_model
from test_backbones import (H, W, check_k2_isolation, model_cfg,
                            stock_cfg)
from test_invariants import build, make_batch, max_diff, sgd


MECHANISMS = {
    'fusion': dict(head_aware=True, lookahead=dict(type=None)),
    'auglocal': dict(head_aware=True,
                     lookahead=dict(type='auglocal', depth=2)),
    'man': dict(head_aware=True, lookahead=dict(type='man', momentum=0.9)),
}


@pytest.fixture(autouse=True)
def _one_thread_mmseg_scope(one_thread):
    from mmengine.registry import DefaultScope, init_default_scope
    if DefaultScope.get_current_instance() is None:
        init_default_scope('mmseg')
    yield


# ------------------------------------------------------------ the heads
@pytest.mark.parametrize('fusion', ['concat', 'fpn'])
def test_multi_level_head_shapes_and_loss(fusion):
    torch.manual_seed(0)
    head = MultiLevelTaskHead([8, 16, 24], 5, channels=12, fusion=fusion,
                              dropout_ratio=0.)
    levels = [torch.rand(2, 8, 16, 32), torch.rand(2, 16, 8, 16),
              torch.rand(2, 24, 4, 8)]
    logits = head(levels)
    assert logits.shape == (2, 5, 16, 32)  # at the finest level
    gt = torch.randint(0, 5, (2, 64, 128))
    gt[:, :4] = 255
    out = head.loss(levels, gt)
    up = F.interpolate(head(levels), size=(64, 128), mode='bilinear',
                       align_corners=False)
    expected = F.cross_entropy(up, gt, ignore_index=255)
    assert torch.allclose(out['loss_task'], expected, atol=1e-6)
    out['loss_task'].backward()
    # every level and every parameter takes part
    assert all(p.grad is not None and p.grad.any()
               for p in head.parameters())
    with pytest.raises(ValueError, match='2 levels given, built for 3'):
        head(levels[:2])
    with pytest.raises(ValueError, match="fusion must be one of"):
        MultiLevelTaskHead([8], 5, fusion='sum')


def test_fusion_follows_the_final_head_family():
    assert fusion_style('SegformerHead') == 'concat'
    assert fusion_style('UPerHead') == 'fpn'
    assert fusion_style('mmseg.FPN') == 'fpn'
    assert fusion_style('SomeNewHead') == 'concat'


def test_local_head_reads_levels_only_when_head_aware_and_several():
    common = dict(in_channels=16, num_classes=5,
                  task_head=dict(channels=8), recons_head=dict(
                      channels=(8, 8)))
    plain = InfoProLocalHead(level_channels=[8, 16], head_aware=False,
                             **common)
    assert not plain.reads_levels and isinstance(plain.task_head,
                                                 LocalTaskHead)
    # head-aware is the default
    assert InfoProLocalHead(level_channels=[8, 16], **common).reads_levels
    single = InfoProLocalHead(level_channels=[16], head_aware=True,
                              **common)
    assert not single.reads_levels
    aware = InfoProLocalHead(level_channels=[8, 16], head_aware=True,
                             fusion='fpn', **common)
    assert aware.reads_levels and aware.task_head.in_channels == [8, 16]
    assert aware.task_head.fusion == 'fpn'
    x = torch.rand(2, 16, 8, 16)
    gt = torch.randint(0, 5, (2, 32, 64))
    image, mask = torch.rand(2, 3, 32, 64), torch.ones(2, 1, 32, 64)
    losses = aware.loss(x, gt, image, mask,
                        levels=[torch.rand(2, 8, 16, 32), x])
    assert set(losses) == {'loss_task', 'acc_seg', 'loss_recons'}
    with pytest.raises(ValueError, match='needs the 2 levels'):
        aware.loss(x, gt, image, mask)
    with pytest.raises(ValueError, match='must end with the module output'):
        InfoProLocalHead(level_channels=[8, 12], head_aware=True, **common)


# ------------------------------------------------------------ the levels
@pytest.mark.parametrize('family,stages,with_output,widths', [
    ('MiT', [0], True, [8, 16]),          # cut inside stage 2
    ('Swin', [0, 1], True, [8, 16, 32]),  # + the patch-merged output
    ('ResNetV1c', [], True, None),        # the heads read stages 3, 4
])
def test_module_levels_come_from_the_heads(family, stages, with_output,
                                           widths):
    model = build(model_cfg(family, 'default', **MECHANISMS['fusion']))
    assert model.module_levels(0) == (stages, with_output)
    assert model.level_channels(0) == widths
    head = model.local_heads[0]
    assert head.reads_levels == (widths is not None)


def test_module_ending_a_read_stage_is_one_level():
    """MiT cut before stage 3: stage 2's output is the module output
    itself, a level once."""
    cfg = model_cfg('MiT', [(3, 0)], **MECHANISMS['fusion'])
    model = build(cfg)
    assert model.module_levels(0) == ([0, 1], False)
    assert model.level_channels(0) == [8, 16]
    # a module of stage 1 alone has one level: the plain task head, unless
    # a lookahead adds its (coarser) output as a second level
    cfg = model_cfg('MiT', [(2, 0)], **MECHANISMS['fusion'])
    head = build(cfg).local_heads[0]
    assert not head.reads_levels and isinstance(head.task_head,
                                                LocalTaskHead)
    cfg = model_cfg('MiT', [(2, 0)], **MECHANISMS['man'])
    model = build(cfg)
    head = model.local_heads[0]
    assert head.reads_levels and head.task_head.in_channels == [8, 16]
    model.train_step(make_batch(), sgd(model))


# ------------------------------------------------------------ isolation
@pytest.mark.parametrize('family,mechanism', [
    ('MiT', 'fusion'), ('Swin', 'fusion'), ('MiT', 'auglocal'),
    ('Swin', 'auglocal'), ('ResNetV1c', 'auglocal'), ('MiT', 'man'),
    ('Swin', 'man'), ('ResNetV1c', 'man')])
def test_isolation_and_no_orphans_for_every_mechanism(family, mechanism):
    check_k2_isolation(
        model_cfg(family, 'default', **MECHANISMS[mechanism]),
        (family, mechanism))


def test_the_defaults_are_fusion_and_man_where_the_heads_read_stages():
    """Without options a local head is head-aware and, in a module that
    hands stage outputs to the final heads, gets MAN's lookahead; elsewhere
    (DeepLab's heads read the last stages only) it is the paper's head; the
    paper's head is one option away."""
    from mmseg_infopro.models.segmentors.infopro_encoder_decoder import \
        AUTO_LOOKAHEAD
    for family, levels in (('MiT', True), ('Swin', True),
                           ('ResNetV1c', False)):
        head = build(model_cfg(family, 'default')).local_heads[0]
        assert head.reads_levels == levels, family
        assert (head.lookahead is not None) == levels, family
        if levels:
            assert head.lookahead.type == AUTO_LOOKAHEAD['type']
        paper = build(model_cfg(family, 'default',
                                type='InfoProPaperLocalHead')).local_heads[0]
        assert not paper.reads_levels and paper.lookahead is None
        assert isinstance(paper.task_head, LocalTaskHead)
    with pytest.raises(ValueError, match="paper's plain head"):
        build(model_cfg('MiT', 'default', type='InfoProPaperLocalHead',
                        head_aware=True))


def test_k1_ignores_the_mechanisms():
    cfg = model_cfg('Swin')
    cfg.local_heads = dict(MECHANISMS['man'])
    ours = build(cfg)
    assert len(ours.local_heads) == 0
    stock = MODELS.build(stock_cfg(cfg))
    stock.load_state_dict(ours.state_dict(), strict=True)
    batch = make_batch()
    torch.manual_seed(3)
    log_ours = ours.train_step(batch, sgd(ours))
    torch.manual_seed(3)
    log_stock = stock.train_step(batch, sgd(stock))
    for key in log_stock:
        assert torch.equal(log_ours[key], log_stock[key]), key
    for (name, a), b in zip(ours.named_parameters(), stock.parameters()):
        assert torch.equal(a, b), name


# ------------------------------------------------------------ lookahead
def test_auglocal_sampling_and_depths():
    model = build(model_cfg('ResNetV1c', 'default',
                            **MECHANISMS['auglocal']))
    backbone = model.backbone
    # ResNet-18 after (3, 0): units (3,0) (3,1) (4,0) (4,1); depth 2 picks
    # (3,1) and (4,1); the width-changing (3,0) and (4,0) join them
    assert auglocal_units(backbone, (2, 1), 2) == [(3, 1), (4, 1)]
    assert model.local_heads[0].lookahead.units == [(3, 0), (3, 1), (4, 0),
                                                    (4, 1)]
    assert chain(backbone, (3, 1), [(4, 1)]) == [(4, 0), (4, 1)]
    # the pyramid: from depth to about half of it over the local modules
    assert [auglocal_depth(4, k, 5) for k in range(4)] == [4, 4, 3, 2]
    assert [auglocal_depth(2, k, 8) for k in range(7)] == [2] * 7
    assert auglocal_depth(1, 3, 8) == 1
    with pytest.raises(ValueError, match='lookahead type must be one of'):
        build_lookahead(backbone, 0, 2, type='loco')
    with pytest.raises(ValueError, match='not a local module'):
        build_lookahead(backbone, 1, 2)
    with pytest.raises(ValueError, match='depth must be an int >= 1'):
        build_lookahead(backbone, 0, 2, depth=0)


def test_lookahead_copies_hold_only_their_units():
    model = build(model_cfg('Swin', 'default', **MECHANISMS['man']))
    ahead = model.local_heads[0].lookahead
    assert ahead.units == [(3, 0)]
    names = {n.split('.')[1] for n, _ in ahead.body.named_parameters()}
    assert names == {'2'}  # stages.2 only
    # the average is buffers: no gradient, no optimizer state
    assert list(ahead.ema.parameters()) == []
    assert len(ahead._ema_params()) == len(ahead._live) > 0
    # the copies are the local head's, not the backbone's
    ids = {id(p) for p in model.backbone.parameters()}
    assert not ids & {id(p) for p in ahead.parameters()}


def test_man_average_follows_the_live_unit():
    model = build(model_cfg('MiT', 'default', **MECHANISMS['man']))
    ahead = model.local_heads[0].lookahead
    live = [p.detach().clone() for p in ahead._live]
    assert len(live) > 0
    optim = sgd(model)
    model.train_step(make_batch(), optim)
    # the first step copies the live unit (as it was before the step)
    assert max_diff(ahead._ema_params(), live) == 0
    moved = [p.detach().clone() for p in ahead._live]
    assert max_diff(moved, live) > 0
    model.train_step(make_batch(seed=2), optim)
    expected = [0.9 * a + 0.1 * b for a, b in zip(live, moved)]
    assert max_diff(ahead._ema_params(), expected) < 1e-6


# ------------------------------------------------------------ export
@pytest.mark.parametrize('family,mechanism', [('Swin', 'man'),
                                              ('MiT', 'auglocal')])
def test_export_drops_the_new_parts(family, mechanism, tmp_path):
    cfg = model_cfg(family, 'default', **MECHANISMS[mechanism])
    model = build(cfg)
    model.train_step(make_batch(), sgd(model))
    model.eval()
    out = export_model(model, cfg, tmp_path)
    dropped = set(out['dropped'])
    assert any('.lookahead.' in k for k in dropped)
    assert all(k.startswith('local_heads.') for k in dropped)
    plain = MODELS.build(Config.fromfile(out['config']).model)
    state = torch.load(out['checkpoint'], weights_only=True)['state_dict']
    plain.load_state_dict(state, strict=True)
    plain.eval()
    x = torch.rand(1, 3, H, W)
    meta = [dict(img_shape=(H, W), ori_shape=(H, W), pad_shape=(H, W))]
    with torch.no_grad():
        assert torch.equal(model.inference(x, meta), plain.inference(x, meta))


# ------------------------------------------------------------ memory tools
def _study_cfg(path, **local_head):
    cfg = Config.fromfile(osp.join(REPO, path))
    heads = cfg.model.local_heads
    for head in [heads] if isinstance(heads, dict) else heads:
        head.update(copy.deepcopy(local_head))
    return cfg


def test_planner_costs_head_aware_heads_as_measured():
    """Fake mode, the study's small SegFormer and Swin with head-aware
    heads: the predicted peak of every module equals the measured one
    (within 1%) for cuts whose modules hold one, two or three levels."""
    from mmseg_infopro.memory.planning import measure_profile, plan_cuts
    from mmseg_infopro.memory.tracking import measure_schedule
    size, batch = (64, 128), 2
    for path, plans in (
            ('configs/study/models/segformer_mit-tiny_k2_synthetic.py',
             [[(3, 0)], [(2, 0), (3, 0), (4, 0)], [(4, 0)]]),
            ('configs/study/models/upernet_swin-tiny_k2_synthetic.py',
             [[(3, 0)], [(3, 1)], [(2, 0), (3, 0), (4, 0)]])):
        cfg = _study_cfg(path, head_aware=True)
        profile = measure_profile(cfg, batch, size, fake=True, modes=())
        assert profile.head_by_levels
        assert any(k.count('+') >= 2 for k in profile.local_heads)
        planned, _ = plan_cuts(profile, 3)  # the cut search takes them
        for cuts in plans + [planned]:
            pred = profile.predict(cuts)
            meas = measure_schedule(cfg, 'infopro', cuts, size, batch,
                                    fake=True)
            assert pred['modules'] == pytest.approx(meas['module_peaks'],
                                                    rel=0.01), (path, cuts)


def test_memory_tools_take_every_mechanism():
    """The benchmark measures every mechanism, and the planner predicts
    the measured peaks of MAN and AugLocal (depth 2) heads too; a deeper
    AugLocal (whose depth shrinks with the module) is refused by name."""
    from mmseg_infopro.memory.planning import measure_profile, plan_cuts
    from mmseg_infopro.memory.tracking import measure_schedule
    size, batch = (64, 128), 2
    path = 'configs/study/models/upernet_swin-tiny_k2_synthetic.py'
    peaks = {}
    for name, mech in MECHANISMS.items():
        cfg = _study_cfg(path, **mech)
        peaks[name] = measure_schedule(cfg, 'infopro', [(3, 0)], size,
                                       batch, fake=True)['peak']
        if name == 'fusion':
            continue
        profile = measure_profile(cfg, batch, size, fake=True, modes=())
        assert all('|' in k for k in profile.local_heads)
        planned, _ = plan_cuts(profile, 3)
        for cuts in ([(3, 0)], [(2, 0), (3, 1)], planned):
            pred = profile.predict(cuts)
            meas = measure_schedule(cfg, 'infopro', cuts, size, batch,
                                    fake=True)
            assert pred['modules'] == pytest.approx(
                meas['module_peaks'], rel=0.01), (name, cuts)
    # the auxiliary nets cost memory in the first module's step
    assert peaks['auglocal'] > peaks['fusion']
    cfg = _study_cfg(path, head_aware=True,
                     lookahead=dict(type='auglocal', depth=3))
    with pytest.raises(ValueError, match='depth 3 shrinks with the module'):
        measure_profile(cfg, batch, size, fake=True)


def test_planner_k4_with_heads_that_read_their_input():
    """Swin with feature reconstruction (the head's cost depends on where
    its module starts) and the default heads, K=4: shape sequences that no
    module can follow (two cuts in a stage with one cut point) are left
    out of the search instead of stopping it, and the plan's prediction is
    the measured peak."""
    from mmseg_infopro.memory.planning import measure_profile, plan_cuts
    from mmseg_infopro.memory.tracking import measure_schedule
    size, batch = (128, 128), 2
    cfg = Config.fromfile(
        'configs/study/models/upernet_swin-tiny_k2_synthetic.py')
    cfg.model.backbone.depths = (2, 2, 2, 2)
    cfg.model.local_heads = dict(recons_target='features',
                                 loss_recons_weight=1.0, loss_task_weight=1.0)
    profile = measure_profile(cfg, batch, size, fake=True, modes=())
    assert profile.head_by_input
    keys = profile.head_keys()
    assert profile.local_head(keys[0], keys[0]) is None  # stage 1: 1 point
    cuts, pred = plan_cuts(profile, 4)
    assert len(cuts) == 3
    meas = measure_schedule(cfg, 'infopro', cuts, size, batch, fake=True)
    assert pred['modules'] == pytest.approx(meas['module_peaks'], rel=0.01)
