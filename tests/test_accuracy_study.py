"""The accuracy study tool (tools/harness/study.py,
tools/accuracy_study.py): schedule rescaling, the options a run gets, and
a tiny resumable study through real tools/train.py subprocesses."""
import json
import os
import os.path as osp
import statistics
import sys

import pytest
from mmengine.config import Config

from conftest import DEMO_K1, DEMO_K2, REPO

sys.path.insert(0, osp.join(REPO, 'tools'))
import accuracy_study as study_tool  # noqa: E402
import train as train_tool  # noqa: E402
from harness import study as accuracy  # noqa: E402
from harness.study import (StudyError, format_cfg_options,  # noqa: E402
                           load_spec, markdown_table, per_class_table,
                           read_per_class, rescale_param_schedulers,
                           run_options, run_study, summarize)

CLS_DEMO = osp.join(REPO, 'configs', 'demo',
                    'resnet32_k2_synthetic-cifar10.py')


# ------------------------------------------------------------- schedules


def test_rescale_epoch_cosine_with_warmup():
    # the release's CIFAR schedule: 10 warm-up epochs, cosine to 160
    schedulers = [
        dict(type='LinearLR', start_factor=0.01, by_epoch=True, begin=0,
             end=10, convert_to_iter_based=True),
        dict(type='CosineAnnealingLR', by_epoch=True, begin=10, end=160,
             T_max=150, eta_min=0.0, convert_to_iter_based=True)
    ]
    before = [dict(s) for s in schedulers]
    out = rescale_param_schedulers(schedulers, total=160, iters=1200,
                                   by_epoch=True)
    assert schedulers == before  # not changed in place
    assert out == [
        dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
             end=75, convert_to_iter_based=False),
        dict(type='CosineAnnealingLR', by_epoch=False, begin=75, end=1200,
             T_max=1125, eta_min=0.0, convert_to_iter_based=False)
    ]
    # the classification demo's (1 + 14 of 15 epochs): the warm-up's end
    # stays the cosine's begin, the cosine ends at the last iteration
    demo = Config.fromfile(CLS_DEMO).param_scheduler
    out = rescale_param_schedulers(demo, 15, 1200, by_epoch=True)
    assert [(s['begin'], s['end']) for s in out] == [(0, 80), (80, 1200)]
    assert out[1]['T_max'] == 1120 and out[1]['end'] - out[1]['begin'] \
        == out[1]['T_max']
    # very short runs keep every entry at least one iteration long
    out = rescale_param_schedulers(demo, 15, 4, by_epoch=True)
    assert all(s['end'] > s['begin'] for s in out)
    assert out[-1]['end'] == 4 and out[-1]['T_max'] >= 1


def test_rescale_demo_polylr_and_units():
    demo = Config.fromfile(DEMO_K2).param_scheduler
    assert demo[0]['type'] == 'PolyLR' and demo[0]['end'] == 300
    out = rescale_param_schedulers(demo, total=300, iters=1200)
    assert out == [
        dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=1200,
             by_epoch=False, convert_to_iter_based=False)
    ]
    # a single dict, an open end and a milestone list
    out = rescale_param_schedulers(
        dict(type='MultiStepLR', by_epoch=False, milestones=[100, 200]),
        total=300, iters=600)
    assert out[0]['milestones'] == [200, 400] and 'end' not in out[0]
    # an entry that does not count the loop's unit cannot be rescaled
    with pytest.raises(StudyError, match='by_epoch=False'):
        rescale_param_schedulers([dict(type='PolyLR', end=300)], 300, 600)
    with pytest.raises(StudyError, match='by_epoch=True'):
        rescale_param_schedulers(
            [dict(type='PolyLR', by_epoch=False, end=30)], 3, 600,
            by_epoch=True)


def _built(config, options):
    """The config tools/train.py builds from these --cfg-options strings."""
    args = train_tool.parse_args([config, '--cfg-options'] + options)
    return train_tool.build_cfg(args)


def test_run_options_make_an_iteration_run_of_an_epoch_config():
    cfg = Config.fromfile(CLS_DEMO)
    opts = run_options(cfg, iters=1200, seed=3, data_root='data/x')
    built = _built(CLS_DEMO, format_cfg_options(opts))
    assert dict(built.train_cfg) == dict(type='IterBasedTrainLoop',
                                         max_iters=1200, val_interval=1200)
    assert built.randomness.seed == 3
    assert built.train_dataloader.dataset.data_root == 'data/x/'
    assert built.val_dataloader.dataset.data_root == 'data/x/'
    sched = built.param_scheduler
    assert [(s.begin, s.end, s.by_epoch) for s in sched] == \
        [(0, 80, False), (80, 1200, False)]
    assert sched[1].T_max == 1120 and not sched[1].convert_to_iter_based
    ckpt = built.default_hooks.checkpoint
    assert (ckpt.by_epoch, ckpt.interval, ckpt.save_best) == \
        (False, 1200, None)
    assert built.log_processor.by_epoch is False
    # the segmentation demo: iteration-based already; memory hook idle
    cfg = Config.fromfile(DEMO_K2)
    built = _built(DEMO_K2, format_cfg_options(run_options(cfg, 50, 0)))
    assert built.train_cfg.max_iters == 50 and \
        built.train_cfg.val_interval == 50
    assert built.param_scheduler[0].end == 50
    memory = [h for h in built.custom_hooks
              if h.type == 'InfoProMemoryHook']
    assert memory and memory[0].interval > 50


def test_format_cfg_options():
    opts = {'model.backbone.split_points': [(3, 0)],
            'model.local_heads': {'0': {'recons_head': None}},
            'a.size': (64, 128), 'a.b': 'softmax', 'a.c': 0.025,
            'a.d': True, 'a.e': []}
    text = format_cfg_options(opts)
    assert text == ['model.backbone.split_points=[(3,0)]',
                    'model.local_heads.0.recons_head=None',
                    'a.size=(64,128)', 'a.b=softmax', 'a.c=0.025',
                    'a.d=True', 'a.e=[]']
    for bad in ({'a': 'x,y'}, {'a': '12'}, {'a': 'None'},
                {'a': [dict(b=1)]}):
        with pytest.raises(StudyError, match='option a'):
            format_cfg_options(bad)


# ------------------------------------------------------------ tiny study


def _write_spec(tmp_path, iters=4):
    root = str(tmp_path / 'data')
    spec = tmp_path / 'spec.py'
    options = {
        'model.data_preprocessor.size': (32, 64),
        'train_dataloader.batch_size': 2,
        'default_hooks.logger.interval': 1,
    }
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        options[f'{loader}.num_workers'] = 0
        options[f'{loader}.persistent_workers'] = False
    spec.write_text(f"""study = dict(
    name='tiny', metric='mIoU', iters={iters}, seeds=[0, 1],
    data=dict(kind='synthetic_cityscapes', root={root!r}, num_train=2,
              val_images=2, height=32, width=64),
    options={options!r},
    variants=dict(e2e=dict(config={DEMO_K1!r}),
                  k2=dict(config={DEMO_K2!r})),
    threads=1)
""")
    return str(spec)


def _counting_launch():
    calls = []

    def launch(argv, cwd, env, log_path):
        calls.append(argv)
        return accuracy._launch(argv, cwd, env, log_path)

    return launch, calls


def test_tiny_study_resumes_and_reports(tmp_path, capsys):
    spec_path = _write_spec(tmp_path)
    out = str(tmp_path / 'results.json')
    work = str(tmp_path / 'runs')
    spec = load_spec(spec_path)
    assert spec.baseline == 'e2e' and spec.data['num_val'] == 2

    # seed 0 through the package function: two runs
    launch, calls = _counting_launch()
    results = run_study(spec, out, work_dir=work, seeds=[0], launch=launch,
                        log=lambda *a: None)
    assert len(calls) == 2 and len(results['runs']) == 2
    with open(out) as f:
        first = json.load(f)
    for run in first['runs']:
        assert run['iters'] == 4 and run['step'] == 4
        assert run['metric'] == 'mIoU' and 0 <= run['value'] <= 100
        assert run['seed'] == 0 and 'randomness.seed=0' in run['argv']
        assert 'tools/train.py' in run['command'] and \
            '--cfg-options' in run['command']
        assert run['command'].startswith('OMP_NUM_THREADS=1 python ')
        # the recorded command line builds the run that was trained
        built = _built(run['argv'][2], run['argv'][
            run['argv'].index('--cfg-options') + 1:])
        assert built.train_cfg.max_iters == 4
        assert built.param_scheduler[0].end == 4

    # the rest through the tool: only seed 1 is trained
    study_tool.main([spec_path, '--out', out, '--work-dir', work,
                     '--markdown'])
    table = capsys.readouterr().out
    with open(out) as f:
        results = json.load(f)
    assert len(results['runs']) == 4
    assert results['runs'][:2] == first['runs']  # seed 0 not retrained
    assert all(osp.isfile(r['metric_source']) for r in results['runs'])
    assert {(r['variant'], r['seed']) for r in results['runs']} == \
        {(v, s) for v in ('e2e', 'k2') for s in (0, 1)}
    assert 'accuracy_study.py' in results['study']['commands'][-1]

    # the markdown table's mean / std are those of the runs
    rows = {line.split('|')[1].strip(): [c.strip() for c in
                                         line.split('|')[2:-1]]
            for line in table.splitlines()
            if line.startswith('| e2e') or line.startswith('| k2')}
    assert set(rows) == {'e2e', 'k2'}
    means = {}
    for variant, cells in rows.items():
        values = [r['value'] for r in sorted(results['runs'],
                                             key=lambda r: r['seed'])
                  if r['variant'] == variant]
        means[variant] = statistics.mean(values)
        assert cells[0] == f'{statistics.mean(values):.2f}'
        assert cells[1] == f'{statistics.stdev(values):.2f}'
        assert cells[2:4] == [f'{v:.2f}' for v in values]
        assert cells[4] == '4'
    assert rows['e2e'][5] == '0'
    assert rows['k2'][5] == f'{means["k2"] - means["e2e"]:+.2f}'
    assert [r['variant'] for r in summarize(results)] == ['e2e', 'k2']

    # every run keeps mmseg's per-class IoU; their mean is the run's mIoU
    classes = None
    for run in results['runs']:
        per_class = run['per_class']
        assert len(per_class) == 19 and 'road' in per_class
        classes = classes or list(per_class)
        assert list(per_class) == classes
        present = [v for v in per_class.values() if v is not None]
        assert present and all(0 <= v <= 100 for v in present)
        assert abs(statistics.mean(present) - run['value']) <= 0.011
    # --per-class refills a run recorded without it (from its log) and
    # prints the mean per class and variant, with the difference to e2e
    with open(out) as f:
        stripped = json.load(f)
    kept = stripped['runs'][3].pop('per_class')
    with open(out, 'w') as f:
        json.dump(stripped, f)
    study_tool.main([spec_path, '--out', out, '--report-only',
                     '--per-class'])
    printed = capsys.readouterr().out
    with open(out) as f:
        assert json.load(f)['runs'][3]['per_class'] == kept
    road = next(line for line in printed.splitlines()
                if line.startswith('| road |'))
    cells = [c.strip() for c in road.split('|')[2:-1]]
    mean = {v: statistics.mean(r['per_class']['road'] for r in
                               results['runs'] if r['variant'] == v)
            for v in ('e2e', 'k2')}
    assert cells == [f'{mean["e2e"]:.1f}',
                     f'{mean["k2"]:.1f} ({mean["k2"] - mean["e2e"]:+.1f})']
    assert len(per_class_table(results).splitlines()) == 2 + 19

    # a finished study: nothing is launched
    launch, calls = _counting_launch()
    again = run_study(spec, out, work_dir=work, launch=launch,
                      log=lambda *a: None)
    assert calls == [] and again['runs'] == results['runs']

    # a lost run (e.g. killed): only that one runs again
    with open(out) as f:
        partial = json.load(f)
    lost = partial['runs'].pop(1)
    with open(out, 'w') as f:
        json.dump(partial, f)
    launch, calls = _counting_launch()
    again = run_study(spec, out, work_dir=work, launch=launch,
                      log=lambda *a: None)
    assert len(calls) == 1
    assert calls[0][calls[0].index('--work-dir') + 1] == lost['work_dir']
    assert len(again['runs']) == 4 and \
        again['runs'][-1]['variant'] == lost['variant'] and \
        again['runs'][-1]['seed'] == lost['seed']
    assert not [f for f in os.listdir(tmp_path) if f.endswith('.tmp')]

    # another iteration count is refused, through the function and the tool
    with pytest.raises(StudyError, match=r'\[4\] iterations.*asks for 5'):
        run_study(spec, out, work_dir=work, iters=5, launch=launch)
    with pytest.raises(SystemExit, match='asks for 5'):
        study_tool.main([spec_path, '--out', out, '--iters', '5'])
    assert len(calls) == 1

    # seeds and variants are the spec's; report-only and the plot
    with pytest.raises(StudyError, match='not in the spec'):
        run_study(spec, out, work_dir=work, seeds=[7], launch=launch)
    with pytest.raises(StudyError, match='unknown variant'):
        run_study(spec, out, work_dir=work, variants=['k8'], launch=launch)
    assert markdown_table(again).count('\n') == 3
    pytest.importorskip('matplotlib')
    png = str(tmp_path / 'study.png')
    study_tool.main([spec_path, '--out', out, '--report-only', '--plot',
                     png])
    assert osp.getsize(png) > 0


def test_read_per_class(tmp_path):
    """The last per-class table of the newest log; nan is None; a log
    without the table (classification) gives None."""
    table = ("per class results:\n\n+-------+-------+-------+\n"
             "| Class |  IoU  |  Acc  |\n+-------+-------+-------+\n"
             "|  road | {} | 90.0 |\n| rider |  nan  |  nan  |\n"
             "| traffic light | 12.5 | 13.0 |\n"
             "+-------+-------+-------+\nIter(val) [2/2] mIoU: 1\n")
    old = tmp_path / '20260101_000000'
    new = tmp_path / '20260102_000000'
    old.mkdir()
    new.mkdir()
    (old / '20260101_000000.log').write_text(table.format('99.0'))
    (new / '20260102_000000.log').write_text(
        table.format('10.0') + 'later\n' + table.format('40.25'))
    assert read_per_class(str(tmp_path)) == {
        'road': 40.25, 'rider': None, 'traffic light': 12.5}
    (new / '20260102_000000.log').write_text('accuracy/top1: 73.6\n')
    assert read_per_class(str(tmp_path)) is None
    assert read_per_class(str(tmp_path / 'missing')) is None
    (new / '20260102_000000.log').write_text(table.format('high'))
    with pytest.raises(StudyError, match="'high' of 'road'"):
        read_per_class(str(tmp_path))


def test_spec_errors(tmp_path):
    spec = load_spec(_write_spec(tmp_path))
    spec.variants['k2']['options']['train_cfg.max_iters'] = 10
    with pytest.raises(StudyError, match='study sets itself'):
        run_study(spec, str(tmp_path / 'r.json'), dry_run=True,
                  log=lambda *a: None)
    bad = tmp_path / 'bad.py'
    bad.write_text("study = dict(name='x', metric='mIoU', iters=0, "
                   "seeds=[0], data=dict(kind='synthetic_cityscapes', "
                   "root='d'), variants=dict(a=dict(config='c.py')))\n")
    with pytest.raises(StudyError, match='iters must be an int >= 1'):
        load_spec(str(bad))


# ------------------------------------------------------- generated data


def test_data_generator_options(tmp_path):
    import numpy as np

    import make_synthetic_cifar10 as cifar_tool
    import make_synthetic_cityscapes as cityscapes_tool
    from mmseg_infopro.datasets.classification import (CIFAR10Dataset,
                                                       class_pattern_images)
    assert cityscapes_tool.parse_args(['--val-images', '7']).num_val == 7
    assert cityscapes_tool.parse_args(['--num-val', '3']).num_val == 3
    # difficulty 0 is the historical generator, draw for draw
    labels = np.arange(20) % 10
    easy = class_pattern_images(labels, 32, np.random.default_rng(5))
    same = class_pattern_images(labels, 32, np.random.default_rng(5),
                                difficulty=0.0)
    hard = class_pattern_images(labels, 32, np.random.default_rng(5),
                                difficulty=1.0)
    assert np.array_equal(easy, same) and not np.array_equal(easy, hard)
    assert hard.shape == easy.shape and hard.dtype == np.uint8
    for bad in (-0.1, 1.5, True):
        with pytest.raises(ValueError, match='difficulty'):
            class_pattern_images(labels, 32, np.random.default_rng(0),
                                 difficulty=bad)
    root = str(tmp_path / 'cifar')
    cifar_tool.main([root, '--train-per-class', '2', '--test-per-class',
                     '1', '--difficulty', '0.8', '--noise', '10'])
    assert len(CIFAR10Dataset(data_root=root, test_mode=True)) == 10
    with pytest.raises(SystemExit, match='--difficulty'):
        cifar_tool.main([str(tmp_path / 'x'), '--difficulty', '2'])


def test_difference_to_e2e_is_over_the_seeds_both_have():
    """A variant with fewer seeds than E2E is compared with E2E on its own
    seeds (not with E2E's mean over all of them)."""
    def run(variant, seed, value):
        return dict(variant=variant, seed=seed, value=value, iters=10)
    results = dict(study=dict(baseline='e2e', seeds=[0, 1, 2],
                              variants=dict(e2e={}, k2={}, k4={})),
                   runs=[run('e2e', 0, 60.0), run('e2e', 1, 70.0),
                         run('e2e', 2, 80.0), run('k2', 0, 59.0),
                         run('k2', 1, 67.0), run('k2', 2, 80.0),
                         run('k4', 0, 58.0)])
    rows = {r['variant']: r for r in summarize(results)}
    assert rows['e2e']['delta'] == 0
    assert rows['k2']['delta'] == pytest.approx(-4 / 3)
    assert rows['k4']['delta'] == pytest.approx(-2.0)  # not 58 - 70
    assert '| k4 | 58.00 | - | 58.00 | - | - | 10 | -2.00 |' in \
        markdown_table(results)
