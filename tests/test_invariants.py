"""The invariants of docs/architecture.md, on the demo model (ResNetV1c-18, 32 base
channels) with real mmseg/mmengine code and small real tensors."""
import copy
import weakref

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MessageHub
from mmengine.optim import OptimWrapper
from mmengine.structures import PixelData
from torch.distributed._tools.mem_tracker import MemTracker

from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmseg.utils import add_prefix

from conftest import DEMO_K2

H, W = 64, 128
# one intra-op thread: much faster for these small steps on a loaded
# 2-core machine (see conftest.single_thread)
pytestmark = pytest.mark.usefixtures('one_thread')


def model_cfg(split_points=((3, 0), ), size=(H, W), **local_head):
    cfg = copy.deepcopy(Config.fromfile(DEMO_K2).model)
    cfg.data_preprocessor.size = size
    cfg.backbone.split_points = [tuple(p) for p in split_points]
    if not split_points:
        cfg.local_heads = None
    else:
        head = dict(cfg.local_heads[0])
        head.update(local_head)
        cfg.local_heads = [head] * len(split_points)
    return cfg


def build(cfg, seed=0):
    torch.manual_seed(seed)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def plain_twin(infopro_cfg):
    """The same network as a stock mmseg EncoderDecoder + ResNetV1c."""
    cfg = copy.deepcopy(infopro_cfg)
    cfg.type = 'EncoderDecoder'
    cfg.backbone.type = 'ResNetV1c'
    cfg.backbone.pop('split_points')
    cfg.pop('local_heads')
    return MODELS.build(cfg)


def make_batch(n=2, seed=1, size=(H, W)):
    H, W = size
    g = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for _ in range(n):
        img = torch.randint(0, 256, (3, H, W), generator=g, dtype=torch.uint8)
        gt = torch.randint(0, 19, (1, H, W), generator=g)
        gt[:, :4] = 255  # some ignored pixels
        sample = SegDataSample(gt_sem_seg=PixelData(data=gt))
        sample.set_metainfo(dict(img_shape=(H, W), ori_shape=(H, W),
                                 pad_shape=(H, W)))
        inputs.append(img)
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def sgd(model, lr=0.1, momentum=0.9, weight_decay=0., **kwargs):
    return OptimWrapper(
        torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum,
                        weight_decay=weight_decay), **kwargs)


def max_diff(a, b):
    return max((x - y).abs().max().item() for x, y in zip(a, b))


def params_of(modules):
    return [p for m in modules for p in m.parameters()]


def test_k1_is_plain_encoder_decoder():
    """Invariant 1: same losses, gradients and weights after one SGD step
    as mmseg's EncoderDecoder from the same initial weights."""
    cfg = model_cfg(split_points=())
    ours = build(cfg)
    theirs = plain_twin(cfg)
    theirs.load_state_dict(ours.state_dict(), strict=True)
    assert ours.num_modules == 1

    batch = make_batch()
    results = []
    for model in (ours, theirs):
        model.train()
        torch.manual_seed(123)  # same dropout masks
        data = model.data_preprocessor(make_batch(), True)
        losses = model.loss(data['inputs'], data['data_samples'])
        torch.manual_seed(7)
        optim = sgd(model, weight_decay=5e-4)
        log = model.train_step(batch, optim)
        grads = None  # update_params zeroed them; recompute below
        results.append((losses, log, model))
    (l1, log1, _), (l2, log2, _) = results
    assert set(l1) == set(l2) == {'decode.loss_ce', 'decode.acc_seg',
                                  'aux.loss_ce', 'aux.acc_seg'}
    for key in l1:
        assert torch.equal(l1[key], l2[key]), key
    for key in ('loss', 'decode.loss_ce', 'aux.loss_ce'):
        assert torch.equal(log1[key], log2[key]), key
    assert max_diff(ours.parameters(), theirs.parameters()) == 0.0
    assert list(ours.state_dict()) == list(theirs.state_dict())

    # gradients of one backward, compared directly
    for model in (ours, theirs):
        model.zero_grad()
        torch.manual_seed(5)
        data = model.data_preprocessor(make_batch(seed=3), True)
        sum(v for k, v in model.loss(data['inputs'], data['data_samples'])
            .items() if 'loss' in k).backward()
    assert max_diff([p.grad for p in ours.parameters()],
                    [p.grad for p in theirs.parameters()]) == 0.0
    del grads


class _Saved:
    """What a saved-tensor pack hook returns: the autograd graph keeps it
    alive exactly as long as it keeps the saved tensor."""

    def __init__(self, tensor):
        self.tensor = tensor


def test_k2_logs_every_module_and_frees_nothing_wrong():
    """The log of a K=2 step: every module's losses, each equal to that
    loss recomputed independently (module 1 through mmseg's plain ResNetV1c
    and the local head, the final losses through mmseg's EncoderDecoder),
    ``loss`` equal to their sum; and module 1's saved activations are all
    released (its backward done) before module 2's first block runs."""
    no_dropout = dict(channels=64, dropout_ratio=0.)
    cfg = model_cfg(task_head=no_dropout)
    cfg.decode_head.dropout_ratio = 0.
    cfg.auxiliary_head.dropout_ratio = 0.
    model = build(cfg)
    model.train()
    # independent references with the weights before the step
    plain = plain_twin(cfg)
    missing, unexpected = plain.load_state_dict(model.state_dict(),
                                                strict=False)
    assert not missing and all(k.startswith('local_heads.')
                               for k in unexpected)
    local_head = copy.deepcopy(model.local_heads[0])
    plain.train(), local_head.train()

    batch = make_batch()
    saved = {1: [], 2: []}
    phase = [1]
    alive_at_module_2 = []

    def pack(tensor):
        holder = _Saved(tensor)
        saved[phase[0]].append(weakref.ref(holder))
        return holder

    def enter_module_2(module, args):
        alive_at_module_2.append(sum(r() is not None for r in saved[1]))
        phase[0] = 2

    # (3, 0): module 2 starts with layer3's first block
    handle = model.backbone.layer3[0].register_forward_pre_hook(
        enter_module_2)
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack,
                                                      lambda h: h.tensor):
            log = model.train_step(batch, sgd(model))
    finally:
        handle.remove()
    assert alive_at_module_2 == [0], alive_at_module_2
    assert len(saved[1]) > 20 and len(saved[2]) > 20  # hooks saw both
    assert all(r() is None for r in saved[2])

    # module 1 by hand: stem + layer1 + layer2 of the plain ResNetV1c
    data = plain.data_preprocessor(batch, True)
    inputs, samples = data['inputs'], data['data_samples']
    gt = torch.stack([s.gt_sem_seg.data for s in samples]).squeeze(1)
    net = plain.backbone
    x = net.maxpool(net.stem(inputs))
    x = net.layer2(net.layer1(x))
    image = torch.stack(batch['inputs']).float().flip(1) / 255  # BGR->RGB
    expected = add_prefix(
        local_head.loss(x, gt, image, torch.ones_like(image[:, :1])), 's1')
    expected.update(plain.loss(inputs, samples))
    assert set(log) == {'loss'} | set(expected)
    assert list(log)[0] == 'loss'
    for key, value in expected.items():
        assert not log[key].requires_grad
        # (parse_losses logs the mean: acc_seg is a 1-element tensor)
        torch.testing.assert_close(log[key], value.detach().mean(),
                                   rtol=1e-5, atol=1e-6,
                                   msg=lambda m: f'{key}: {m}')
    assert {'s1.loss_task', 's1.loss_recons', 'decode.loss_ce',
            'aux.loss_ce'} <= set(expected)
    total = sum(v for k, v in expected.items() if 'loss' in k)
    torch.testing.assert_close(log['loss'], total.detach(), rtol=1e-5,
                               atol=1e-6)


def test_partition_covers_every_parameter_once():
    model = build(model_cfg(split_points=((2, 1), (3, 0), (4, 1))))
    modules = model.local_modules()
    assert len(modules) == 4
    seen = [id(p) for p in params_of(modules)]
    assert len(seen) == len(set(seen))
    assert set(seen) == {id(p) for p in model.parameters()}


def test_isolation_local_weights_zero_freeze_module_1():
    """With local loss weights 0 (and no weight decay) module 1's backbone
    does not move; the rest does."""
    model = build(model_cfg(loss_recons_weight=0., loss_task_weight=0.))
    first, last = model.local_modules()
    before = [p.detach().clone() for p in model.backbone.parameters()]
    first_ids = {id(p) for p in first.parameters()}
    model.train_step(make_batch(), sgd(model))
    moved = {id(p): not torch.equal(b, p)
             for b, p in zip(before, model.backbone.parameters())}
    assert not any(moved[i] for i in first_ids if i in moved)
    assert any(v for i, v in moved.items() if i not in first_ids)


def test_isolation_each_module_is_stepped_by_its_own_loss_only():
    """Invariant 2 through a real optimizer step, K=2, every loss weight
    non-zero: after train_step, module 1's weights equal a reference that
    steps module 1 with its local loss alone, and module 2's (the last
    blocks and the heads) a reference that steps it with the final loss
    alone. The final loss does reach module 1 end to end (checked on
    mmseg's EncoderDecoder), so a leak through the cut would move module
    1's weights far beyond the tolerance."""
    lr, tol = 0.1, 1e-6
    cfg = model_cfg()
    model = build(cfg)
    ref = copy.deepcopy(model)
    initial = copy.deepcopy(model)
    torch.manual_seed(3)  # same dropout masks
    model.train_step(make_batch(), sgd(model, lr=lr, momentum=0.))

    torch.manual_seed(3)
    data = ref.data_preprocessor(make_batch(), True)
    losses = ref.loss(data['inputs'], data['data_samples'])
    own_loss = [
        sum(v for k, v in losses.items() if k.startswith('s1.loss')),
        sum(v for k, v in losses.items()
            if k.startswith(('decode.loss', 'aux.loss')))
    ]
    for loss, module in zip(own_loss, ref.local_modules()):
        params = list(module.parameters())
        grads = torch.autograd.grad(loss, params, retain_graph=True,
                                    allow_unused=True)
        with torch.no_grad():
            for p, g in zip(params, grads):
                if g is not None:
                    p -= lr * g
    for k, (ours, theirs, before) in enumerate(zip(
            model.local_modules(), ref.local_modules(),
            initial.local_modules())):
        assert max_diff(ours.parameters(), theirs.parameters()) < tol, k
        # it moved, by far more than the tolerance
        assert max_diff(ours.parameters(), before.parameters()) > 100 * tol

    # what a leak would add to module 1: the final loss's gradient end to
    # end, on mmseg's EncoderDecoder with the same weights
    plain = plain_twin(cfg)
    plain.load_state_dict(initial.state_dict(), strict=False)
    torch.manual_seed(3)
    data = plain.data_preprocessor(make_batch(), True)
    final = sum(v for k, v in plain.loss(data['inputs'],
                                         data['data_samples']).items()
                if 'loss' in k)
    first_blocks = [plain.backbone.stem, plain.backbone.layer1,
                    plain.backbone.layer2]
    grads = torch.autograd.grad(final, params_of(first_blocks))
    assert lr * max(g.abs().max().item() for g in grads) > 100 * tol


def test_isolation_gradient_comes_from_own_loss_only():
    """Invariant 2, directly: after a step that does not update (the first
    of two accumulated), module k's gradients equal d loss_k / d theta_k."""
    model = build(model_cfg(split_points=((2, 1), (3, 1))))
    model.train()
    optim = sgd(model, accumulative_counts=2)
    torch.manual_seed(11)
    model.train_step(make_batch(), optim)
    got = [[p.grad.clone() for p in m.parameters()]
           for m in model.local_modules()]

    model.zero_grad()
    torch.manual_seed(11)
    data = model.data_preprocessor(make_batch(), True)
    losses = model.loss(data['inputs'], data['data_samples'])
    per_module = [
        sum(v for k, v in losses.items() if k.startswith('s1.loss')),
        sum(v for k, v in losses.items() if k.startswith('s2.loss')),
        sum(v for k, v in losses.items()
            if k.startswith(('decode.loss', 'aux.loss')))
    ]
    for k, module in enumerate(model.local_modules()):
        params = list(module.parameters())
        for j, loss in enumerate(per_module):
            grads = torch.autograd.grad(loss / 2, params, retain_graph=True,
                                        allow_unused=True)
            if j == k:
                assert max_diff(got[k], grads) < 1e-6
            else:  # other modules' losses do not reach module k
                assert all(g is None or not g.any() for g in grads), (k, j)


@pytest.mark.parametrize('clip', [None, dict(max_norm=0.5)])
def test_accumulation_and_clipping_match_update_params(clip):
    """Invariant 6: InfoPro train_step with accumulation 2 (and clipping)
    equals OptimWrapper.update_params on the summed (detached-boundary)
    loss: same weights after 2 and 4 iterations, same logged grad norm."""
    cfg = model_cfg()
    ours = build(cfg)
    ref = copy.deepcopy(ours)
    hub = MessageHub.get_current_instance()
    kw = dict(accumulative_counts=2, clip_grad=clip)
    opt_ours, opt_ref = sgd(ours, **kw), sgd(ref, **kw)
    steps = []
    opt_ours.optimizer.register_step_post_hook(
        lambda optimizer, args, kwargs: steps.append(it))
    for it in range(4):
        batch = make_batch(seed=10 + it)
        before = [p.detach().clone() for p in ours.parameters()]
        torch.manual_seed(it)
        ours.train_step(batch, opt_ours)
        if it % 2 == 0:
            # the first of two accumulated iterations: no optimizer step,
            # no parameter moved, every module's gradient kept
            assert steps == list(range(1, it, 2)), steps
            assert max_diff(ours.parameters(), before) == 0.0
            for module in ours.local_modules():
                assert any(p.grad is not None and p.grad.any()
                           for p in module.parameters())
        else:  # the second: exactly one step
            assert steps == list(range(1, it + 1, 2)), steps
            assert max_diff(ours.parameters(), before) > 0
        norm_ours = hub.get_scalar('train/grad_norm').current() \
            if clip and it % 2 else None
        torch.manual_seed(it)
        with opt_ref.optim_context(ref):
            data = ref.data_preprocessor(batch, True)
            losses = ref.loss(data['inputs'], data['data_samples'])
        loss, _ = ref.parse_losses(losses)
        opt_ref.update_params(loss)
        if norm_ours is not None:
            norm_ref = hub.get_scalar('train/grad_norm').current()
            assert abs(norm_ours - norm_ref) < 1e-5 * max(1., norm_ref)
            assert norm_ref > 0.5  # clipping really was active
        if it % 2:
            assert max_diff(ours.parameters(), ref.parameters()) < 1e-5
    assert max_diff(ours.parameters(), ref.parameters()) < 1e-5


def peak_bytes(model, batch):
    optim = sgd(model)
    tracker = MemTracker()
    tracker.track_external(model, optim.optimizer)
    model.train_step(batch, optim)  # warm-up: optimizer states exist
    with tracker:
        model.train_step(batch, optim)
    return tracker.get_tracker_snapshot('peak')[torch.device('cpu')]['Total']


def test_k2_peak_memory_below_k1():
    """Invariant 3 (MemTracker, deterministic): the same network trained as
    K=2 peaks lower than end to end (with and without the reconstruction
    decoder), and K=3 lower still. At 128x256 the parameters, gradients and
    momentum of this small model are ~40% of the E2E peak, so the ratios
    are far from the full-size ones (docs/benchmarks.md)."""
    size = (128, 256)
    batch = make_batch(n=2, size=size)
    no_recons = dict(recons_head=None, loss_recons_weight=0.)
    k1 = peak_bytes(build(model_cfg(split_points=(), size=size)), batch)
    k2 = peak_bytes(build(model_cfg(size=size)), batch)
    k2_task = peak_bytes(build(model_cfg(size=size, **no_recons)), batch)
    k3_task = peak_bytes(build(model_cfg(split_points=((2, 0), (3, 1)),
                                         size=size, **no_recons)), batch)
    print(f'peak K=1 {k1 / 2**20:.1f} MiB, K=2 {k2 / k1:.3f}x, K=2 without '
          f'decoder {k2_task / k1:.3f}x, K=3 without decoder '
          f'{k3_task / k1:.3f}x')
    assert k2 < 0.85 * k1
    assert k2_task < k2 < k1
    assert k3_task < k2_task
