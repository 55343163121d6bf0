"""CheckedCityscapesDataset: every kind of bad input is named, with
mmseg's real Cityscapes pipeline, and with the mmengine Runner."""
import glob
import os
import os.path as osp
import shutil
import traceback

import numpy as np
import pytest
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from PIL import Image

from conftest import captured_log, demo_cfg
from mmseg.registry import DATASETS
from mmseg_infopro.datasets import (BadSampleError, CheckedCityscapesDataset,
                                    CityscapesLayoutError)
from mmseg_infopro.datasets.synthetic_cityscapes import make_synthetic_cityscapes

PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
LAYOUT = '<city>/<name>_leftImg8bit.png'


@pytest.fixture
def root(tmp_path):
    """Fresh official-format data: 4 train / 2 val images, 32x64."""
    path = str(tmp_path / 'cityscapes')
    make_synthetic_cityscapes(path, num_train=4, num_val=2, height=32,
                              width=64, official=True)
    return path


def build(root, split='train', **kwargs):
    init_default_scope('mmseg')
    cfg = dict(type='CheckedCityscapesDataset', data_root=root,
               data_prefix=dict(img_path=f'leftImg8bit/{split}',
                                seg_map_path=f'gtFine/{split}'),
               pipeline=PIPELINE)
    cfg.update(kwargs)
    return DATASETS.build(cfg)


def label_files(root, split='train'):
    return sorted(glob.glob(osp.join(root, 'gtFine', split, '*',
                                     '*_labelTrainIds.png')))


def index_of(dataset, path):
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        if path in (info['img_path'], info['seg_map_path']):
            return i
    raise AssertionError(path)


def truncate(path, keep=0.5):
    with open(path, 'rb') as f:
        data = f.read()
    with open(path, 'wb') as f:
        f.write(data[:int(len(data) * keep)])


def test_good_data_loads(root):
    dataset = build(root)
    assert isinstance(dataset, CheckedCityscapesDataset)
    assert len(dataset) == 4
    for i in range(len(dataset)):
        sample = dataset[i]
        assert tuple(sample['data_samples'].gt_sem_seg.shape) == (32, 64)
    assert dataset.allowed_label_values == list(range(19)) + [255]


def test_on_bad_sample_is_checked(root):
    with pytest.raises(ValueError, match="on_bad_sample must be one of "
                       "\\('raise', 'skip'\\), got 'ignore'"):
        build(root, on_bad_sample='ignore')


# -------------------------------------------------------------- data list
def test_missing_data_root(tmp_path):
    missing = str(tmp_path / 'nowhere')
    with pytest.raises(CityscapesLayoutError) as info:
        build(missing)
    message = str(info.value)
    assert f"data_root '{missing}' does not exist" in message
    assert LAYOUT in message and '_gtFine_labelTrainIds.png' in message
    assert 'tools/convert_cityscapes.py' in message


def test_empty_data_root(tmp_path):
    with pytest.raises(CityscapesLayoutError, match='is empty') as info:
        build(str(tmp_path))
    assert LAYOUT in str(info.value)


def test_missing_image_directory(root):
    shutil.rmtree(osp.join(root, 'leftImg8bit'))
    with pytest.raises(CityscapesLayoutError) as info:
        build(root)
    message = str(info.value)
    assert f"image directory '{root}/leftImg8bit/train' does not exist" \
        in message
    assert 'contains: gtFine, synthetic_meta.json' in message
    assert LAYOUT in message


def test_image_directory_without_images(root):
    for path in glob.glob(osp.join(root, 'leftImg8bit', 'val', '*', '*')):
        os.rename(path, path.replace('_leftImg8bit.png', '.jpg'))
    with pytest.raises(CityscapesLayoutError) as info:
        build(root, split='val')
    message = str(info.value)
    assert 'no image found' in message and '*_leftImg8bit.png' in message
    assert f'{root}/leftImg8bit/val' in message and LAYOUT in message


def test_missing_label_directory(root):
    shutil.rmtree(osp.join(root, 'gtFine', 'val'))
    with pytest.raises(CityscapesLayoutError,
                       match=f"label directory '{root}/gtFine/val' does not "
                       'exist'):
        build(root, split='val')


def test_image_without_label_is_named(root):
    missing = label_files(root)[1]
    os.remove(missing)
    with pytest.raises(CityscapesLayoutError) as info:
        build(root)
    message = str(info.value)
    assert '1 of the 4 images have no label file' in message
    assert missing in message
    # the official annotation is next to it: the error says how to convert
    assert 'have the official *_gtFine_polygons.json' in message
    assert f'python tools/convert_cityscapes.py {root}' in message


def test_only_official_annotations_hint_the_converter(root):
    for path in label_files(root):
        os.remove(path)
    with pytest.raises(CityscapesLayoutError,
                       match='4 of the 4 images have no label file \\(4 of '
                       'them have the official'):
        build(root)


def test_image_without_label_is_dropped_with_skip(root):
    missing = label_files(root)[0]
    os.remove(missing)
    with captured_log() as log:
        dataset = build(root, on_bad_sample='skip')
    assert len(dataset) == 3
    assert any(missing in m and 'skipping' in m for m in log)
    assert missing not in [dataset.get_data_info(i)['seg_map_path']
                           for i in range(3)]


def test_missing_split_list(root):
    with pytest.raises(CityscapesLayoutError, match='train.txt.*does not '
                       'exist'):
        build(root, ann_file='train.txt')


# --------------------------------------------------------------- samples
@pytest.mark.parametrize('kind', ['image', 'label'])
@pytest.mark.parametrize('damage', ['truncated', 'garbage'])
def test_corrupt_file_is_named(root, kind, damage):
    dataset = build(root)
    path = dataset.get_data_info(2)['img_path' if kind == 'image' else
                                    'seg_map_path']
    if damage == 'truncated':
        truncate(path)
    else:
        with open(path, 'wb') as f:
            f.write(b'not a png' * 10)
    dataset[1]  # others are fine
    with pytest.raises(BadSampleError) as info:
        dataset[2]
    message = str(info.value)
    assert f'cannot load {"image" if kind == "image" else "label map"} ' \
        f'{path}' in message
    assert 'corrupt or truncated' in message


def test_corrupt_sample_is_skipped_with_a_warning(root):
    dataset = build(root, on_bad_sample='skip')
    bad = dataset.get_data_info(0)['seg_map_path']
    truncate(bad)
    np.random.seed(0)
    with captured_log() as log:
        for _ in range(3):
            sample = dataset[0]  # refetched: another, good sample
            assert sample['data_samples'].seg_map_path != bad
    assert len(log) >= 3  # the random refetch may draw it again
    assert all(bad in m and 'skipping this sample' in m for m in log)


def test_skip_does_not_apply_in_test_mode(root):
    dataset = build(root, split='val', on_bad_sample='skip', test_mode=True)
    bad = dataset.get_data_info(0)['img_path']
    truncate(bad)
    with pytest.raises(BadSampleError, match=bad) as info:
        dataset[0]
    # what the user reads: the message and its notes (traceback prints
    # notes on Python >= 3.11; before, only the message is shown)
    shown = ''.join(traceback.format_exception_only(info.type, info.value))
    assert bad in shown
    assert 'on_bad_sample="skip" does not apply in test_mode' in shown
    assert 'Fix or remove the file' in shown


def write_label(path, array):
    Image.fromarray(array).save(path)


def test_label_ids_instead_of_train_ids_are_named(root):
    dataset = build(root)
    path = dataset.get_data_info(1)['seg_map_path']
    # the official labelIds (0..33) where train ids are expected
    shutil.copy(path.replace('_labelTrainIds.png', '_labelIds.png'), path)
    with pytest.raises(BadSampleError) as info:
        dataset[1]
    message = str(info.value)
    assert f'label map {path} has values [' in message
    assert 'outside the allowed class indices 0..18 and ignore_index 255' \
        in message
    ids = set(np.unique(np.asarray(Image.open(path)))) - set(range(19))
    assert f'[{", ".join(map(str, sorted(ids)))}]' in message


def test_bad_label_values_are_named(root):
    dataset = build(root)
    path = dataset.get_data_info(3)['seg_map_path']
    label = np.asarray(Image.open(path)).copy()
    label[0, :5] = 19
    label[1, :2] = 200
    write_label(path, label)
    with pytest.raises(BadSampleError,
                       match=f'label map {path} has values \\[19, 200\\] '
                       '\\(7 pixels\\)'):
        dataset[3]
    # checked before any crop: the whole label, whatever the pipeline does
    label = np.asarray(Image.open(path)).copy()
    label[:] = 255
    label[-1, -1] = 254
    write_label(path, label)
    with pytest.raises(BadSampleError, match='\\[254\\] \\(1 pixels\\)'):
        dataset[3]


def test_colour_label_and_size_mismatch_are_named(root):
    dataset = build(root)
    path = dataset.get_data_info(0)['seg_map_path']
    shutil.copy(path.replace('_labelTrainIds.png', '_color.png'), path)
    with pytest.raises(BadSampleError, match=f'label map {path} has shape '
                       '\\(32, 64, 3\\): expected one channel'):
        dataset[0]
    write_label(path, np.zeros((16, 64), np.uint8))
    with pytest.raises(BadSampleError, match=f'label map {path} is 16x64 '
                       '\\(HxW\\) but its image is 32x64'):
        dataset[0]


@pytest.mark.parametrize('split', ['train', 'val'])
def test_works_with_mmseg_cityscapes_pipelines(root, split):
    """mmseg's own Cityscapes pipelines (the val one resizes the image
    before LoadAnnotations): good data passes, bad labels are caught."""
    import mmseg
    from mmengine.config import Config
    base = Config.fromfile(osp.join(osp.dirname(mmseg.__file__), '.mim',
                                    'configs', '_base_', 'datasets',
                                    'cityscapes.py'))
    loader = base[f'{split}_dataloader']
    dataset = build(root, split=split, pipeline=loader.dataset.pipeline)
    sample = dataset[0]
    assert sample['inputs'].shape[0] == 3
    assert set(np.unique(sample['data_samples'].gt_sem_seg.data.numpy())) \
        <= set(range(19)) | {255}
    path = dataset.get_data_info(0)['seg_map_path']
    label = np.asarray(Image.open(path)).copy()
    label[-1, -1] = 33
    write_label(path, label)
    with pytest.raises(BadSampleError, match=f'{path} has values \\[33\\]'):
        dataset[0]


def test_custom_classes_use_the_mapped_labels(root):
    """With a class subset, LoadAnnotations maps the labels first: the
    check sees the mapped values (0..1, 255), which are fine."""
    dataset = build(root, metainfo=dict(classes=('road', 'sky')))
    assert dataset.allowed_label_values == [0, 1, 255]
    for i in range(len(dataset)):
        values = set(np.unique(
            dataset[i]['data_samples'].gt_sem_seg.data.numpy()))
        assert values <= {0, 1, 255}


# ---------------------------------------------------------------- Runner
def checked_cfg(root, work_dir, **dataset):
    cfg = demo_cfg(root, work_dir, max_iters=1)
    cfg.train_cfg.val_interval = 10  # train only: no validation,
    cfg.default_hooks.checkpoint.interval = 10  # no checkpoint
    for loader in ('train_dataloader', 'val_dataloader'):
        cfg[loader].dataset.type = 'CheckedCityscapesDataset'
        cfg[loader].dataset.update(dataset)
    cfg.test_dataloader = cfg.val_dataloader
    return cfg


def test_runner_reports_a_missing_data_root(tmp_path):
    cfg = checked_cfg(str(tmp_path / 'nowhere'), tmp_path / 'work')
    runner = Runner.from_cfg(cfg)
    with pytest.raises(CityscapesLayoutError, match='nowhere.*does not '
                       'exist'):
        runner.train()


def test_runner_reports_a_corrupt_label(root, tmp_path):
    bad = label_files(root)
    for path in bad:
        truncate(path)
    runner = Runner.from_cfg(checked_cfg(root, tmp_path / 'work'))
    with pytest.raises(BadSampleError) as info:
        runner.train()
    assert any(f'cannot load label map {path}' in str(info.value)
               for path in bad)


def test_runner_skips_a_corrupt_label(root, tmp_path):
    bad = label_files(root)[:3]
    for path in bad:
        truncate(path)
    runner = Runner.from_cfg(
        checked_cfg(root, tmp_path / 'work', on_bad_sample='skip'))
    with captured_log() as log:
        runner.train()
    assert runner.iter == 1
    # the batch holds 2 distinct of the 4 samples: at least one is bad,
    # named, and replaced by the good one
    skipped = [m for m in log if 'skipping this sample' in m]
    assert skipped
    assert all(any(path in m for path in bad) for m in skipped)


@pytest.mark.parametrize('pretrained', [
    'http://127.0.0.1:9/resnet18_v1c.pth',  # refused at once, like offline
    'checkpoints/no_such_resnet18_v1c.pth',
])
def test_unreachable_pretrained_suggests_a_local_path_or_none(
        tmp_path, pretrained):
    """The demo model with ``model.pretrained`` that cannot be fetched:
    the error names it and says what to pass instead; with
    ``pretrained=None`` the same model initialises."""
    from mmseg.registry import MODELS
    cfg = demo_cfg(tmp_path, str(tmp_path / 'work'))
    cfg.model.pretrained = pretrained
    model = MODELS.build(cfg.model)
    with pytest.raises(RuntimeError) as info:
        model.init_weights()
    message = str(info.value)
    for words in (repr(pretrained), '--cfg-options',
                  'model.pretrained=PATH', 'model.pretrained=None'):
        assert words in message, (words, message)
    # (mmseg's EncoderDecoder copied pretrained into cfg.model.backbone)
    cfg = demo_cfg(tmp_path, str(tmp_path / 'work'))
    cfg.model.pretrained = None
    MODELS.build(cfg.model).init_weights()
