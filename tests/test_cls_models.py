"""The classification model pieces: CIFAR ResNet (plain and cut-able), the
release's split tables and notation, the local head and its parts."""
import math
import os.path as osp
import sys

import pytest
import torch
import torch.nn.functional as F

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

import mmseg_infopro  # noqa: E402,F401  (compat first)
from mmseg.registry import MODELS  # noqa: E402
from mmseg_infopro.models.backbones.cifar_resnet import (  # noqa: E402
    CifarResNet, InfoProCifarResNet)
from mmseg_infopro.models.backbones.cifar_splits import (  # noqa: E402
    RELEASE_SPLITS, cifar_stage_blocks, release_split_points,
    release_to_split_points)
from mmseg_infopro.models.heads.cls_aux_net import (  # noqa: E402
    AuxClassifier1c2f)
from mmseg_infopro.models.heads.cls_local_head import (  # noqa: E402
    InfoProClsLocalHead)
from mmseg_infopro.models.heads.cls_loss_weights import (  # noqa: E402
    RELEASE_LOSS_WEIGHTS, interpolated_weights, release_loss_weights)
from mmseg_infopro.models.heads.supcon_loss import SupConLoss  # noqa: E402


def _every_release_table():
    for depth, ks in RELEASE_SPLITS['even'].items():
        for k, cuts in ks.items():
            yield 'even', depth, None, k, cuts
    for depth, datasets in RELEASE_SPLITS['balanced'].items():
        for dataset, ks in datasets.items():
            for k, cuts in ks.items():
                yield 'balanced', depth, dataset, k, cuts


def _release_modules(depth, release_cuts):
    """The release's training loop, replayed on names: after the stem
    (stage 0, layer 0) and after every block ``layer{s}[b]`` it closes the
    current local module if ``infopro_config[i] == [s, b]`` (and i <= K-2).
    Returns the units each module runs, in our unit names."""
    n = cifar_stage_blocks(depth)
    k_last = len(release_cuts)  # = K - 1
    modules, current, i = [], [], 0

    def visit(unit, stage, layer):
        nonlocal current, i
        current.append(unit)
        if i <= k_last - 1 and list(release_cuts[i]) == [stage, layer]:
            modules.append(current)
            current, i = [], i + 1

    visit('stem', 0, 0)
    for s in (1, 2, 3):
        for b in range(n[s - 1]):
            visit((s, b), s, b)
    modules.append(current)
    assert i == k_last, 'a release entry was never reached'
    return modules


def _params(parts):
    out = []
    for p in parts:
        out += [p] if isinstance(p, torch.nn.Parameter) else list(
            p.parameters())
    return out


# ----------------------------------------------------------------- backbone
@pytest.mark.parametrize('depth,blocks', [(20, (3, 3, 3)), (32, (5, 5, 5)),
                                          (110, (18, 18, 18))])
def test_depth_to_blocks(depth, blocks):
    assert cifar_stage_blocks(depth) == blocks
    net = CifarResNet(depth)
    assert tuple(len(getattr(net, f'layer{i}')) for i in (1, 2, 3)) == blocks


@pytest.mark.parametrize('depth', [33, 2, 0, '32', 32.0])
def test_bad_depth(depth):
    with pytest.raises(ValueError, match=r'6n\+2.*got'):
        CifarResNet(depth)


def test_cifar_resnet_structure_and_shapes():
    net = MODELS.build(dict(type='CifarResNet', depth=32,
                            out_indices=(0, 1, 2))).eval()
    assert net.conv1.stride == (1, 1) and net.conv1.kernel_size == (3, 3)
    assert net.layer1[0].downsample is None
    for stage, cin, cout in ((2, 16, 32), (3, 32, 64)):
        first = getattr(net, f'layer{stage}')[0]
        conv, norm = first.downsample  # projection shortcut, as the release
        assert conv.kernel_size == (1, 1) and conv.stride == (2, 2)
        assert (conv.in_channels, conv.out_channels) == (cin, cout)
        assert isinstance(norm, torch.nn.BatchNorm2d)
        assert first.conv1.stride == (2, 2)
        assert all(b.downsample is None and b.conv1.stride == (1, 1)
                   for b in getattr(net, f'layer{stage}')[1:])
    outs = net(torch.randn(2, 3, 16, 16))
    assert [tuple(o.shape) for o in outs] == [(2, 16, 16, 16), (2, 32, 8, 8),
                                              (2, 64, 4, 4)]
    # weights by hand: stem + 5 blocks per stage + 2 projections

    def block(cin, c):
        return 9 * cin * c + 9 * c * c + 4 * c
    n = (9 * 3 * 16 + 32 + 5 * block(16, 16) + block(16, 32) +
         4 * block(32, 32) + 16 * 32 + 64 + block(32, 64) +
         4 * block(64, 64) + 32 * 64 + 128)
    assert sum(p.numel() for p in net.parameters()) == n
    assert len(CifarResNet(32)(torch.randn(1, 3, 8, 8))) == 1


def test_bad_out_indices():
    with pytest.raises(ValueError, match=r'0\.\.2.*\(3,\)'):
        CifarResNet(32, out_indices=(3, ))


def test_units_and_registry():
    net = MODELS.build(dict(type='InfoProCifarResNet', depth=20))
    assert net.units() == ['stem'] + [(s, b) for s in (1, 2, 3)
                                      for b in range(3)]
    assert net.plain_type == 'CifarResNet' and net.num_modules == 1
    from mmseg_infopro.models.backbones.base import INFOPRO_TWINS
    assert INFOPRO_TWINS['CifarResNet'] == 'InfoProCifarResNet'


@pytest.mark.parametrize('cuts', [[], [(2, 1)], [(1, 3), (2, 0), (3, 2)],
                                  [(1, 0)]])
def test_module_parts_partition(cuts):
    net = InfoProCifarResNet(depth=32, split_points=cuts)
    assert net.num_modules == len(cuts) + 1
    owned = [id(p) for k in range(net.num_modules)
             for p in _params(net.module_parts(k))]
    assert len(owned) == len(set(owned))
    assert set(owned) == {id(p) for p in net.parameters()}
    # every unit exactly once, in order
    assert sum((net.module_units(k) for k in range(net.num_modules)),
               []) == net.units()


@pytest.mark.parametrize('cuts', [[(2, 1)], [(1, 0), (1, 2), (3, 0)]])
def test_forward_module_chain_equals_forward(cuts):
    torch.manual_seed(0)
    net = InfoProCifarResNet(depth=20, split_points=cuts,
                             out_indices=(0, 1, 2)).eval()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        ref = net(x)
        outs, y = {}, x
        for k in range(net.num_modules):
            y = net.forward_module(k, y, outs)
        got = net.format_outputs(outs)
    assert len(got) == 3
    for a, b in zip(ref, got):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(y, ref[-1], rtol=0, atol=0)


def test_out_channels_at_cuts():
    net = InfoProCifarResNet(depth=32, split_points=[(1, 0), (2, 0), (2, 3),
                                                     (3, 0), (3, 4)])
    assert [net.module_out_channels(k) for k in range(6)] == \
        [16, 16, 32, 32, 64, 64]
    assert [net.module_in_channels(k) for k in range(6)] == \
        [3, 16, 16, 32, 32, 64]
    assert net.module_units(0) == ['stem']
    assert net.module_units(1)[0] == (1, 0)


def test_bad_split_points():
    with pytest.raises(ValueError, match=r'block 5.*0\.\.4'):
        InfoProCifarResNet(depth=32, split_points=[(2, 5)])
    with pytest.raises(ValueError, match=r'stage 4.*1\.\.3'):
        InfoProCifarResNet(depth=32, split_points=[(4, 0)])
    with pytest.raises(ValueError, match='sorted'):
        InfoProCifarResNet(depth=32, split_points=[(2, 1), (1, 2)])
    with pytest.raises(ValueError, match='dict'):
        InfoProCifarResNet(depth=32, split_points=dict(cuts=[[1, 2]]))
    with pytest.raises(ValueError, match="table='even'"):
        InfoProCifarResNet(depth=32, split_points=dict(table='odd',
                                                       num_modules=2))


# ----------------------------------------------------- the release's tables
def test_release_notation_resnet110_k2():
    """Release ResNet-110 K=2: module 0 ends after layer2[8] (even table,
    ``[[2, 8]]``) or after layer1[14] (balanced, ``[[1, 14]]``)."""
    even = release_split_points(110, 2)
    balanced = release_split_points(110, 2, balanced=True)
    assert even == [(2, 9)] and balanced == [(1, 15)]
    net = InfoProCifarResNet(depth=110, split_points=even)
    assert net.module_units(0) == (['stem'] + [(1, b) for b in range(18)] +
                                   [(2, b) for b in range(9)])
    assert net.module_units(0)[-1] == (2, 8)
    net = InfoProCifarResNet(depth=110, split_points=balanced)
    assert net.module_units(0) == ['stem'] + [(1, b) for b in range(15)]
    assert net.module_units(1)[0] == (1, 15)
    # the three ways to say it build the same cuts
    for spec in (dict(release=[[1, 14]]),
                 dict(table='balanced', num_modules=2, dataset='cifar10')):
        assert InfoProCifarResNet(depth=110,
                                  split_points=spec).split_points == balanced
    assert MODELS.build(dict(type='InfoProCifarResNet', depth=110,
                             split_points=dict(table='even', num_modules=2))
                        ).split_points == even


@pytest.mark.parametrize('table,depth,dataset,k,release',
                         list(_every_release_table()))
def test_every_release_table_builds_the_release_modules(
        table, depth, dataset, k, release):
    cuts = release_split_points(depth, k, balanced=table == 'balanced',
                                dataset=dataset or 'cifar10')
    assert cuts == release_to_split_points(release, cifar_stage_blocks(depth))
    net = InfoProCifarResNet(depth=depth, split_points=cuts)
    assert net.num_modules == k
    ours = [net.module_units(i) for i in range(k)]
    assert ours == _release_modules(depth, release)
    assert all(ours), 'a module without units'


def test_release_tables_cover_the_published_runs():
    assert sorted(RELEASE_SPLITS['even'][32]) == [1, 2, 3, 4, 8, 16]
    assert sorted(RELEASE_SPLITS['even'][110]) == [1, 2, 3, 4, 8, 16]
    for depth in (32, 110):
        for k, cuts in RELEASE_SPLITS['even'][depth].items():
            assert len(cuts) == k - 1
    assert sorted(RELEASE_SPLITS['balanced'][110]) == ['cifar10', 'stl10']
    # ResNet-32 K=16 has the stem as a module of its own (release [0, 0])
    assert release_split_points(32, 16)[0] == (1, 0)
    assert release_split_points(32, 3) == [(2, 0), (3, 0)]
    assert release_split_points(110, 3, True, 'stl10') == [(1, 9), (2, 2)]


@pytest.mark.parametrize('release,match', [
    ([[4, 0]], r'\[4, 0\].*stage 4.*0 \(the stem.*1\.\.3'),
    ([[-1, 0]], r'stage -1'),
    ([[1, 18]], r'\[1, 18\].*block 18.*0\.\.17'),
    ([[0, 1]], r'\[0, 1\].*only entry is \[0, 0\]'),
    ([[3, 17]], r'\[3, 17\].*last allowed entry is \[3, 16\]'),
    ([[2, 1], [1, 3]], r'network order'),
    ([[1, 3], [1, 3]], r'distinct'),
])
def test_bad_release_notation(release, match):
    with pytest.raises(ValueError, match=match):
        InfoProCifarResNet(depth=110, split_points=dict(release=release))


@pytest.mark.parametrize('release', [[[1]], [[1, 2, 3]], 'abc', [['1', 2]],
                                     [[1.0, 2]], 5])
def test_bad_release_types(release):
    with pytest.raises(TypeError, match='release split points'):
        release_to_split_points(release, (18, 18, 18))


def test_bad_release_table_lookup():
    with pytest.raises(ValueError, match=r'depth 56.*\[32, 110\]'):
        release_split_points(56, 2)
    with pytest.raises(ValueError, match=r'K=5.*\[1, 2, 3, 4, 8, 16\]'):
        release_split_points(110, 5)
    with pytest.raises(ValueError, match=r'depth 32.*\[110\]'):
        release_split_points(32, 2, balanced=True)
    with pytest.raises(ValueError, match=r"'svhn'.*cifar10"):
        release_split_points(110, 2, balanced=True, dataset='svhn')
    with pytest.raises(ValueError, match=r'K=8.*\[1, 2, 3, 4\]'):
        release_split_points(110, 8, balanced=True)


# ------------------------------------------------------------------- losses
def _supcon_double_loop(z, y, t=0.07, base=0.07):
    z, n, total = z.double(), len(y), 0.0
    for i in range(n):
        denom = sum(math.exp(float(z[i] @ z[a]) / t)
                    for a in range(n) if a != i)
        pos = [p for p in range(n) if p != i and y[p] == y[i]]
        if not pos:
            continue  # counts as 0 in the mean, as in the release
        s = sum(float(z[i] @ z[p]) / t - math.log(denom) for p in pos)
        total += -(t / base) * s / len(pos)
    return total / n


@pytest.mark.parametrize('temperature', [0.07, 0.5])
def test_supcon_against_double_loop(temperature):
    torch.manual_seed(0)
    z = F.normalize(torch.randn(8, 5), dim=1)
    z[5] = z[2]  # tied features
    y = torch.tensor([0, 0, 1, 1, 1, 1, 2, 3])  # 2 and 3 have no positive
    loss = SupConLoss(temperature)(z, y)
    ref = _supcon_double_loop(z, y.tolist(), temperature)
    assert loss.dim() == 0
    assert abs(loss.item() - ref) < 1e-4 * max(1.0, abs(ref))


def test_supcon_edge_cases():
    z = F.normalize(torch.randn(4, 3), dim=1).requires_grad_()
    loss = SupConLoss()(z, torch.arange(4))  # no positives at all
    assert loss.item() == 0.0
    loss = SupConLoss()(z, torch.zeros(4, dtype=torch.long))
    loss.backward()
    assert torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r'\(N, D\)'):
        SupConLoss()(torch.randn(4, 1, 3), torch.zeros(4))


@pytest.mark.parametrize('cin,size,conv,stride', [(16, 8, 32, 2),
                                                  (32, 4, 64, 2),
                                                  (64, 2, 64, 1)])
def test_aux_classifier_1c2f(cin, size, conv, stride):
    x = torch.randn(3, cin, size, size)
    net = MODELS.build(dict(type='AuxClassifier1c2f', in_channels=cin,
                            mode='contrast'))
    assert (net.conv.out_channels, net.conv.stride[0]) == (conv, stride)
    assert net.conv.bias is None
    assert (net.fc1.in_features, net.fc1.out_features) == (conv, 128)
    z = net(x)
    assert z.shape == (3, 128)
    torch.testing.assert_close(z.norm(dim=1), torch.ones(3))
    logits = AuxClassifier1c2f(cin, num_classes=10, mode='softmax')(x)
    assert logits.shape == (3, 10)


def test_aux_classifier_bad_args():
    with pytest.raises(ValueError, match=r'in_channels=24.*\[16, 32, 64\]'):
        AuxClassifier1c2f(24)
    assert AuxClassifier1c2f(24, conv_channels=8, conv_stride=2)(
        torch.randn(2, 24, 4, 4)).shape == (2, 128)
    with pytest.raises(ValueError, match="'ce'"):
        AuxClassifier1c2f(16, mode='ce')


def test_image_recons_decoder():
    dec = MODELS.build(dict(type='ImageReconsDecoder', in_channels=64))
    assert dec.conv1.out_channels == 12 and dec.conv2.out_channels == 3
    x = torch.randn(2, 64, 8, 8)
    rec = dec(x, (32, 32))
    assert rec.shape == (2, 3, 32, 32)
    assert rec.min() > 0 and rec.max() < 1
    target = torch.rand(2, 3, 32, 32)
    loss = dec.loss(x, target)['loss_recons']
    torch.testing.assert_close(loss, F.binary_cross_entropy(rec, target))
    # same size: no resize
    assert dec(torch.randn(1, 64, 32, 32), (32, 32)).shape == (1, 3, 32, 32)


@pytest.mark.parametrize('mode', ['contrast', 'softmax'])
def test_local_head(mode):
    torch.manual_seed(0)
    head = MODELS.build(dict(type='InfoProClsLocalHead', in_channels=32,
                             num_classes=10, loss_recons_weight=5.0,
                             loss_aux_weight=0.5, aux_mode=mode))
    assert head.needs_image
    x = torch.randn(4, 32, 8, 8)
    labels = torch.tensor([0, 1, 1, 3])
    image = torch.rand(4, 3, 16, 16)
    losses = head.loss(x, labels, image)
    keys = {'loss_aux', 'loss_recons'} | (
        {'acc_aux'} if mode == 'softmax' else set())
    assert set(losses) == keys
    head.eval()
    losses = head.loss(x, labels, image)
    torch.testing.assert_close(
        losses['loss_recons'],
        5.0 * head.recons_head.loss(x, image)['loss_recons'])
    out = head.aux_head(x)
    aux = SupConLoss()(out, labels) if mode == 'contrast' else \
        F.cross_entropy(out, labels)
    torch.testing.assert_close(losses['loss_aux'], 0.5 * aux)
    if mode == 'softmax':
        acc = (out.argmax(1) == labels).float().mean() * 100
        torch.testing.assert_close(losses['acc_aux'], acc)
    with pytest.raises(ValueError, match='image'):
        head.loss(x, labels)


def test_local_head_variants_and_errors():
    head = InfoProClsLocalHead(16, 10, recons_head=None)
    assert not head.needs_image
    assert set(head.loss(torch.randn(2, 16, 4, 4),
                         torch.tensor([0, 0]))) == {'loss_aux'}
    with pytest.raises(ValueError, match='both None'):
        InfoProClsLocalHead(16, 10, aux_head=None, recons_head=None)
    with pytest.raises(ValueError, match=r'loss_aux_weight.*-1'):
        InfoProClsLocalHead(16, 10, loss_aux_weight=-1)
    with pytest.raises(ValueError, match="'ce'"):
        InfoProClsLocalHead(16, 10, aux_mode='ce')
    with pytest.raises(ValueError, match='num_classes'):
        InfoProClsLocalHead(16, aux_mode='softmax')
    with pytest.raises(ValueError, match='in_channels'):
        InfoProClsLocalHead()


# ------------------------------------------------------------------ weights
def test_interpolated_weights():
    # K=2: module 0 gets the first pair
    assert interpolated_weights(0, 2, (5, 0.5), (0, 0)) == (5.0, 0.5)
    # K=4, cifar10 ResNet-32 (6, 0) -> (1, 2)
    w = [interpolated_weights(k, 4, (6, 0), (1, 2)) for k in range(3)]
    assert w == [(6.0, 0.0), (3.5, 1.0), (1.0, 2.0)]
    # K=16, cifar10 ResNet-32 (5, 0.05) -> (0.2, 0.5): module 7 is halfway
    a, b = interpolated_weights(7, 16, (5, 0.05), (0.2, 0.5))
    assert math.isclose(a, 2.6) and math.isclose(b, 0.275)
    a, b = interpolated_weights(14, 16, (5, 0.05), (0.2, 0.5))
    assert math.isclose(a, 0.2) and math.isclose(b, 0.5)
    with pytest.raises(ValueError, match=r'0\.\.2.*got 3'):
        interpolated_weights(3, 4, (1, 1), (0, 0))
    with pytest.raises(ValueError, match='>= 2'):
        interpolated_weights(0, 1, (1, 1), (0, 0))


def test_release_loss_weights():
    assert release_loss_weights('cifar10', 110, 2) == dict(
        ixx_1=5, ixy_1=0.5, ixx_2=0, ixy_2=0)
    assert release_loss_weights('cifar10', 110, 2, balanced=True) == dict(
        ixx_1=5, ixy_1=0.1, ixx_2=0, ixy_2=0)
    assert release_loss_weights('stl10', 110, 16)['ixx_2'] == 10
    assert release_loss_weights('svhn', 110, 8) == dict(
        ixx_1=5, ixy_1=0, ixx_2=0.5, ixy_2=2)
    assert set(RELEASE_LOSS_WEIGHTS) == {'cifar10', 'stl10', 'svhn'}
    with pytest.raises(ValueError, match=r"'imagenet'"):
        release_loss_weights('imagenet', 110, 2)
    with pytest.raises(ValueError, match=r'K=3.*\(table, depth, K\)'):
        release_loss_weights('svhn', 110, 3)
    # every run with weights has a split table
    for dataset, tables in RELEASE_LOSS_WEIGHTS.items():
        for table, depths in tables.items():
            for depth, ks in depths.items():
                for k in ks:
                    assert len(release_split_points(
                        depth, k, table == 'balanced', dataset)) == k - 1
