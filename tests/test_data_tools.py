"""Data tools: the synthetic generator and its CLI, and
tools/convert_cityscapes.py against cityscapesscripts and mmseg's own
converter (on generated official-format data)."""
import glob
import os
import os.path as osp
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import REPO

sys.path.insert(0, osp.join(REPO, 'tools'))
import convert_cityscapes as convert_tool  # noqa: E402
import make_synthetic_cityscapes as make_tool  # noqa: E402

from mmseg_infopro.datasets.synthetic_cityscapes import (  # noqa: E402
    make_synthetic_cityscapes, read_meta)

TINY = dict(num_train=3, num_val=2, height=32, width=64)


def files_of(root):
    """``{relative path: bytes}`` of every file under ``root``."""
    found = {}
    for path in glob.glob(osp.join(root, '**', '*'), recursive=True):
        if osp.isfile(path):
            with open(path, 'rb') as f:
                found[osp.relpath(path, root)] = f.read()
    return found


def generate_official(root, seed=0, **kw):
    """Official-format data; returns the generated labelTrainIds bytes and
    removes them, as in the official download."""
    make_synthetic_cityscapes(str(root), seed=seed, official=True,
                              **dict(TINY, **kw))
    expected = {}
    for path in glob.glob(osp.join(str(root), 'gtFine', '**',
                                   '*_labelTrainIds.png'), recursive=True):
        with open(path, 'rb') as f:
            expected[osp.relpath(path, str(root))] = f.read()
        os.remove(path)
    return expected


# ---------------------------------------------------------------- generator
def test_generator_is_deterministic_with_cityscapes_layout(tmp_path):
    a = make_synthetic_cityscapes(str(tmp_path / 'a'), seed=3, **TINY)
    make_synthetic_cityscapes(str(tmp_path / 'b'), seed=3, **TINY)
    make_synthetic_cityscapes(str(tmp_path / 'c'), seed=4, **TINY)
    fa, fb, fc = (files_of(str(tmp_path / n)) for n in 'abc')
    assert fa == fb  # byte for byte
    assert fa.keys() == fc.keys() and fa != fc
    assert read_meta(str(tmp_path / 'a')) == a
    for split, count in (('train', 3), ('val', 2)):
        assert len(a['files'][split]) == count
        for name in a['files'][split]:
            img = np.asarray(Image.open(osp.join(
                tmp_path, 'a', 'leftImg8bit', split,
                name + '_leftImg8bit.png')))
            label = np.asarray(Image.open(osp.join(
                tmp_path, 'a', 'gtFine', split,
                name + '_gtFine_labelTrainIds.png')))
            assert img.shape == (32, 64, 3) and img.dtype == np.uint8
            assert label.shape == (32, 64)
            assert set(np.unique(label)) <= set(range(19)) | {255}
            assert len(set(np.unique(label)) - {255}) >= 3
    # exactly the Cityscapes files, nothing else
    assert sorted(fa) == sorted(
        [f'leftImg8bit/{s}/{n}_leftImg8bit.png'
         for s in ('train', 'val') for n in a['files'][s]] +
        [f'gtFine/{s}/{n}_gtFine_labelTrainIds.png'
         for s in ('train', 'val') for n in a['files'][s]] +
        ['synthetic_meta.json'])


# ---------------------------------------------------------------------- CLI
def cli(root, *extra, **params):
    params = dict(TINY, **params)
    argv = ['--root', str(root)] + [
        a for k, v in params.items()
        for a in (f'--{k.replace("_", "-")}', str(v))
    ] + list(extra)
    return make_tool.main(argv)


def test_cli_skips_same_parameters_and_needs_force_for_others(
        tmp_path, capsys):
    root = tmp_path / 'synth'
    meta = cli(root)
    assert meta['num_train'] == 3 and not meta['official']
    before = {p: os.stat(osp.join(root, p)).st_mtime_ns
              for p in files_of(str(root))}
    again = cli(root)
    assert 'nothing to do' in capsys.readouterr().out
    assert again == meta
    assert {p: os.stat(osp.join(root, p)).st_mtime_ns
            for p in files_of(str(root))} == before  # untouched
    with pytest.raises(SystemExit, match='--force') as info:
        cli(root, num_train=2)
    assert 'num_train=3' in str(info.value) and 'num_train=2' in str(
        info.value)
    assert read_meta(str(root))['num_train'] == 3
    meta = cli(root, '--force', '--official', num_train=2)
    assert meta['num_train'] == 2 and meta['official']
    assert len(glob.glob(osp.join(root, 'leftImg8bit', 'train', '*',
                                  '*.png'))) == 2  # old images gone
    assert glob.glob(osp.join(root, 'gtFine', '*', '*', '*_polygons.json'))


def test_cli_never_touches_a_foreign_directory(tmp_path):
    root = tmp_path / 'cityscapes'
    (root / 'leftImg8bit').mkdir(parents=True)
    (root / 'precious.txt').write_text('x')
    for extra in ([], ['--force']):
        with pytest.raises(SystemExit, match='no generated dataset'):
            cli(root, *extra)
    assert sorted(os.listdir(root)) == ['leftImg8bit', 'precious.txt']


def test_cli_rejects_bad_sizes(tmp_path):
    with pytest.raises(SystemExit, match='--height must be >= 16'):
        cli(tmp_path / 'x', height=8)


def test_cli_runs_as_a_script(tmp_path):
    root = tmp_path / 'synth'
    out = subprocess.run(
        [sys.executable,
         osp.join(REPO, 'tools', 'make_synthetic_cityscapes.py'),
         '--root', str(root), '--num-train', '1', '--num-val', '1',
         '--height', '16', '--width', '32'],
        capture_output=True, text=True, cwd=str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert read_meta(str(root))['num_train'] == 1


# ---------------------------------------------------------------- converter
def test_convert_round_trip_is_byte_exact(tmp_path):
    root = tmp_path / 'cityscapes'
    expected = generate_official(root)
    assert len(expected) == 5
    summary = convert_tool.main([str(root), '--nproc', '2'])
    assert summary['converted'] == 5 and summary['from_polygons'] == 5
    got = {rel: open(osp.join(root, rel), 'rb').read() for rel in expected}
    assert got == expected
    meta = read_meta(str(root))
    for split in ('train', 'val'):
        with open(osp.join(root, f'{split}.txt')) as f:
            assert f.read() == ''.join(
                n + '\n' for n in sorted(meta['files'][split]))
    assert not osp.exists(osp.join(root, 'test.txt'))  # no gtFine/test


def test_convert_falls_back_to_label_ids(tmp_path):
    root = tmp_path / 'cityscapes'
    expected = generate_official(root)
    jsons = sorted(glob.glob(osp.join(root, 'gtFine', '*', '*', '*.json')))
    for path in jsons[:3]:
        os.remove(path)
    out_dir = tmp_path / 'lists'
    summary = convert_tool.main([str(root), '--nproc', '1', '--out-dir',
                                 str(out_dir)])
    assert summary['from_polygons'] == 2
    assert summary['from_label_ids'] == 3
    got = {rel: open(osp.join(root, rel), 'rb').read() for rel in expected}
    assert got == expected
    assert sorted(os.listdir(out_dir)) == ['train.txt', 'val.txt']
    assert not osp.exists(osp.join(root, 'train.txt'))


def test_convert_matches_mmseg_converter(tmp_path):
    """mmseg's tools/dataset_converters/cityscapes.py on a copy: same label
    files, same split lists (mmseg's are in directory order)."""
    import mmseg
    root = tmp_path / 'ours'
    generate_official(root)
    # mmseg's converter needs gtFine/test (the official download has it)
    for top in ('gtFine', 'leftImg8bit'):
        shutil.copytree(root / top / 'val', root / top / 'test')
    shutil.copytree(root, tmp_path / 'mmseg')
    summary = convert_tool.main([str(root), '--nproc', '1'])
    assert summary['splits'] == dict(train=3, val=2, test=2)
    tool = osp.join(osp.dirname(mmseg.__file__), '.mim', 'tools',
                    'dataset_converters', 'cityscapes.py')
    out = subprocess.run([sys.executable, tool, str(tmp_path / 'mmseg')],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    ours, theirs = files_of(str(root)), files_of(str(tmp_path / 'mmseg'))
    assert ours.keys() == theirs.keys()
    assert 'test.txt' in ours
    for rel in ours:
        if rel.endswith('.txt'):
            assert sorted(ours[rel].splitlines()) == sorted(
                theirs[rel].splitlines())
        else:
            assert ours[rel] == theirs[rel], rel


def test_split_lists_work_as_ann_file(tmp_path):
    from mmengine.registry import init_default_scope

    from mmseg.registry import DATASETS
    root = tmp_path / 'cityscapes'
    generate_official(root)
    convert_tool.main([str(root), '--nproc', '1'])
    init_default_scope('mmseg')
    for split, count in (('train', 3), ('val', 2)):
        dataset = DATASETS.build(
            dict(type='CheckedCityscapesDataset', data_root=str(root),
                 ann_file=f'{split}.txt',
                 data_prefix=dict(img_path=f'leftImg8bit/{split}',
                                  seg_map_path=f'gtFine/{split}'),
                 pipeline=[dict(type='LoadImageFromFile'),
                           dict(type='LoadAnnotations')]))
        assert len(dataset) == count
        sample = dataset[0]
        assert sample['gt_seg_map'].shape == sample['img'].shape[:2]


def test_convert_errors_name_the_path(tmp_path):
    missing = tmp_path / 'nowhere'
    with pytest.raises(SystemExit, match='does not exist') as info:
        convert_tool.main([str(missing)])
    assert str(missing) in str(info.value)
    assert '<name>_gtFine_polygons.json' in str(info.value)
    root = tmp_path / 'cityscapes'
    (root / 'leftImg8bit').mkdir(parents=True)
    with pytest.raises(SystemExit) as info:
        convert_tool.main([str(root)])
    assert f"annotation directory '{root}/gtFine' does not exist" in str(
        info.value)
    assert 'contains: leftImg8bit' in str(info.value)
    (root / 'gtFine' / 'train' / 'aachen').mkdir(parents=True)
    with pytest.raises(SystemExit, match='no \\*_gtFine_polygons.json or'):
        convert_tool.main([str(root)])
    # already converted data (the synthetic default): nothing to convert
    synth = tmp_path / 'synth'
    make_synthetic_cityscapes(str(synth), **TINY)
    with pytest.raises(SystemExit, match='nothing to convert'):
        convert_tool.main([str(synth)])


def test_convert_names_a_bad_annotation_and_does_not_hang(tmp_path):
    """cityscapesscripts sys.exit()s on an unknown label: reported with
    the file's name, from worker processes too."""
    root = tmp_path / 'cityscapes'
    generate_official(root)
    [bad] = glob.glob(osp.join(root, 'gtFine', 'val', '*',
                               '*_000000_*_polygons.json'))
    with open(bad) as f:
        text = f.read()
    with open(bad, 'w') as f:
        f.write(text.replace('"road"', '"flying saucer"', 1))
    with pytest.raises(SystemExit, match='1 of 5 annotations could not') \
            as info:
        convert_tool.main([str(root), '--nproc', '2'])
    assert bad in str(info.value)


def test_convert_needs_cityscapesscripts(tmp_path, monkeypatch):
    root = tmp_path / 'cityscapes'
    generate_official(root, num_train=1, num_val=1)
    for name in list(sys.modules):
        if name.startswith('cityscapesscripts'):
            monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, 'cityscapesscripts', None)
    with pytest.raises(SystemExit, match='pip install cityscapesscripts'):
        convert_tool.main([str(root)])


def test_convert_runs_as_a_script(tmp_path):
    root = tmp_path / 'cityscapes'
    generate_official(root, num_train=1, num_val=1)
    out = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'convert_cityscapes.py'),
         str(root), '--nproc', '2'], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert 'train.txt (1), val.txt (1)' in out.stdout


def test_instance_ids_match_cityscapesscripts(tmp_path):
    from cityscapesscripts.helpers.annotation import Annotation
    from cityscapesscripts.preparation.json2instanceImg import \
        createInstanceImage
    root = tmp_path / 'cityscapes'
    make_synthetic_cityscapes(str(root), official=True, **TINY)
    jsons = glob.glob(osp.join(root, 'gtFine', '*', '*', '*.json'))
    assert len(jsons) == 5
    for path in jsons:
        annotation = Annotation()
        annotation.fromJsonFile(path)
        expected = np.asarray(createInstanceImage(annotation, 'ids'))
        got = np.asarray(Image.open(
            path.replace('_polygons.json', '_instanceIds.png')))
        assert got.dtype == np.uint16
        np.testing.assert_array_equal(got, expected)


def test_cityscapes_metric_on_generated_official_data(tmp_path):
    """mmseg's CityscapesMetric (cityscapesscripts' evaluation on labelIds
    and instanceIds) on the generated official files: the ground truth as
    prediction scores 1, a wrong class less."""
    import torch

    from mmseg.evaluation import CityscapesMetric
    from mmseg_infopro.datasets.synthetic_cityscapes import NAME_TO_TRAIN_ID
    root = tmp_path / 'cityscapes'
    make_synthetic_cityscapes(str(root), official=True, **TINY)
    scores = []
    for damage in (False, True):
        metric = CityscapesMetric(output_dir=str(tmp_path / f'out{damage}'))
        samples = []
        for name in read_meta(str(root))['files']['val']:
            seg_map = osp.join(root, 'gtFine', 'val',
                               name + '_gtFine_labelTrainIds.png')
            pred = torch.from_numpy(np.asarray(Image.open(seg_map)).astype(
                np.int64))[None]
            if damage:
                # another category (flat -> vehicle)
                pred[pred == NAME_TO_TRAIN_ID['road']] = NAME_TO_TRAIN_ID[
                    'car']
            samples.append(dict(
                pred_sem_seg=dict(data=pred), seg_map_path=seg_map,
                img_path=osp.join(root, 'leftImg8bit', 'val',
                                  name + '_leftImg8bit.png')))
        metric.process({}, samples)
        scores.append(metric.compute_metrics(metric.results))
    assert scores[0]['averageScoreCategories'] == pytest.approx(1.0)
    assert scores[1]['averageScoreCategories'] < 0.9
