"""tools/harness/device_check.py (the Python stages of
tools/gpu_check.sh) and its command-line face tools/gpu_check.py, on the
CPU: JUnit counts, the cuts of a benchmark JSON, the report merge of a
stage folder, and the CPU stand-in of the AMP stage on the demo model."""
import json
import os.path as osp
import subprocess
import sys

import pytest

from conftest import REPO

sys.path.insert(0, osp.join(REPO, 'tools'))
import gpu_check  # noqa: E402  (tools/gpu_check.py)
from harness import device_check as dc  # noqa: E402

MiB = 2**20

JUNIT = '''<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" tests="6">
 <testcase classname="tests.test_a" name="test_ok1" time="0.1"/>
 <testcase classname="tests.test_a" name="test_ok2" time="0.1"/>
 <testcase classname="tests.test_a" name="test_bad" time="0.1">
  <failure message="assert 1 == 2">trace</failure></testcase>
 <testcase classname="tests.test_b" name="test_err" time="0.1">
  <error message="fixture blew up">trace</error></testcase>
 <testcase classname="tests.test_b" name="test_gpu" time="0.0">
  <skipped type="pytest.skip" message="needs CUDA">skip</skipped></testcase>
</testsuite>
<testsuite name="other" tests="1">
 <testcase classname="tests.test_c" name="test_ok3" time="0.1"/>
</testsuite></testsuites>
'''


def test_pytest_counts_exact(tmp_path):
    """Every test case counted once, in the right bucket, across suites;
    failures and errors named, skips with their message; not ok."""
    junit = tmp_path / 'junit.xml'
    junit.write_text(JUNIT)
    result = dc.pytest_counts(str(junit))
    assert {k: result[k] for k in dc.COUNT_KEYS} == dict(
        tests=6, passed=3, failed=1, errors=1, skipped=1)
    assert result['failed_tests'] == ['tests.test_a::test_bad',
                                      'tests.test_b::test_err']
    assert result['skipped_tests'] == ['tests.test_b::test_gpu: needs CUDA']
    assert result['ok'] is False


def test_pytest_counts_ok_and_unreadable(tmp_path):
    """Passed and skipped only: ok. Nothing passed: not ok. A missing or
    broken file: not ok, with the reason."""
    junit = tmp_path / 'ok.xml'
    junit.write_text(JUNIT.replace(
        '<failure message="assert 1 == 2">trace</failure>', '').replace(
            '<error message="fixture blew up">trace</error>', ''))
    result = dc.pytest_counts(str(junit))
    assert (result['passed'], result['failed'], result['errors'],
            result['skipped'], result['ok']) == (5, 0, 0, 1, True)
    skipped_only = tmp_path / 'skipped.xml'
    skipped_only.write_text(
        '<testsuite><testcase classname="t" name="x"><skipped/></testcase>'
        '</testsuite>')
    result = dc.pytest_counts(str(skipped_only))
    assert (result['tests'], result['skipped'], result['ok']) == (1, 1, False)
    assert result['skipped_tests'] == ['t::x: ']
    broken = tmp_path / 'broken.xml'
    broken.write_text('<testsuite><testcase')
    for path in (broken, tmp_path / 'missing.xml'):
        result = dc.pytest_counts(str(path))
        assert result['ok'] is False and str(path) in result['error']


def test_pytest_counts_cli(tmp_path, capsys):
    """tools/gpu_check.py pytest-counts writes the result, prints the
    counts and exits 1 on a failure."""
    junit, out = tmp_path / 'junit.xml', tmp_path / 'counts.json'
    junit.write_text(JUNIT)
    assert gpu_check.main(['pytest-counts', str(out), str(junit)]) == 1
    assert json.loads(out.read_text()) == dc.pytest_counts(str(junit))
    assert capsys.readouterr().out == (
        "pytest: {'tests': 6, 'passed': 3, 'failed': 1, 'errors': 1, "
        "'skipped': 1}\n")


def bench_json(cuts, **schedules):
    """A tools/benchmark.py result holding only what the checks read."""
    return dict(schedules={
        name: dict(cuts=cuts if name == 'infopro' else [], **fields)
        for name, fields in schedules.items()})


def test_benchmark_cuts(tmp_path, capsys):
    """The infopro cuts as --cuts takes them, from a dict or a file;
    no cut: an empty string (gpu_check.sh then plans anew)."""
    result = bench_json([[3, 13], [4, 0]], e2e={}, infopro={})
    assert dc.benchmark_cuts(result) == '3,13;4,0'
    assert dc.benchmark_cuts(bench_json([], infopro={})) == ''
    path = tmp_path / 'bench.json'
    path.write_text(json.dumps(bench_json([[2, 1]], infopro={})))
    assert dc.benchmark_cuts(str(path)) == '2,1'
    assert gpu_check.main(['cuts', str(path)]) == 0
    assert capsys.readouterr().out == '2,1\n'
    with pytest.raises(dc.DeviceCheckError, match='cannot read'):
        dc.benchmark_cuts(str(tmp_path / 'missing.json'))
    with pytest.raises(SystemExit, match='cuts: cannot read'):
        gpu_check.main(['cuts', str(tmp_path / 'missing.json')])


def peak(mib, **extra):
    return dict(peak_mib=mib, peak_bytes=int(mib * MiB), **extra)


def write_stage(stage_dir, name, status='ok', result=None, elapsed=1.5):
    (stage_dir / f'{name}.status.json').write_text(json.dumps(dict(
        status=status, rc=0 if status == 'ok' else 1, elapsed_s=elapsed,
        limit_s=100, command=f'run {name}')))
    if result is not None:
        (stage_dir / f'{name}.json').write_text(json.dumps(result))


@pytest.fixture
def stage_dir(tmp_path):
    """Every expected stage ok: K=2 device and fake rows (device E2E 1%
    above fake), K=4 rows whose fake run used other cuts."""
    d = tmp_path / 'stages'
    d.mkdir()
    (d / 'env.json').write_text(json.dumps(dict(
        mode='cpu', device_name='x86_64', torch='2.x')))
    write_stage(d, 'env')
    write_stage(d, 'a_amp', result=dict(
        max_rel_diff_loss=1e-3, autocast_dtype=dict(module1='bfloat16'),
        checks=dict(finite=True), ok=True))
    write_stage(d, 'b_device_k2', result=bench_json(
        [[3, 0]], e2e=peak(101.0, time_ratio=1.0),
        checkpoint=peak(80.0, time_ratio=1.25),
        infopro=peak(60.0, time_ratio=1.05, time_ratios=[1.0, 1.1],
                     hook_mib={'mem.e2e_est': 106.05})))
    write_stage(d, 'b_fake_k2', result=bench_json(
        [[3, 0]], e2e=peak(100.0), checkpoint=peak(80.0),
        infopro=peak(50.0)))
    k4 = bench_json([[2, 1], [3, 4], [3, 14]], e2e=peak(101.0),
                    infopro=peak(40.0, time_ratio=1.5))
    k4['planner'] = dict(cuts=[[2, 1], [3, 4], [3, 14]])
    write_stage(d, 'b_device_k4', result=k4)
    write_stage(d, 'b_fake_k4', result=bench_json(
        [[2, 1], [3, 4], [3, 15]], e2e=peak(100.0), infopro=peak(40.0)))
    write_stage(d, 'd_hook', result=dict(mem=[dict(iter=3)], ok=True))
    write_stage(d, 'e_pytest_run')
    write_stage(d, 'e_pytest', result=dict(passed=6, failed=0, errors=0,
                                           skipped=3, ok=True))
    return d


def test_merge_report_figures(stage_dir):
    """Device / fake - 1 per row, the cuts noted where the fake run used
    others, the time ratios and the hook's E2E estimate against the
    measured E2E peak; every stage ok."""
    summary = dc.merge_report(str(stage_dir))
    assert summary['ok'] is True
    assert list(summary['stage_status']) == sorted(dc.EXPECTED_STAGES)
    rows = {e['row']: e for e in summary['memory']}
    assert list(rows) == [row for row, _, _ in dc.MEMORY_ROWS]
    assert rows['E2E']['diff_pct'] == pytest.approx(1.0, abs=1e-5)
    assert rows['E2E + checkpointing']['diff_pct'] == pytest.approx(0.0)
    ip2 = rows['InfoPro K=2 (config cut)']
    assert ip2['diff_pct'] == pytest.approx(20.0, abs=1e-5)
    assert (ip2['device_peak_mib'], ip2['fake_peak_mib']) == (60.0, 50.0)
    assert ip2['cuts'] == [[3, 0]] and 'note' not in ip2
    ip4 = rows['InfoPro K=4 (planned)']
    assert ip4['cuts'] == [[2, 1], [3, 4], [3, 14]]
    assert ip4['note'] == 'fake run used cuts [[2, 1], [3, 4], [3, 15]]'
    assert summary['time_ratio'] == dict(
        infopro_k2_vs_e2e=1.05, checkpoint_vs_e2e=1.25,
        infopro_k4_vs_e2e=1.5, infopro_k2_time_ratios=[1.0, 1.1])
    assert summary['planner_k4'] == dict(cuts=[[2, 1], [3, 4], [3, 14]])
    assert summary['benchmark_hook_e2e_estimate_vs_measured_pct'] == \
        pytest.approx(5.0)
    lines = dc.report_lines(summary, 'out.json')
    assert lines[0] == 'gpu_check (cpu, x86_64, torch 2.x)'
    assert '  a_amp          ok          1.5s' in lines
    assert any(line.startswith('    E2E ') and line.rstrip().endswith(
        '101.0     100.0   +1.00%') for line in lines)
    assert ('  step time x E2E: InfoPro K=2 1.050, checkpointing 1.250, '
            'InfoPro K=4 1.500') in lines
    assert '  pytest: 6 passed, 0 failed, 0 errors, 3 skipped' in lines
    assert lines[-1] == '  all stages ok: True; wrote out.json'


def test_merge_report_missing_and_failed(stage_dir, tmp_path, capsys):
    """A failed stage and a missing one make the report not ok (exit 1
    from the tool); rows without a device run have no difference."""
    write_stage(stage_dir, 'd_hook', status='timeout')
    (stage_dir / 'b_device_k4.status.json').unlink()
    (stage_dir / 'b_device_k4.json').unlink()
    out = tmp_path / 'report.json'
    assert gpu_check.main(['report', str(out), str(stage_dir)]) == 1
    summary = json.loads(out.read_text())
    assert summary['ok'] is False
    assert summary['stage_status']['d_hook'] == 'timeout'
    assert summary['stages']['b_device_k4'] == dict(status='missing',
                                                    result=None)
    ip4 = summary['memory'][3]
    assert 'diff_pct' not in ip4 and 'device_peak_mib' not in ip4
    assert ip4['fake_peak_mib'] == 40.0
    assert summary['time_ratio']['infopro_k4_vs_e2e'] is None
    printed = capsys.readouterr().out
    assert '  d_hook         timeout     1.5s  (rc 1)' in printed
    assert '  b_device_k4    missing     0.0s  (rc None)' in printed
    assert f'all stages ok: False; wrote {out}' in printed


def test_report_without_mmseg(stage_dir, tmp_path):
    """Where mmseg cannot be imported (a GPU image whose wheels did not
    install), the report still comes out (the module file alone)."""
    out = tmp_path / 'report.json'
    code = ("import sys; sys.modules['mmseg'] = None; "
            "sys.argv[0] = 'gpu_check.py'; import runpy; "
            f"runpy.run_path({osp.join(REPO, 'tools', 'gpu_check.py')!r}, "
            "run_name='__main__')")
    proc = subprocess.run(
        [sys.executable, '-c', code, 'report', str(out), str(stage_dir)],
        capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert 'all stages ok: True' in proc.stdout
    assert json.loads(out.read_text())['memory'][0]['diff_pct'] == \
        pytest.approx(1.0, abs=1e-5)


def test_amp_check_cpu(one_thread):
    """The CPU stand-in of the AMP stage on the demo model: bf16 autocast
    inside both modules, a CPU GradScaler, every loss finite and within
    the CPU tolerances of fp32, the documented keys."""
    result = dc.amp_check(cpu=True)
    assert list(result) == [
        'device', 'config', 'batch', 'size', 'steps', 'optim_wrapper',
        'autocast_dtype', 'tolerance', 'max_rel_diff_loss', 'records',
        'checks', 'ok']
    assert result['device'] == 'cpu' and result['size'] == [64, 128]
    assert result['config'] == osp.join(
        'configs', 'demo', 'deeplabv3_r18-tiny_k2_synthetic.py')
    assert result['optim_wrapper'] == 'CPUAmpOptimWrapper'
    assert result['autocast_dtype'] == dict(module1='bfloat16',
                                            module2='bfloat16')
    first, any_ = dc.AMP_TOL['cpu']
    assert result['tolerance'] == dict(first=first, any=any_)
    records = result['records']
    assert [r['step'] for r in records] == list(range(result['steps']))
    for r in records:
        assert set(r) == {'step', 'fp32', 'amp', 'fp32_time_s',
                          'amp_time_s', 'scale', 'rel_diff'}
        assert set(r['rel_diff']) == set(r['fp32']) and 'loss' in r['fp32']
        assert r['fp32']['loss'] > 0 and r['scale'] > 0
        # the relative difference is the one of the logged losses
        assert r['rel_diff']['loss'] == pytest.approx(
            abs(r['amp']['loss'] - r['fp32']['loss']) / r['fp32']['loss'])
        # bf16 changes the losses, but not by much
        assert 0 < r['rel_diff']['loss'] <= any_
    assert records[0]['rel_diff']['loss'] <= first
    assert result['max_rel_diff_loss'] == max(
        r['rel_diff']['loss'] for r in records)
    assert result['checks'] == dict(
        finite=True, first_step_close=True, all_steps_close=True,
        autocast=True, scale_positive=True)
    assert result['ok'] is True
    assert dc.amp_summary(result).endswith(
        "autocast {'module1': 'bfloat16', 'module2': 'bfloat16'}: ok")
