"""InfoProResNetV1c, the local heads and the segmentor's build-time checks
(issue 2, items 3-5): real mmseg modules on small tensors."""
import copy

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config

from mmseg.registry import MODELS

from conftest import captured_log, DEMO_K2
from test_invariants import build, make_batch, model_cfg, plain_twin, sgd


# one intra-op thread: much faster for these small steps on a loaded
# 2-core machine (see conftest.single_thread)
pytestmark = pytest.mark.usefixtures('one_thread')


def backbone(split_points=(), depth=18, **kw):
    return MODELS.build(
        dict(type='InfoProResNetV1c', depth=depth, stem_channels=16,
             base_channels=16, split_points=split_points, **kw))


# ------------------------------------------------------------- backbone
@pytest.mark.parametrize('points, exc, words', [
    ([(5, 0)], ValueError, ['(5, 0)', 'stage 5', '1..4']),
    ([(0, 1)], ValueError, ['stage 0', '1..4']),
    ([(2, 2)], ValueError, ['(2, 2)', 'block 2', '0..1']),
    ([(3, -1)], ValueError, ['block -1', '0..1']),
    ([(3, 0), (2, 1)], ValueError, ['sorted', '(2, 1)', '(3, 0)']),
    ([(2, 1), (2, 1)], ValueError, ['duplicate', '(2, 1)']),
    ([(1, 0)], ValueError, ['(1, 0)', 'very first block', '(1, 1)']),
    ('3,13', TypeError, ["'3,13'", '(stage, block)']),
    ('auto', ValueError, ["'auto'", 'tools/plan_splits.py', '--write']),
    ([(3, )], TypeError, ['(3,)', 'pair']),
    ([(3.0, 1)], TypeError, ['(3.0, 1)', 'ints']),
    ([(1, 1)] * 8, ValueError, ['8 entries', '8 blocks', 'at most 7']),
])
def test_bad_split_points_are_named(points, exc, words):
    with pytest.raises(exc) as info:
        backbone(points)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_paper_cut_on_resnet101():
    net = MODELS.build(dict(type='InfoProResNetV1c', depth=101,
                            split_points=[(3, 13)]))
    assert net.num_modules == 2
    assert net.module_units(0) == ['stem'] + [(1, b) for b in range(3)] + [
        (2, b) for b in range(4)] + [(3, b) for b in range(13)]
    assert net.module_units(1) == [(3, b) for b in range(13, 23)] + [
        (4, b) for b in range(3)]
    assert net.module_out_channels(0) == 1024
    with pytest.raises(ValueError, match=r'stage 3 has blocks 0\.\.22'):
        MODELS.build(dict(type='InfoProResNetV1c', depth=101,
                          split_points=[(3, 23)]))


def test_state_dict_keys_and_forward_equal_resnetv1c():
    ours = backbone([(2, 1), (4, 0)], out_indices=(0, 1, 2, 3))
    theirs = MODELS.build(dict(type='ResNetV1c', depth=18, stem_channels=16,
                               base_channels=16))
    assert list(ours.state_dict()) == list(theirs.state_dict())
    theirs.load_state_dict(ours.state_dict(), strict=True)
    ours.eval(), theirs.eval()
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        a, b = ours(x), theirs(x)
        # module by module, as train_step runs it
        outs, h = {}, x
        for k in range(ours.num_modules):
            h = ours.forward_module(k, h, outs)
    assert len(a) == len(b) == 4
    for i, (u, v) in enumerate(zip(a, b)):
        assert torch.equal(u, v)
        assert torch.equal(outs[i], v)


def test_every_k_up_to_number_of_blocks_trains():
    """K = number of blocks (8 for ResNet-18): one local module per block,
    the stem riding with the first."""
    net = backbone()
    cuts = [u for u in net.units() if u not in ('stem', (1, 0))]
    assert len(cuts) == 7
    model = build(model_cfg(split_points=cuts))
    assert model.num_modules == 8
    log = model.train_step(make_batch(), sgd(model))
    assert {f's{k}.loss_task' for k in range(1, 8)} <= set(log)
    assert torch.isfinite(log['loss'])


# ----------------------------------------------------------- local heads
def test_local_head_in_channels_follow_the_cut_and_wrong_value_fails():
    cfg = model_cfg(split_points=((2, 1), (4, 0)))
    model = build(cfg)
    assert [h.in_channels for h in model.local_heads] == [64, 128]
    bad = copy.deepcopy(cfg)
    bad.local_heads = [dict(cfg.local_heads[0], in_channels=64),
                       dict(cfg.local_heads[0], in_channels=64)]
    with pytest.raises(ValueError) as info:
        MODELS.build(bad)
    msg = str(info.value)
    assert 'local_heads[1].in_channels=64' in msg and '128' in msg
    assert '(4, 0)' in msg


def test_local_heads_count_must_match_cuts():
    cfg = model_cfg(split_points=((2, 1), (4, 0)))
    cfg.local_heads = cfg.local_heads[:1]
    with pytest.raises(ValueError, match=r'local_heads has 1 entries.*2 '
                       r'cut\(s\)'):
        MODELS.build(cfg)
    # K=1: local heads given anyway are not used, with a warning
    cfg = model_cfg(split_points=())
    cfg.local_heads = [model_cfg().local_heads[0]]
    with captured_log() as log:
        model = MODELS.build(cfg)
    assert model.num_modules == 1 and len(model.local_heads) == 0
    assert any('K=1' in m and 'not used' in m for m in log), log


def test_single_local_head_dict_is_used_for_every_cut():
    cfg = model_cfg(split_points=((2, 1), (4, 0)))
    cfg.local_heads = cfg.local_heads[0]
    model = MODELS.build(cfg)
    assert len(model.local_heads) == 2


@pytest.mark.parametrize('key, value', [('loss_recons_weight', -1.0),
                                        ('loss_task_weight', 'one'),
                                        ('loss_task_weight', None)])
def test_bad_loss_weights_are_named(key, value):
    with pytest.raises(ValueError) as info:
        MODELS.build(model_cfg(**{key: value}))
    assert key in str(info.value) and repr(value) in str(info.value)


def test_backbone_without_cuts_support_is_rejected():
    cfg = model_cfg()
    cfg.backbone.type = 'ResNetV1c'
    cfg.backbone.pop('split_points')
    with pytest.raises(TypeError, match='InfoProResNetV1c'):
        MODELS.build(cfg)


def test_recons_target_recovers_image_and_masks_padding():
    from mmseg_infopro.models.heads.recons_decoder import \
        reconstruction_target
    cfg = model_cfg()
    model = MODELS.build(cfg)
    batch = make_batch(n=2, size=(50, 100))  # padded to 64x128
    data = model.data_preprocessor(batch, True)
    image, mask = reconstruction_target(data['inputs'], data['data_samples'],
                                        model.data_preprocessor)
    assert image.shape == (2, 3, 64, 128) and mask.shape[-2:] == (64, 128)
    raw = torch.stack(batch['inputs']).float().flip(1) / 255  # BGR->RGB
    assert torch.allclose(image[:, :, :50, :100], raw, atol=1e-5)
    assert mask[:, ..., :50, :100].all()
    assert not mask[:, ..., 50:, :].any() and not mask[:, ..., :, 100:].any()


def manual_task_loss(logits, gt, ignore_index=255):
    """Cross-entropy by hand: -log softmax at the label, averaged over the
    pixels whose label is not ``ignore_index``."""
    logp = torch.log_softmax(logits, dim=1)
    valid = gt != ignore_index
    picked = logp.permute(0, 2, 3, 1)[valid]  # (P, C)
    return -picked.gather(1, gt[valid][:, None]).mean()


@pytest.mark.parametrize('label_size', [(64, 128), (40, 72)])
def test_task_head_upsamples_and_ignores_255(label_size):
    """LocalTaskHead.loss: logits at the feature size (8x16) bilinearly
    upsampled to the label size, cross-entropy averaged over the labelled
    pixels only (a partly 255 label map), the accuracy over the same
    pixels; all-255 labels give 0 and no gradient."""
    model = build(model_cfg())
    head = model.local_heads[0].task_head
    head.eval()  # no dropout: the logits below are the loss's
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, model.local_heads[0].in_channels, 8, 16, generator=g)
    gt = torch.randint(0, 19, (2, ) + label_size, generator=g)
    gt[0, :, :label_size[1] // 2] = 255  # half of image 0 is ignored
    gt[1, :5] = 255
    assert 0.2 < (gt == 255).float().mean() < 0.5
    losses = head.loss(x, gt)
    assert set(losses) == {'loss_task', 'acc_seg'}

    with torch.no_grad():
        small = head(x)
    assert small.shape == (2, 19, 8, 16)
    up = F.interpolate(small, size=label_size, mode='bilinear',
                       align_corners=False)
    expected = manual_task_loss(up, gt)
    torch.testing.assert_close(losses['loss_task'], expected, rtol=1e-5,
                               atol=1e-6)
    # not what the mean over all pixels (the 255 ones counted as 0) or a
    # loss at the feature size would give
    all_pixels = F.cross_entropy(up, gt, ignore_index=255, reduction='sum') \
        / gt.numel()
    assert abs(all_pixels - expected) > 0.1 * expected
    nearest = F.interpolate(gt[:, None].float(), size=(8, 16),
                            mode='nearest')[:, 0].long()
    assert abs(manual_task_loss(small, nearest) - expected) > 1e-3
    valid = gt != 255
    accuracy = (up.argmax(1) == gt)[valid].float().mean() * 100
    torch.testing.assert_close(losses['acc_seg'].reshape(()), accuracy,
                               rtol=1e-4, atol=1e-4)

    # all pixels ignored: 0, and no gradient signal
    xg = x.clone().requires_grad_()
    ignored = head.loss(xg, torch.full_like(gt, 255))
    assert ignored['loss_task'].item() == 0.0
    ignored['loss_task'].backward()
    assert xg.grad is None or not xg.grad.any()


def infopro_and_plain(cfg, train_steps=1):
    """The InfoPro model trained a little (weights and BN statistics away
    from their initial values), and mmseg's EncoderDecoder + ResNetV1c
    with its backbone / decode / auxiliary weights."""
    model = build(cfg)
    optim = sgd(model)
    for it in range(train_steps):
        model.train_step(make_batch(seed=20 + it), optim)
    plain = plain_twin(cfg)
    missing, unexpected = plain.load_state_dict(model.state_dict(),
                                                strict=False)
    assert missing == []
    assert unexpected and all(k.startswith('local_heads.')
                              for k in unexpected)
    return model.eval(), plain.eval()


@pytest.mark.parametrize('test_cfg', [
    dict(mode='whole'),
    dict(mode='slide', crop_size=(48, 64), stride=(32, 48)),
])
def test_inference_is_plain_and_ignores_local_heads(test_cfg):
    """Invariant 5: predict / test_step / the tensor forward of the InfoPro
    model equal those of mmseg's plain EncoderDecoder + ResNetV1c loaded
    with the same backbone, decode and auxiliary weights; changing or
    deleting the local heads' weights changes nothing."""
    cfg = model_cfg()
    cfg.test_cfg = test_cfg
    model, plain = infopro_and_plain(cfg)
    batch = make_batch(n=2, seed=5)

    def outputs(m):
        with torch.no_grad():
            results = m.test_step(batch)
            data = m.data_preprocessor(batch, False)
            tensor = m(data['inputs'], data['data_samples'], mode='tensor')
        return ([r.seg_logits.data for r in results],
                [r.pred_sem_seg.data for r in results], tensor)

    theirs = outputs(plain)
    ours = outputs(model)
    for a, b in zip(ours[0] + ours[1] + [ours[2]],
                    theirs[0] + theirs[1] + [theirs[2]]):
        assert torch.equal(a, b)
    # the predictions are not trivial: several classes
    assert len(torch.unique(torch.stack(ours[1]))) > 1

    # local heads with other weights, then none at all
    with torch.no_grad():
        for p in model.local_heads.parameters():
            p.add_(torch.randn_like(p))
    for m in model.local_heads.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.add_(1.), m.running_var.mul_(3.)
    changed = outputs(model)
    model.local_heads = torch.nn.ModuleList()
    removed = outputs(model)
    for run in (changed, removed):
        for a, b in zip(run[0] + run[1] + [run[2]],
                        theirs[0] + theirs[1] + [theirs[2]]):
            assert torch.equal(a, b)


def test_every_config_builds():
    """Issue 2 item 6: every config in configs/ builds its model
    (pretrained weights cannot be downloaded here: pretrained=None)."""
    import glob
    import os.path as osp
    repo = osp.dirname(osp.dirname(DEMO_K2))
    paths = sorted(glob.glob(osp.join(repo, 'infopro', '*.py')) +
                   glob.glob(osp.join(repo, 'demo', '*.py')))
    assert len(paths) >= 8
    expected = {
        'deeplabv3_r101_k2_cityscapes.py': [(3, 13)],
        'deeplabv3_r101_k1_cityscapes.py': [],
    }
    for path in paths:
        cfg = Config.fromfile(path)
        cfg.model.pretrained = None
        model = MODELS.build(cfg.model)
        name = osp.basename(path)
        assert model.num_modules == len(model.backbone.split_points) + 1
        assert len(model.local_heads) == model.num_modules - 1, name
        if name in expected:
            assert model.backbone.split_points == expected[name], name
        if 'r101' in name:
            assert model.backbone.depth == 101
            assert cfg.model.decode_head.norm_cfg.type == 'SyncBN'
            assert cfg.train_cfg.max_iters == 40000
        if name.endswith('_cityscapes.py'):
            for loader in ('train_dataloader', 'val_dataloader',
                           'test_dataloader'):
                assert cfg[loader].dataset.type == \
                    'CheckedCityscapesDataset', (name, loader)
            assert dict(type='RNGStateHook') in cfg.custom_hooks, name
            assert dict(type='InfoProMemoryHook',
                        interval=50) in cfg.custom_hooks, name
            if model.local_heads:  # SyncBN everywhere in the paper setting
                assert any(isinstance(m, torch.nn.SyncBatchNorm)
                           for m in model.local_heads.modules()), name
        if 'b12' in name or '640x1280' in name:
            head = model.local_heads[0]
            assert (head.loss_recons_weight, head.loss_task_weight) == (
                (1.0, 0.1) if 'b12' in name else (2.0, 1.0))
            assert cfg.optim_wrapper.optimizer.lr == 0.015
        if name == 'deeplabv3_r101_k2_cityscapes.py':
            head = model.local_heads[0]
            weights = (head.loss_recons_weight, head.loss_task_weight)
            assert weights == (1.5, 1.0)
            assert cfg.optim_wrapper.optimizer.lr == 0.01
            assert cfg.train_dataloader.batch_size == 2
            assert tuple(cfg.crop_size) == (512, 1024)


def test_transformer_and_budget_configs():
    """Issue 9 item 6 and issue 10: the SegFormer and Swin configs are
    deltas on mmseg's stock configs (AdamW, the stock heads and data) with
    planned cuts; the budget plans hold their checkpointing lists, which
    inference and export ignore."""
    import os.path as osp
    repo = osp.dirname(osp.dirname(DEMO_K2))

    def load(name):
        cfg = Config.fromfile(osp.join(repo, 'infopro', name))
        cfg.model.pretrained = None
        return cfg

    seg = load('segformer_mit-b5_k2_cityscapes-1024x1024.py')
    assert seg.model.backbone.type == 'InfoProMixVisionTransformer'
    assert seg.model.backbone.num_layers == [3, 6, 40, 3]  # MiT-B5
    assert seg.model.decode_head.type == 'SegformerHead'
    assert seg.optim_wrapper.optimizer.type == 'AdamW'
    assert tuple(seg.crop_size) == (1024, 1024)
    assert seg.model.backbone.init_cfg.type == 'Pretrained'  # stock's
    k4 = load('segformer_mit-b5_k4_cityscapes-1024x1024.py')
    assert len(k4.model.backbone.split_points) == 3
    assert k4.model.backbone.num_layers == [3, 6, 40, 3]
    swin = load('upernet_swin-b_k2_ade20k-512x512.py')
    assert swin.model.backbone.type == 'InfoProSwinTransformer'
    assert swin.model.backbone.depths == [2, 2, 18, 2]  # Swin-B
    assert swin.model.decode_head.type == 'UPerHead'
    assert swin.model.local_heads.recons_target == 'features'
    assert swin.train_dataloader.dataset.type == 'ADE20KDataset'
    for name in ('deeplabv3_r101_budget-0.45x_cityscapes.py',
                 'deeplabv3_r101_budget-0.30x_cityscapes.py'):
        cfg = load(name)
        model = MODELS.build(cfg.model)
        backbone = model.backbone
        assert backbone.checkpoint_blocks and \
            backbone.selective_checkpoint_blocks, name
        assert model.num_modules == len(cfg.model.local_heads) + 1
