"""The classification data: readers of the official CIFAR / SVHN / STL-10 /
ImageNet formats (pixels and labels exactly, layouts, named errors), the
transforms, the top-k metric and a dataloader round trip."""
import os
import os.path as osp
import pickle
import sys

import numpy as np
import pytest
import torch

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

import mmseg_infopro  # noqa: E402,F401  (compat first, registers modules)
from mmseg.registry import DATASETS, METRICS, MODELS, TRANSFORMS  # noqa
from mmseg_infopro.datasets.classification import (  # noqa: E402
    CIFAR10Dataset, CIFAR100Dataset, ClsAccuracy, ClsDataFormatError,
    ClsDataNotFoundError, ClsDataSample, ImageNetDataset, PackClsInputs,
    RandomCropWithPadding, RandomResizedCropCls, ResizeCenterCrop,
    STL10Dataset, SVHNDataset, make_synthetic_cifar10,
    make_synthetic_cifar100, make_synthetic_imagenet, make_synthetic_stl10,
    make_synthetic_svhn, write_cifar_batch, write_stl10_bin, write_svhn_mat)
from mmseg_infopro.datasets.classification.synthetic import (  # noqa: E402
    write_cifar_pickle)


@pytest.fixture(autouse=True)
def mmseg_scope():
    """Pipelines are built in mmengine's registry: from the mmseg scope,
    as a Runner with ``default_scope='mmseg'`` does."""
    from mmengine.registry import DefaultScope, init_default_scope
    if DefaultScope.get_current_instance() is None or \
            DefaultScope.get_current_instance().scope_name != 'mmseg':
        init_default_scope('mmseg')


CIFAR_FILES = [f'data_batch_{i}' for i in range(1, 6)] + ['test_batch']


def known_images(n, h, w, seed=0):
    """``(n, h, w, 3)`` uint8 RGB images whose every pixel differs."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def write_flat_cifar10(folder, per_file=2, seed=0):
    """CIFAR-10 files directly in ``folder``; returns ``{file: (rgb,
    labels)}``."""
    os.makedirs(folder, exist_ok=True)
    written = {}
    for i, name in enumerate(CIFAR_FILES):
        rgb = known_images(per_file, 32, 32, seed + i)
        labels = np.arange(per_file) + i
        write_cifar_batch(osp.join(folder, name), rgb, labels)
        written[name] = (rgb, labels)
    write_cifar_pickle(osp.join(folder, 'batches.meta'),
                       dict(label_names=[f'c{i}' for i in range(10)]))
    return written


def items(dataset):
    return [dataset.get_data_info(i) for i in range(len(dataset))]


# --------------------------------------------------------------- CIFAR


def test_cifar10_planes_read_back_as_bgr_hwc(tmp_path):
    root = str(tmp_path)
    rgb = np.zeros((1, 32, 32, 3), np.uint8)
    rgb[0, :, :, 0] = np.arange(1024).reshape(32, 32) % 256  # R plane
    rgb[0, :, :, 1] = 7
    rgb[0, 3, 5, 2] = 200  # one blue pixel at row 3, column 5
    write_flat_cifar10(root)
    write_cifar_batch(osp.join(root, 'test_batch'), rgb, [4])
    # the row of the file is the R plane (row-major), then G, then B
    with open(osp.join(root, 'test_batch'), 'rb') as f:
        raw = pickle.load(f, encoding='bytes')
    assert raw[b'data'].shape == (1, 3072)
    assert raw[b'data'][0, 37] == 37 and raw[b'data'][0, 1024] == 7
    assert raw[b'data'][0, 2048 + 3 * 32 + 5] == 200
    ds = CIFAR10Dataset(data_root=root, test_mode=True)
    assert ds.split == 'test' and len(ds) == 1
    info = ds.get_data_info(0)
    assert info['gt_label'] == 4
    img = info['img']
    assert img.shape == (32, 32, 3) and img.dtype == np.uint8
    np.testing.assert_array_equal(img, rgb[0, :, :, ::-1])
    assert tuple(img[3, 5]) == (200, 7, (3 * 32 + 5) % 256)
    assert info['img_shape'] == (32, 32) == info['ori_shape']
    assert ds.metainfo['classes'] == tuple(f'c{i}' for i in range(10))


def test_cifar10_flat_layout_train_split_in_file_order(tmp_path):
    written = write_flat_cifar10(str(tmp_path))
    ds = CIFAR10Dataset(data_root=str(tmp_path))
    assert ds.split == 'train' and len(ds) == 10
    got = items(ds)
    for i in range(5):
        rgb, labels = written[f'data_batch_{i + 1}']
        for j in range(2):
            np.testing.assert_array_equal(got[2 * i + j]['img'],
                                          rgb[j, :, :, ::-1])
            assert got[2 * i + j]['gt_label'] == labels[j]


def test_cifar10_archive_folder_first_and_generator(tmp_path):
    root = str(tmp_path)
    folder = make_synthetic_cifar10(root, train_per_class=3,
                                    test_per_class=2, seed=1)
    assert folder == osp.join(root, 'cifar-10-batches-py')
    assert sorted(os.listdir(folder)) == sorted(CIFAR_FILES +
                                                ['batches.meta'])
    write_flat_cifar10(root)  # other files directly in root: not used
    train = CIFAR10Dataset(data_root=root, split='train')
    test = DATASETS.build(dict(type='CIFAR10Dataset', data_root=root,
                               test_mode=True))
    assert (len(train), len(test)) == (30, 20)
    for ds, per_class in ((train, 3), (test, 2)):
        labels = [info['gt_label'] for info in items(ds)]
        assert np.bincount(labels, minlength=10).tolist() == [per_class] * 10
    assert train.metainfo['classes'][:2] == ('airplane', 'automobile')
    # generated with the seed: deterministic
    other = str(tmp_path / 'again')
    make_synthetic_cifar10(other, train_per_class=3, test_per_class=2,
                           seed=1)
    np.testing.assert_array_equal(
        CIFAR10Dataset(data_root=other).images, train.images)


def test_cifar10_default_root_relative_to_cwd(tmp_path, monkeypatch):
    make_synthetic_cifar10(str(tmp_path / 'data' / 'cifar10'),
                           train_per_class=1, test_per_class=1)
    monkeypatch.chdir(tmp_path)
    ds = CIFAR10Dataset(test_mode=True)
    assert ds.data_root == 'data/cifar10' and len(ds) == 10


def test_cifar100_fine_labels_and_meta(tmp_path):
    make_synthetic_cifar100(str(tmp_path), train_per_class=2,
                            test_per_class=1)
    train = CIFAR100Dataset(data_root=str(tmp_path))
    test = CIFAR100Dataset(data_root=str(tmp_path), test_mode=True)
    assert (len(train), len(test)) == (200, 100)
    assert sorted(i['gt_label'] for i in items(test)) == list(range(100))
    assert train.metainfo['classes'][99] == 'class_99'
    with pytest.raises(ClsDataNotFoundError, match='cifar-100-python'):
        CIFAR100Dataset(data_root=str(tmp_path / 'missing'))


def test_cifar_missing_file_names_file_and_folders(tmp_path):
    folder = make_synthetic_cifar10(str(tmp_path), 1, 1)
    os.remove(osp.join(folder, 'data_batch_3'))
    with pytest.raises(ClsDataNotFoundError) as info:
        CIFAR10Dataset(data_root=str(tmp_path))
    message = str(info.value)
    assert f'{folder}: missing data_batch_3' in message
    assert f'{tmp_path}: missing data_batch_1' in message
    assert 'cifar-10-python.tar.gz' in message
    # the test split does not need the train batches
    assert len(CIFAR10Dataset(data_root=str(tmp_path), test_mode=True)) == 10
    with pytest.raises(ClsDataNotFoundError, match='no such directory'):
        CIFAR10Dataset(data_root=str(tmp_path / 'nowhere'))


@pytest.mark.parametrize('entry, match', [
    (dict(data=np.zeros((2, 3000), np.uint8), labels=[0, 1]),
     r"shape \(2, 3000\); expected \(N, 3072\): rows of length 3072"),
    (dict(data=np.zeros((2, 3072), np.uint8), labels=[0, 1, 2]),
     r"holds 3 labels .* for 2 images"),
    (dict(data=np.zeros((3, 3072), np.uint8), labels=[0, 10, 3]),
     r'label 10 at index 1 is out of range 0\.\.9'),
    (dict(data=np.zeros((1, 3072), np.float32), labels=[0]),
     'expected uint8'),
    (dict(images=np.zeros((1, 3072), np.uint8), labels=[0]),
     r"has no key 'data' \(keys: \['images', 'labels'\]\)"),
])
def test_cifar_bad_batch_is_named(tmp_path, entry, match):
    folder = make_synthetic_cifar10(str(tmp_path), 1, 1)
    path = osp.join(folder, 'test_batch')
    write_cifar_pickle(path, entry)
    with pytest.raises(ClsDataFormatError, match=match) as info:
        CIFAR10Dataset(data_root=str(tmp_path), test_mode=True)
    assert str(info.value).startswith(path)


def test_cifar_unreadable_pickle_and_meta(tmp_path):
    folder = make_synthetic_cifar10(str(tmp_path), 1, 1)
    with open(osp.join(folder, 'test_batch'), 'wb') as f:
        f.write(b'not a pickle at all')
    with pytest.raises(ClsDataFormatError,
                       match=r'test_batch: cannot unpickle'):
        CIFAR10Dataset(data_root=str(tmp_path), test_mode=True)
    write_cifar_pickle(osp.join(folder, 'batches.meta'),
                       dict(label_names=['a', 'b']))
    with pytest.raises(ClsDataFormatError,
                       match=r"batches.meta: 'label_names' holds 2 names"):
        CIFAR10Dataset(data_root=str(tmp_path))


def test_in_memory_dataset_lazy_init_indices_and_pickling(tmp_path):
    root = str(tmp_path)
    make_synthetic_cifar10(root, 2, 1)
    full = CIFAR10Dataset(data_root=root)
    lazy = CIFAR10Dataset(data_root=root, lazy_init=True)
    assert lazy.images is None and not lazy._fully_initialized
    np.testing.assert_array_equal(lazy[3]['img'], full[3]['img'])
    assert lazy._fully_initialized
    sub = CIFAR10Dataset(data_root=root, indices=[5, 2])
    assert len(sub) == 2
    for i, j in ((0, 5), (1, 2)):
        np.testing.assert_array_equal(sub.get_data_info(i)['img'],
                                      full.get_data_info(j)['img'])
        assert sub.get_data_info(i)['sample_idx'] == i
    part = full.get_subset([7])
    assert part.get_data_info(0)['gt_label'] == \
        full.get_data_info(7)['gt_label']
    raw = CIFAR10Dataset(data_root=root, serialize_data=False)
    np.testing.assert_array_equal(raw[4]['img'], full[4]['img'])
    copy = pickle.loads(pickle.dumps(full))  # spawned workers
    np.testing.assert_array_equal(copy[9]['img'], full[9]['img'])
    # items are copies: a transform writing into one leaves the data
    full[0]['img'][:] = 0
    assert full[0]['img'].any()
    with pytest.raises(ValueError, match=r"split must be one of"):
        CIFAR10Dataset(data_root=root, split='val')


# ---------------------------------------------------------------- SVHN


def test_svhn_mat_pixels_and_label_10_is_digit_0(tmp_path):
    from scipy.io import savemat
    rgb = known_images(3, 32, 32)
    savemat(str(tmp_path / 'test_32x32.mat'),
            dict(X=rgb.transpose(1, 2, 3, 0),
                 y=np.array([[10], [1], [9]], np.uint8)))
    ds = SVHNDataset(data_root=str(tmp_path), test_mode=True)
    got = items(ds)
    assert [i['gt_label'] for i in got] == [0, 1, 9]
    for i in range(3):
        np.testing.assert_array_equal(got[i]['img'], rgb[i, :, :, ::-1])
    assert ds.metainfo['classes'] == tuple('0123456789')
    # the writer uses the same convention; extra split
    write_svhn_mat(str(tmp_path / 'extra_32x32.mat'), rgb, [0, 5, 3])
    extra = SVHNDataset(data_root=str(tmp_path), split='extra')
    assert [i['gt_label'] for i in items(extra)] == [0, 5, 3]
    make_synthetic_svhn(str(tmp_path / 'gen'), 2, 1)
    assert len(SVHNDataset(data_root=str(tmp_path / 'gen'))) == 20


def test_svhn_errors(tmp_path):
    with pytest.raises(ClsDataNotFoundError,
                       match=r'train_32x32\.mat(.|\n)*no such directory'):
        SVHNDataset(data_root=str(tmp_path / 'svhn'))
    from scipy.io import savemat
    path = str(tmp_path / 'train_32x32.mat')
    savemat(path, dict(X=np.zeros((32, 32, 3, 2), np.uint8),
                       y=np.array([[3], [0]])))
    with pytest.raises(ClsDataFormatError,
                       match=r'label 0 at index 1 is out of range 1\.\.10 '
                       r'\(SVHN writes the digit 0 as 10\)'):
        SVHNDataset(data_root=str(tmp_path))
    savemat(path, dict(X=np.zeros((32, 32, 2), np.uint8), y=[[1]]))
    with pytest.raises(ClsDataFormatError,
                       match=r"'X' has shape \(32, 32, 2\)"):
        SVHNDataset(data_root=str(tmp_path))
    with open(path, 'wb') as f:
        f.write(b'garbage')
    with pytest.raises(ClsDataFormatError, match='cannot read it'):
        SVHNDataset(data_root=str(tmp_path))


# -------------------------------------------------------------- STL-10


def test_stl10_column_major_orientation(tmp_path):
    folder = str(tmp_path / 'stl10_binary')
    os.makedirs(folder)
    rgb = np.zeros((96, 96, 3), np.uint8)
    rgb[..., 0] = np.arange(96)[:, None]  # R: the row index
    rgb[..., 1] = np.arange(96)[None, :] + 100  # G: the column index
    rgb[10:20, 0:5, 2] = 255  # B: a tall thin bar at the left
    # MATLAB column-major bytes: row index fastest, then column, channel
    rgb.ravel(order='F').tofile(osp.join(folder, 'train_X.bin'))
    np.array([10], np.uint8).tofile(osp.join(folder, 'train_y.bin'))
    ds = STL10Dataset(data_root=str(tmp_path))
    info = ds.get_data_info(0)
    assert info['gt_label'] == 9 and info['img'].shape == (96, 96, 3)
    np.testing.assert_array_equal(info['img'], rgb[..., ::-1])
    assert tuple(info['img'][15, 2]) == (255, 102, 15)
    assert ds.metainfo['classes'][0] == 'airplane'
    # the writer stores the same bytes
    write_stl10_bin(str(tmp_path / 'w'), 'train', rgb[None], [9])
    assert open(osp.join(tmp_path, 'w', 'train_X.bin'), 'rb').read() == \
        rgb.tobytes(order='F')


def test_stl10_generated_flat_and_errors(tmp_path):
    folder = make_synthetic_stl10(str(tmp_path), 1, 1)
    for name in os.listdir(folder):
        os.replace(osp.join(folder, name), osp.join(tmp_path, name))
    with open(tmp_path / 'class_names.txt', 'w') as f:
        f.write('\n'.join(f'n{i}' for i in range(10)))
    ds = STL10Dataset(data_root=str(tmp_path), test_mode=True)
    assert len(ds) == 10 and ds.metainfo['classes'][3] == 'n3'
    assert sorted(i['gt_label'] for i in items(ds)) == list(range(10))
    x_path = str(tmp_path / 'test_X.bin')
    with open(x_path, 'ab') as f:
        f.write(b'\0' * 5)
    with pytest.raises(ClsDataFormatError,
                       match=r'test_X\.bin: 276485 bytes is not a multiple '
                       'of 27648'):
        STL10Dataset(data_root=str(tmp_path), test_mode=True)
    np.zeros(27648 * 2, np.uint8).tofile(x_path)
    np.array([1, 11], np.uint8).tofile(str(tmp_path / 'test_y.bin'))
    with pytest.raises(ClsDataFormatError,
                       match=r'test_y\.bin: label 11 at index 1 is out of '
                       r'range 1\.\.10'):
        STL10Dataset(data_root=str(tmp_path), test_mode=True)
    np.array([1], np.uint8).tofile(str(tmp_path / 'test_y.bin'))
    with pytest.raises(ClsDataFormatError, match='holds 1 labels for the 2'):
        STL10Dataset(data_root=str(tmp_path), test_mode=True)
    os.remove(tmp_path / 'train_y.bin')
    with pytest.raises(ClsDataNotFoundError, match=r'missing train_y\.bin'):
        STL10Dataset(data_root=str(tmp_path))


# ------------------------------------------------------------ ImageNet


@pytest.fixture(scope='module')
def imagenet_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('imagenet'))
    written = make_synthetic_imagenet(root, classes=('n02', 'n01', 'n03'),
                                      train_per_class=2, val_per_class=1)
    return root, written


def test_imagenet_class_folders(imagenet_root):
    root, written = imagenet_root
    train = ImageNetDataset(data_root=root)
    val = ImageNetDataset(data_root=root, test_mode=True)
    assert train.metainfo['classes'] == ('n01', 'n02', 'n03')
    assert (len(train), len(val)) == (6, 3)
    by_path = {i['img_path']: i['gt_label'] for i in items(train)}
    for path, label in written['train']:  # written as n02, n01, n03
        folder = osp.basename(osp.dirname(path))
        assert by_path[path] == train.metainfo['classes'].index(folder)
    assert all(p.endswith('.JPEG') for p in by_path)
    named = ImageNetDataset(data_root=root, split='val',
                            metainfo=dict(classes=('a', 'b', 'c')))
    assert named.metainfo['classes'] == ('a', 'b', 'c')
    with pytest.raises(ClsDataFormatError, match='gives 2 classes but'):
        ImageNetDataset(data_root=root, metainfo=dict(classes=('a', 'b')))


def test_imagenet_list_file_and_pipeline(imagenet_root):
    root, written = imagenet_root
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='ResizeCenterCrop', size=24, resize_short=32),
        dict(type='PackClsInputs')
    ]
    ds = DATASETS.build(dict(type='ImageNetDataset', data_root=root,
                             ann_file='meta/train.txt', num_classes=3,
                             pipeline=pipeline))
    assert len(ds) == 6 and ds.metainfo['classes'] == ('0', '1', '2')
    got = sorted((i['img_path'], i['gt_label']) for i in items(ds))
    assert got == sorted(written['train'])
    out = ds[0]
    assert out['inputs'].shape == (3, 24, 24)
    assert out['inputs'].dtype == torch.uint8
    sample = out['data_samples']
    assert sample.img_path == ds.get_data_info(0)['img_path']
    assert sample.ori_shape == (40, 56) and sample.img_shape == (24, 24)
    assert int(sample.gt_label) == ds.get_data_info(0)['gt_label']


def test_imagenet_errors(tmp_path, imagenet_root):
    root = str(tmp_path)
    with pytest.raises(ClsDataNotFoundError,
                       match=r'no folder .*train; expected class folders'):
        ImageNetDataset(data_root=root)
    os.makedirs(tmp_path / 'train' / 'n1')
    os.makedirs(tmp_path / 'train' / 'n2')
    import cv2
    cv2.imwrite(str(tmp_path / 'train' / 'n1' / 'a.PNG'),
                np.zeros((4, 4, 3), np.uint8))
    with open(tmp_path / 'train' / 'n2' / 'notes.txt', 'w') as f:
        f.write('no image')
    with pytest.raises(ClsDataNotFoundError,
                       match=r'1 of the 2 class folders .* hold no images '
                       r'\(n2\)'):
        ImageNetDataset(data_root=root)
    os.makedirs(tmp_path / 'val')
    cv2.imwrite(str(tmp_path / 'val' / 'x.jpg'),
                np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ClsDataNotFoundError,
                       match='holds no class folders; it holds 1 images'):
        ImageNetDataset(data_root=root, split='val')
    lines = tmp_path / 'list.txt'
    lines.write_text('train/n1/a.PNG 0\n\ntrain/n1/a.PNG\n')
    with pytest.raises(ClsDataFormatError,
                       match=r"list\.txt, line 3: 'train/n1/a\.PNG' is not"):
        ImageNetDataset(data_root=root, ann_file='list.txt')
    lines.write_text('train/n1/a.PNG 0\ntrain/n1/a.PNG 5\n')
    with pytest.raises(ClsDataFormatError,
                       match=r'list\.txt, line 2: label 5 is out of range '
                       r'0\.\.2'):
        ImageNetDataset(data_root=root, ann_file='list.txt',
                        metainfo=dict(classes=('a', 'b', 'c')))
    with pytest.raises(ClsDataNotFoundError, match=r'no list file'):
        ImageNetDataset(data_root=root, ann_file='nothing.txt')


# ---------------------------------------------------------- transforms


def test_random_crop_with_padding_is_a_shifted_window():
    img = known_images(1, 32, 32)[0]
    padded = np.pad(img, ((4, 4), (4, 4), (0, 0)))
    crop = TRANSFORMS.build(dict(type='RandomCropWithPadding', size=32,
                                 padding=4))
    offsets = set()
    np.random.seed(0)
    for _ in range(20):
        out = crop(dict(img=img.copy()))
        assert out['img'].shape == (32, 32, 3)
        assert out['img_shape'] == (32, 32)
        found = [(t, left) for t in range(9) for left in range(9)
                 if np.array_equal(out['img'],
                                   padded[t:t + 32, left:left + 32])]
        assert len(found) == 1
        offsets.add(found[0])
    assert len(offsets) > 5  # random
    out = RandomCropWithPadding((6, 8), padding=0)(
        dict(img=img[:6, :8].copy()))
    np.testing.assert_array_equal(out['img'], img[:6, :8])
    out = RandomCropWithPadding(2, padding=3, pad_val=9)(
        dict(img=np.zeros((1, 1), np.uint8)))
    assert out['img'].shape == (2, 2) and set(out['img'].ravel()) <= {0, 9}
    with pytest.raises(ValueError, match='cannot crop'):
        RandomCropWithPadding(40, padding=2)(dict(img=img))


def test_resize_center_crop():
    img = known_images(1, 4, 6)[0]
    out = ResizeCenterCrop(size=4, resize_short=4)(dict(img=img))
    np.testing.assert_array_equal(out['img'], img[:, 1:5])
    big = ResizeCenterCrop()(dict(img=known_images(1, 60, 90)[0]))
    assert big['img'].shape == (224, 224, 3)
    assert big['img_shape'] == (224, 224)
    tall = ResizeCenterCrop(size=(8, 6), resize_short=10)(
        dict(img=known_images(1, 30, 20)[0]))
    assert tall['img'].shape == (8, 6, 3)
    with pytest.raises(ValueError, match='resize_short must be'):
        ResizeCenterCrop(size=224, resize_short=200)


def test_random_resized_crop():
    np.random.seed(0)
    img = known_images(1, 40, 56)[0]
    t = TRANSFORMS.build(dict(type='RandomResizedCropCls', size=32))
    for _ in range(5):
        out = t(dict(img=img))
        assert out['img'].shape == (32, 32, 3)
        assert out['img'].dtype == np.uint8 and out['img_shape'] == (32, 32)
    # no window of the full area with ratio 1 fits in 40x56: the fallback
    # is the centre 40x40 square (torchvision's rule)
    fallback = RandomResizedCropCls(size=40, scale=(1.0, 1.0),
                                    ratio=(1.0, 1.0))
    assert fallback.crop_box(40, 56) == (0, 8, 40, 40)
    np.testing.assert_array_equal(fallback(dict(img=img))['img'],
                                  img[:, 8:48])
    assert RandomResizedCropCls(size=(10, 20))(
        dict(img=img))['img'].shape == (10, 20, 3)
    with pytest.raises(ValueError, match='scale must be'):
        RandomResizedCropCls(scale=(0.5, 2))


def test_mmseg_random_flip_on_image_only_results():
    img = known_images(1, 5, 7)[0]
    flip = TRANSFORMS.build(dict(type='RandomFlip', prob=1.0,
                                 direction='horizontal'))
    out = flip(dict(img=img.copy()))
    np.testing.assert_array_equal(out['img'], img[:, ::-1])
    assert out['flip'] is True and out['flip_direction'] == 'horizontal'


def test_pack_cls_inputs():
    img = known_images(1, 5, 7)[0]
    results = dict(img=img[:, ::-1], gt_label=3, sample_idx=2,
                   img_shape=(5, 7), ori_shape=(5, 7), flip=True,
                   flip_direction='horizontal', img_index=2)
    out = TRANSFORMS.build(dict(type='PackClsInputs'))(results)
    inputs, sample = out['inputs'], out['data_samples']
    assert isinstance(inputs, torch.Tensor) and inputs.dtype == torch.uint8
    assert inputs.shape == (3, 5, 7) and inputs.is_contiguous()
    np.testing.assert_array_equal(inputs.numpy(),
                                  img[:, ::-1].transpose(2, 0, 1))
    assert isinstance(sample, ClsDataSample)
    assert sample.gt_label.dtype == torch.long
    assert sample.gt_label.tolist() == [3]
    assert set(sample.metainfo) == {'sample_idx', 'img_shape', 'ori_shape',
                                    'flip', 'flip_direction'}
    gray = PackClsInputs()(dict(img=np.zeros((4, 6), np.uint8)))
    assert gray['inputs'].shape == (1, 4, 6)
    assert 'gt_label' not in gray['data_samples']
    with pytest.raises(KeyError, match='LoadImageFromFile'):
        PackClsInputs()(dict(gt_label=1))


# -------------------------------------------------------------- metric


def test_cls_accuracy_against_hand_computation():
    scores = torch.tensor([[0.1, 0.7, 0.2],    # label 1: top1
                           [0.5, 0.3, 0.2],    # label 1: top2
                           [0.2, 0.3, 0.5],    # label 0: top3 only
                           [0.6, 0.3, 0.1]])   # label 0: top1
    labels = [1, 1, 0, 0]
    metric = METRICS.build(dict(type='ClsAccuracy', topk=(1, 2, 5)))
    samples = [ClsDataSample().set_gt_label(y).set_pred_score(s).to_dict()
               for s, y in zip(scores, labels)]
    metric.process({}, samples[:3])
    metric.process({}, samples[3:])
    assert metric.evaluate(4) == {'accuracy/top1': 50.0,
                                  'accuracy/top2': 75.0,
                                  'accuracy/top5': 100.0}
    # data elements as model.predict returns them are read as well
    from mmengine.structures import BaseDataElement
    metric = ClsAccuracy(topk=1)
    element = BaseDataElement(gt_label=torch.tensor([2]),
                              pred_score=torch.tensor([0.1, 0.2, 0.7]))
    metric.process({}, [element])
    assert metric.compute_metrics(metric.results) == {'top1': 100.0}
    with pytest.raises(ValueError, match='no results to evaluate'):
        ClsAccuracy().compute_metrics([])
    with pytest.raises(KeyError, match='lacks pred_score'):
        ClsAccuracy().process({}, [dict(gt_label=torch.tensor([1]))])
    with pytest.raises(ValueError, match='topk must be'):
        ClsAccuracy(topk=(0, ))


# --------------------------------------------------- dataloader round trip


def _loader_cfg(root, **kwargs):
    pipeline = [
        dict(type='RandomCropWithPadding', size=32, padding=4),
        dict(type='RandomFlip', prob=0.5, direction='horizontal'),
        dict(type='PackClsInputs')
    ]
    cfg = dict(batch_size=4, num_workers=0,
               sampler=dict(type='DefaultSampler', shuffle=True),
               dataset=dict(type='CIFAR10Dataset', data_root=root,
                            pipeline=pipeline))
    cfg.update(kwargs)
    return cfg


@pytest.fixture(scope='module')
def cifar_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('cifar10'))
    make_synthetic_cifar10(root, train_per_class=2, test_per_class=1)
    return root


def test_runner_dataloader_to_data_preprocessor(cifar_root):
    from mmengine.runner import Runner
    loader = Runner.build_dataloader(_loader_cfg(cifar_root), seed=0)
    batch = next(iter(loader))
    assert len(batch['inputs']) == 4
    assert all(isinstance(s, ClsDataSample) for s in batch['data_samples'])
    preprocessor = MODELS.build(dict(
        type='ImgDataPreprocessor', mean=[125.3, 123.0, 113.9],
        std=[63.0, 62.1, 66.7], bgr_to_rgb=True))
    data = preprocessor(batch, training=True)
    assert data['inputs'].shape == (4, 3, 32, 32)
    assert data['inputs'].dtype == torch.float32
    labels = torch.cat([s.gt_label for s in data['data_samples']])
    assert labels.shape == (4, ) and labels.dtype == torch.long
    # the classifier and the metric read these samples
    model = MODELS.build(dict(
        type='ImageClassifier', backbone=dict(type='CifarResNet', depth=8),
        head=dict(type='LinearClsHead', num_classes=10, in_channels=64)))
    model.eval()
    with torch.no_grad():
        predicted = model.predict(data['inputs'], data['data_samples'])
    metric = ClsAccuracy()
    metric.process(batch, [s.to_dict() for s in predicted])
    result = metric.evaluate(4)
    assert set(result) == {'accuracy/top1', 'accuracy/top5'}


def test_dataloader_workers_persistent(cifar_root):
    from mmengine.runner import Runner
    loader = Runner.build_dataloader(
        _loader_cfg(cifar_root, num_workers=2, persistent_workers=True,
                    batch_size=10), seed=0)
    for _ in range(2):  # two epochs with the same (persistent) workers
        seen = []
        for batch in loader:
            assert all(x.shape == (3, 32, 32) for x in batch['inputs'])
            seen += [s.sample_idx for s in batch['data_samples']]
        assert sorted(seen) == list(range(20))


def test_base_config_pipeline_builds(cifar_root):
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'classification',
                                   '_base_', 'cifar10.py'))
    cfg.val_dataloader.dataset.data_root = cifar_root
    ds = DATASETS.build(cfg.val_dataloader.dataset)
    assert len(ds) == 10 and ds[0]['inputs'].shape == (3, 32, 32)
    assert METRICS.build(cfg.val_evaluator).topk == (1, 5)
