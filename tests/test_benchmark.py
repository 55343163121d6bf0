"""tools/benchmark.py and mmseg_infopro.memory.tracking on the demo model
(ResNetV1c-18, 32 base channels), real mmseg, real and fake tensors."""
import json
import os.path as osp
import sys

import pytest
from mmseg_infopro.memory.tracking import time_steps

from conftest import DEMO_K1, DEMO_K2, REPO

sys.path.insert(0, osp.join(REPO, 'tools'))
import benchmark  # noqa: E402  (tools/benchmark.py)


def test_benchmark_cpu_three_schedules(tmp_path, one_thread):
    """Real tensors on the CPU, MemTracker: three schedules in the JSON,
    InfoPro K=2 and checkpointing peak clearly below E2E, optimizer states
    counted, per-module peaks recorded, paired step-time ratios; the same
    run under FakeTensorMode gives the same bytes."""
    out = tmp_path / 'bench.json'
    returned = benchmark.main([
        DEMO_K2, '--batch', '2', '--size', '160', '320', '--repeat', '1',
        '--warmup', '0', '--out', str(out), '--quiet'])
    result = json.loads(out.read_text())
    assert result['schedules'].keys() == returned['schedules'].keys()
    runs = result['schedules']
    assert list(runs) == ['e2e', 'checkpoint', 'infopro']
    e2e, cp, ip = runs['e2e'], runs['checkpoint'], runs['infopro']
    assert (e2e['num_modules'], ip['num_modules']) == (1, 2)
    assert ip['cuts'] == [[3, 0]]  # the config's cut
    assert cp['cuts'] == e2e['cuts'] == []
    # every ratio is the schedule's peak over E2E's peak
    for run in runs.values():
        assert run['peak_mib'] == pytest.approx(run['peak_bytes'] / 2**20)
        assert run['ratio'] == pytest.approx(run['peak_bytes'] /
                                             e2e['peak_bytes'], rel=1e-12)
    assert cp['peak_bytes'] < e2e['peak_bytes']
    # at 160x320 the parameters, gradients and momentum of this small
    # model, and the foreach optimizer step's temporaries (the measured
    # step uses foreach SGD, as on a GPU), are a large share of the peak
    # (at 96x192 the optimizer step is the peak of every schedule); full
    # size: docs/benchmarks.md
    assert ip['ratio'] < 0.93, ip['ratio']
    assert cp['ratio'] < 0.93, cp['ratio']
    assert ip['peak_bytes'] < e2e['peak_bytes']
    # SGD momentum: one state per parameter, counted at the peak
    bd = e2e['breakdown_mib']
    assert bd['Optstate'] == pytest.approx(bd['Parameter']) and bd[
        'Parameter'] > 1
    assert len(ip['module_peaks_mib']) == 2
    assert max(ip['module_peaks_mib']) == pytest.approx(ip['peak_mib'])
    for run in runs.values():
        assert run['time_s'] > 0 and len(run['times_s']) == 1
        assert 0 < run['cpu_time_s'] and len(run['cpu_times_s']) == 1
    # one round: each time ratio is that round's time over E2E's
    for run in runs.values():
        assert run['time_ratio'] == pytest.approx(run['times_s'][0] /
                                                  e2e['times_s'][0])
        assert run['cpu_time_ratio'] == pytest.approx(
            run['cpu_times_s'][0] / e2e['cpu_times_s'][0])
        assert run['time_s'] == run['times_s'][0]
    # E2E has one module, whose peak is the step's
    assert e2e['module_peaks_mib'] == pytest.approx([e2e['peak_mib']])
    assert result['command'].startswith('python tools/benchmark.py ')
    # what InfoProMemoryHook logs on the same step: the module peaks, and
    # an E2E estimate close to the measured E2E step
    hook = ip['hook_mib']
    assert [hook['mem.s1'], hook['mem.s2']] == pytest.approx(
        ip['module_peaks_mib'], rel=1e-6)
    assert hook['mem.e2e_est'] == pytest.approx(e2e['peak_mib'], rel=0.05)
    assert e2e['hook_mib'] is None and cp['hook_mib'] is None

    # fake tensors (and the fake-safe accuracy) count the same bytes as
    # the real step: the full-size fake figures are real ones
    fake = benchmark.main([
        DEMO_K2, '--batch', '2', '--size', '160', '320', '--fake',
        '--quiet'])['schedules']
    for name, run in runs.items():
        assert fake[name]['peak_mib'] == pytest.approx(run['peak_mib'],
                                                       rel=2e-3), name
        assert fake[name]['module_peaks_mib'] == pytest.approx(
            run['module_peaks_mib'], rel=2e-3), name


def test_fake_mode_large_size_and_planned_cuts(tmp_path):
    """Fake mode at a size the CPU could not step in a test (512x1024,
    batch 4), with cuts planned for K=3: the prediction matches the
    measurement, and FLOPs are counted. The mmseg accuracy function is
    restored afterwards."""
    import mmseg.models.decode_heads.decode_head as decode_head
    original = decode_head.accuracy
    result = benchmark.main([
        DEMO_K2, '--batch', '4', '--size', '512', '1024', '--fake',
        '--num-modules', '3', '--schedules', 'e2e,infopro', '--flops',
        '--quiet'])
    assert decode_head.accuracy is original
    runs = result['schedules']
    planner = result['planner']
    assert len(planner['cuts']) == 2
    assert runs['infopro']['cuts'] == planner['cuts']
    assert planner['predicted_peak_mib'] == pytest.approx(
        runs['infopro']['peak_mib'], rel=0.01)
    assert planner['predicted_e2e_mib'] == pytest.approx(
        runs['e2e']['peak_mib'], rel=0.01)
    assert runs['infopro']['ratio'] < 0.7
    hook = runs['infopro']['hook_mib']
    assert hook['mem.e2e_est'] == pytest.approx(runs['e2e']['peak_mib'],
                                                rel=0.02)
    assert hook['mem.saving'] == pytest.approx(
        1 - runs['infopro']['peak_mib'] / hook['mem.e2e_est'])
    assert runs['e2e']['time_s'] is None  # fake runs are not timed
    # the local heads' compute, counted from the operators' shapes, as
    # the planner's profile predicts it (module 2 hands stage 3 to the
    # auxiliary head, so its default head reads it and looks ahead)
    assert runs['e2e']['gflops'] > 0
    assert runs['infopro']['flops_ratio'] > 1
    assert planner['predicted_gflops'] == pytest.approx(
        runs['infopro']['gflops'], rel=0.01)
    assert planner['predicted_e2e_gflops'] == pytest.approx(
        runs['e2e']['gflops'], rel=0.01)


def test_k1_config_needs_cuts():
    with pytest.raises(SystemExit, match='no cuts'):
        benchmark.main([DEMO_K1, '--fake', '--size', '64', '128',
                        '--quiet'])


def test_parse_cuts():
    assert benchmark.parse_cuts('3,13') == [(3, 13)]
    assert benchmark.parse_cuts('2,1; 3,4;(3,14)') == [
        (2, 1), (3, 4), (3, 14)]
    with pytest.raises(Exception, match='stage,block'):
        benchmark.parse_cuts('3-13')


def test_time_steps_pairs_rounds(monkeypatch):
    """Rounds are interleaved with the order rotated; the time ratio is
    the median of per-round ratios."""
    import mmseg_infopro.memory.tracking as memory
    calls = []
    # perf_counter is read before and after every step: 0 then duration
    stamps = iter([0, 1.0, 0, 2.0, 0, 4.0, 0, 1.0, 0, 3.0, 0, 9.0])
    monkeypatch.setattr(memory.time, 'perf_counter', lambda: next(stamps))
    out = time_steps({name: (lambda name=name: calls.append(name))
                      for name in ('e2e', 'infopro')}, repeat=3, warmup=0)
    assert calls == ['e2e', 'infopro', 'infopro', 'e2e', 'e2e', 'infopro']
    assert out['e2e']['times'] == [1.0, 1.0, 3.0]
    assert out['infopro']['times'] == [2.0, 4.0, 9.0]
    assert out['infopro']['ratios'] == [2.0, 4.0, 3.0]
    assert out['infopro']['time_ratio'] == 3.0
    assert out['e2e']['time_ratio'] == 1.0
