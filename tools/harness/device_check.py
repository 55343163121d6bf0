"""The Python stages of the one-GPU check (``tools/gpu_check.sh``,
docs/gpu_check.md), which ``tools/gpu_check.py`` runs and prints:

* :func:`amp_check`: real AMP (mmengine's ``AmpOptimWrapper``, dynamic
  loss scale, fp16 autocast: what ``tools/train.py --amp`` builds)
  against fp32 (``OptimWrapper``): InfoPro K=2 training steps from the
  same weights on the same batches with the same dropout masks; per step
  every logged loss of both, their relative difference, the loss scale,
  the autocast dtype seen inside module 1 and module 2, and each step's
  peak memory and time. ``cpu=True``: the CPU stand-in (bf16 autocast, a
  CPU GradScaler, the small demo model), to test the script without a GPU;
* :func:`hook_check`: a few iterations of ``tools/train.py`` on generated
  data with ``InfoProMemoryHook`` at interval 1, ``mem.*`` read back from
  the run's ``scalars.json``;
* :func:`benchmark_cuts`: the InfoPro cuts of a ``tools/benchmark.py``
  result as ``"3,13;4,0"`` (for ``--cuts``);
* :func:`pytest_counts`: passed / failed / errors / skipped of a JUnit XML
  file;
* :func:`merge_report` / :func:`report_lines`: the stage results of a
  stage folder (``<stage>.status.json`` written by gpu_check.sh,
  ``<stage>.json`` by the stage) merged into one dict with the derived
  figures, and its short summary.

Every check returns a JSON-able dict with ``checks`` (name -> bool, where
it has them) and ``ok``; the callers write it (:func:`harness.output.save_json`). At
import this module needs the standard library only (torch, mmengine and
mmseg are imported by :func:`amp_check` and :func:`hook_check`), so that
the cuts, counts and report still work where the packages are missing.
"""
import copy
import glob
import json
import math
import os
import os.path as osp
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from typing import List, Optional, Tuple

from .output import fmt, read_json

#: the repository (configs and tools/ of a source checkout)
REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
GPU_CONFIG = osp.join(REPO, 'configs', 'infopro',
                      'deeplabv3_r101_k2_cityscapes.py')
DEMO_CONFIG = osp.join(REPO, 'configs', 'demo',
                       'deeplabv3_r18-tiny_k2_synthetic.py')

#: amp: largest relative difference AMP vs fp32 of the total loss at the
#: first step (same weights: precision only) and at any step (after a
#: skipped AMP step the trajectories differ by one SGD step)
AMP_TOL = dict(cuda=(0.01, 0.05), cpu=(0.05, 0.1))
#: what hook_check requires InfoProMemoryHook to log at every iteration
HOOK_KEYS = ('mem.s1', 'mem.s2', 'mem.e2e_est', 'mem.saving')
#: the counts of pytest_counts, in this order
COUNT_KEYS = ('tests', 'passed', 'failed', 'errors', 'skipped')


class DeviceCheckError(RuntimeError):
    """A check cannot run (e.g. no CUDA device) or its input is unusable."""


def _verdict(result: dict) -> str:
    return 'ok' if result['ok'] else 'FAILED ' + str(result['checks'])


def _require_cuda(stage: str, cpu: bool) -> None:
    import torch
    if not cpu and not torch.cuda.is_available():
        raise DeviceCheckError(
            f'{stage}: no CUDA device (use --cpu for the dry run)')


# ------------------------------------------------------------------- amp
def blocky_seg_batch(n: int, size: Tuple[int, int], num_classes: int,
                     seed: int) -> dict:
    """A dataloader batch (``inputs`` uint8 (3, H, W), ``data_samples``)
    with blocky labels: random classes on 16x16 blocks, a
    segmentation-like target rather than pixel noise, and no ignored
    pixels (unlike :func:`~mmseg_infopro.models.segmentors.
    synthetic_seg_batch`, whose per-pixel labels and ignore band would
    change the losses :func:`amp_check` has always compared)."""
    import torch
    from mmengine.structures import PixelData

    from mmseg.structures import SegDataSample
    gen = torch.Generator().manual_seed(seed)
    h, w = size
    inputs, samples = [], []
    for _ in range(n):
        inputs.append(torch.randint(0, 256, (3, h, w), generator=gen,
                                    dtype=torch.uint8))
        labels = torch.randint(0, num_classes, (1, h // 16 + 1, w // 16 + 1),
                               generator=gen)
        labels = labels.repeat_interleave(16, 1).repeat_interleave(16, 2)
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(data=labels[:, :h, :w].contiguous())
        sample.set_metainfo(dict(img_shape=(h, w), pad_shape=(h, w),
                                 ori_shape=(h, w)))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def _sgd(model):
    import torch
    return torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9,
                           weight_decay=5e-4)


def amp_check(cpu: bool = False) -> dict:
    """AMP against fp32 training steps of one model (see the module doc).

    On CUDA: DeepLabV3-R101 K=2, batch 2, 512x1024, 4 steps, fp16,
    tolerances :data:`AMP_TOL` ``['cuda']``; ``cpu=True``: the demo model,
    64x128, 3 steps, bf16, ``AMP_TOL['cpu']``. Returns ``device, config,
    batch, size, steps, optim_wrapper, autocast_dtype, tolerance,
    max_rel_diff_loss, records, checks, ok``; each record holds ``step``,
    the ``fp32`` and ``amp`` losses, ``rel_diff``, ``scale`` and the
    ``*_time_s`` (and on CUDA ``*_peak_mib``) of both."""
    import torch
    from mmengine.config import Config
    from mmengine.optim import AmpOptimWrapper, OptimWrapper
    from mmengine.registry import init_default_scope

    from mmseg_infopro.memory.building import build_model
    from mmseg_infopro.memory.tracking import MiB
    _require_cuda('amp', cpu)
    init_default_scope('mmseg')
    device = 'cpu' if cpu else 'cuda'
    config = DEMO_CONFIG if cpu else GPU_CONFIG
    size = (64, 128) if cpu else (512, 1024)
    batch, steps = 2, 3 if cpu else 4
    cfg = Config.fromfile(config)
    cfg.model.pretrained = None
    cfg.model.data_preprocessor.size = size
    fp32_model = build_model(cfg.model, seed=0)
    amp_model = copy.deepcopy(fp32_model)
    fp32_model.to(device).train()
    amp_model.to(device).train()
    num_classes = cfg.model.decode_head.num_classes

    fp32_wrapper = OptimWrapper(_sgd(fp32_model))
    if cpu:
        from mmseg_infopro.compat import cpu_amp_optim_wrapper
        amp_wrapper = cpu_amp_optim_wrapper(_sgd(amp_model))
    else:  # what tools/train.py --amp builds
        amp_wrapper = AmpOptimWrapper(optimizer=_sgd(amp_model),
                                      loss_scale='dynamic')
    # the dtype autocast gives inside module 1 (the stem's first conv) and
    # module 2 (the decode head's classifier)
    seen = {}

    def record(name):
        def hook(module, args, output):
            seen[name] = str(output.dtype).replace('torch.', '')
        return hook

    handles = [
        amp_model.backbone.stem[0].register_forward_hook(record('module1')),
        amp_model.decode_head.conv_seg.register_forward_hook(
            record('module2'))
    ]
    batches = [blocky_seg_batch(batch, size, num_classes, s)
               for s in range(steps)]
    records = []
    try:
        for step, data in enumerate(batches):
            row = dict(step=step)
            for name, model, wrapper in (('fp32', fp32_model, fp32_wrapper),
                                         ('amp', amp_model, amp_wrapper)):
                torch.manual_seed(1000 + step)  # same dropout masks
                if device == 'cuda':
                    torch.cuda.synchronize()
                    torch.cuda.reset_peak_memory_stats()
                started = time.perf_counter()
                log_vars = model.train_step(copy.deepcopy(data), wrapper)
                if device == 'cuda':
                    torch.cuda.synchronize()
                    row[f'{name}_peak_mib'] = \
                        torch.cuda.max_memory_allocated() / MiB
                row[f'{name}_time_s'] = time.perf_counter() - started
                row[name] = {k: float(v) for k, v in log_vars.items()}
            row['scale'] = float(amp_wrapper.loss_scaler.get_scale())
            row['rel_diff'] = {
                k: abs(row['amp'][k] - v) / max(abs(v), 1e-12)
                for k, v in row['fp32'].items() if k in row['amp']
            }
            records.append(row)
    finally:
        for h in handles:
            h.remove()
    first_tol, any_tol = AMP_TOL[device]
    finite = all(
        math.isfinite(v) for r in records for name in ('fp32', 'amp')
        for v in r[name].values())
    loss_diffs = [r['rel_diff']['loss'] for r in records]
    expected_dtype = 'bfloat16' if cpu else 'float16'
    checks = dict(
        finite=finite,
        first_step_close=loss_diffs[0] <= first_tol,
        all_steps_close=max(loss_diffs) <= any_tol,
        autocast=all(seen.get(m) == expected_dtype
                     for m in ('module1', 'module2')),
        scale_positive=records[-1]['scale'] > 0)
    return dict(
        device=device, config=osp.relpath(config, REPO), batch=batch,
        size=list(size), steps=steps, optim_wrapper=type(amp_wrapper).__name__,
        autocast_dtype=seen, tolerance=dict(first=first_tol, any=any_tol),
        max_rel_diff_loss=max(loss_diffs), records=records, checks=checks,
        ok=all(checks.values()))


def amp_summary(result: dict) -> str:
    """The one line ``tools/gpu_check.py amp`` prints."""
    diffs = [r['rel_diff']['loss'] for r in result['records']]
    return (f'amp: {result["optim_wrapper"]} vs OptimWrapper, '
            f'{result["steps"]} steps, loss rel. diff per step '
            f'{[f"{d:.2e}" for d in diffs]}, '
            f'scale {result["records"][-1]["scale"]:g}, autocast '
            f'{result["autocast_dtype"]}: {_verdict(result)}')


# ------------------------------------------------------------------ hook
HOOK_CFG = '''_base_ = [{base!r}]
data_root = {root!r}
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        dataset=dict(data_root=data_root))
val_dataloader = dict(num_workers=0, persistent_workers=False,
                      dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
model = dict(data_preprocessor=dict(size={size!r}))
train_cfg = dict(max_iters={iters}, val_interval=1000)
param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0,
                        end={iters}, by_epoch=False)]
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(interval=1000))
custom_hooks = [dict(type='InfoProMemoryHook', interval=1)]
'''


def hook_check(work_dir: str, cpu: bool = False, iters: int = 3,
               stdout=None, stderr=None) -> dict:
    """``tools/train.py`` with ``InfoProMemoryHook(interval=1)`` for
    ``iters`` iterations on data generated under ``work_dir`` (the demo
    K=2 model; 64x128 with ``cpu=True``, 256x512 on CUDA). The last 4000
    characters of its stdout and stderr go to ``stdout`` / ``stderr``
    (default: sys's). Returns ``device, size, iterations, train_rc, mem``
    (:data:`HOOK_KEYS` and ``iter`` per logged iteration), ``memory_field``
    (mmengine's CUDA ``memory``), ``checks`` and ``ok``."""
    _require_cuda('hook', cpu)
    size = (64, 128) if cpu else (256, 512)
    root = osp.join(work_dir, 'data')
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [REPO, os.environ.get('PYTHONPATH', '')]))
    if cpu:
        env['CUDA_VISIBLE_DEVICES'] = ''
    subprocess.run([
        sys.executable,
        osp.join(REPO, 'tools', 'make_synthetic_cityscapes.py'),
        '--root', root, '--num-train', '4', '--num-val', '2', '--height',
        str(size[0]), '--width', str(size[1]), '--force'
    ], check=True, env=env)
    cfg_path = osp.join(work_dir, 'hook_cfg.py')
    with open(cfg_path, 'w') as f:
        f.write(HOOK_CFG.format(base=DEMO_CONFIG, root=root, size=size,
                                iters=iters))
    train_dir = osp.join(work_dir, 'train')
    proc = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'train.py'), cfg_path,
         '--work-dir', train_dir], env=env, capture_output=True, text=True)
    (stdout or sys.stdout).write(proc.stdout[-4000:])
    (stderr or sys.stderr).write(proc.stderr[-4000:])
    records = []
    for path in glob.glob(osp.join(train_dir, '*', 'vis_data',
                                   'scalars.json')):
        with open(path) as f:
            records += [json.loads(line) for line in f]
    train = [r for r in records if 'loss' in r]
    checks = dict(
        train_rc_0=proc.returncode == 0,
        iterations_logged=len(train) == iters,
        mem_keys_every_iteration=bool(train) and all(
            all(k in r for k in HOOK_KEYS) for r in train),
        positive=bool(train) and all(
            r.get(k, 0) > 0 for r in train for k in HOOK_KEYS[:3]))
    if not cpu:  # mmengine logs `memory` (CUDA max allocated) on a GPU
        checks['cuda_run'] = bool(train) and all(
            r.get('memory') is not None for r in train)
    return dict(device='cpu' if cpu else 'cuda', size=list(size),
                iterations=iters, train_rc=proc.returncode,
                mem=[{k: r.get(k) for k in ('iter', ) + HOOK_KEYS}
                     for r in train],
                memory_field=[r.get('memory') for r in train],
                checks=checks, ok=all(checks.values()))


def hook_summary(result: dict) -> str:
    """The one line ``tools/gpu_check.py hook`` prints."""
    last = result['mem'][-1] if result['mem'] else {}
    return (f'hook: tools/train.py {result["iterations"]} iterations, last ' +
            ', '.join(f'{k} {last.get(k)}' for k in HOOK_KEYS) +
            f': {_verdict(result)}')


# ---------------------------------------------------------------- helpers
def benchmark_cuts(benchmark) -> str:
    """The InfoPro cuts of a ``tools/benchmark.py`` result (a dict or the
    path of its JSON) as ``"3,13;4,0"`` (``""`` for no cut)."""
    result = benchmark
    if not isinstance(benchmark, dict):
        result = read_json(benchmark)
        if result is None:
            raise DeviceCheckError(f'cuts: cannot read {benchmark}')
    cuts = result['schedules']['infopro']['cuts']
    return ';'.join(f'{a},{b}' for a, b in cuts)


def pytest_counts(junit: str) -> dict:
    """The test cases of a JUnit XML file: the :data:`COUNT_KEYS` counts,
    ``failed_tests`` (failures and errors, as ``classname::name``),
    ``skipped_tests`` (with the skip message) and ``ok`` (no failure, no
    error, something passed); ``dict(ok=False, error=...)`` when the file
    cannot be read or parsed."""
    counts = dict.fromkeys(COUNT_KEYS, 0)
    failed, skipped = [], []
    try:
        root = ET.parse(junit).getroot()
    except (OSError, ET.ParseError) as e:
        return dict(ok=False, error=f'{junit}: {e}')
    for case in root.iter('testcase'):
        counts['tests'] += 1
        name = f'{case.get("classname")}::{case.get("name")}'
        if case.find('failure') is not None:
            counts['failed'] += 1
            failed.append(name)
        elif case.find('error') is not None:
            counts['errors'] += 1
            failed.append(name)
        elif case.find('skipped') is not None:
            counts['skipped'] += 1
            skipped.append(
                f'{name}: {case.find("skipped").get("message", "")}')
        else:
            counts['passed'] += 1
    return dict(counts, failed_tests=failed, skipped_tests=skipped,
                ok=counts['failed'] == counts['errors'] == 0 and
                counts['passed'] > 0)


# ----------------------------------------------------------------- report
#: every stage gpu_check.sh runs (``setup`` only when it installs wheels)
EXPECTED_STAGES = ('env', 'a_amp', 'b_fake_k2', 'b_device_k2', 'b_device_k4',
                   'b_fake_k4', 'd_hook', 'e_pytest_run', 'e_pytest')
MEMORY_ROWS = (  # (row, benchmark run, schedule)
    ('E2E', 'k2', 'e2e'),
    ('E2E + checkpointing', 'k2', 'checkpoint'),
    ('InfoPro K=2 (config cut)', 'k2', 'infopro'),
    ('InfoPro K=4 (planned)', 'k4', 'infopro'),
)


def merge_report(stage_dir: str) -> dict:
    """Every stage of ``stage_dir`` (``<stage>.status.json`` with its
    ``<stage>.json`` as ``result``; :data:`EXPECTED_STAGES` not there are
    ``missing``) and the derived figures: ``memory`` (per
    :data:`MEMORY_ROWS`: device and fake-mode peak, ``diff_pct`` = device /
    fake - 1 in %), ``time_ratio``, ``planner_k4``,
    ``benchmark_hook_e2e_estimate_vs_measured_pct``, ``env``,
    ``stages``, ``stage_status`` and ``ok`` (every stage ``ok``)."""
    stages = {}
    for path in sorted(glob.glob(osp.join(stage_dir, '*.status.json'))):
        name = osp.basename(path)[:-len('.status.json')]
        stages[name] = dict(read_json(path) or {}, result=read_json(
            osp.join(stage_dir, name + '.json')))
    for name in EXPECTED_STAGES:
        stages.setdefault(name, dict(status='missing', result=None))
    env = read_json(osp.join(stage_dir, 'env.json')) or {}

    def bench(kind, run):
        st = stages.get(f'b_{kind}_{run}') or {}
        return st.get('result') or {}

    memory = []
    for row, run, schedule in MEMORY_ROWS:
        dev = bench('device', run).get('schedules', {}).get(schedule)
        fake = bench('fake', run).get('schedules', {}).get(schedule)
        entry = dict(row=row, cuts=(dev or fake or {}).get('cuts'))
        if dev:
            entry['device_peak_mib'] = dev['peak_mib']
        if fake:
            entry['fake_peak_mib'] = fake['peak_mib']
            if dev and fake['cuts'] != dev['cuts']:
                entry['note'] = f'fake run used cuts {fake["cuts"]}'
        if dev and fake and fake['peak_bytes']:
            entry['diff_pct'] = 100. * (dev['peak_bytes'] /
                                        fake['peak_bytes'] - 1)
        memory.append(entry)
    k2 = bench('device', 'k2').get('schedules', {})
    k4 = bench('device', 'k4').get('schedules', {})
    time_ratio = dict(
        infopro_k2_vs_e2e=k2.get('infopro', {}).get('time_ratio'),
        checkpoint_vs_e2e=k2.get('checkpoint', {}).get('time_ratio'),
        infopro_k4_vs_e2e=k4.get('infopro', {}).get('time_ratio'),
        infopro_k2_time_ratios=k2.get('infopro', {}).get('time_ratios'))
    planner = bench('device', 'k4').get('planner')
    hook_vs_e2e = None
    hook = k2.get('infopro', {}).get('hook_mib') or {}
    if hook.get('mem.e2e_est') and k2.get('e2e'):
        hook_vs_e2e = 100. * (hook['mem.e2e_est'] / k2['e2e']['peak_mib'] -
                              1)
    return dict(
        env=env, stages=stages, memory=memory, time_ratio=time_ratio,
        planner_k4=planner, benchmark_hook_e2e_estimate_vs_measured_pct=(
            hook_vs_e2e),
        stage_status={k: v.get('status') for k, v in stages.items()},
        ok=all(v.get('status') == 'ok' for v in stages.values()))


def report_lines(summary: dict, out: Optional[str] = None) -> List[str]:
    """The short summary of a :func:`merge_report` dict (``out``: where
    it was written, named on the last line)."""
    env, stages = summary['env'], summary['stages']
    lines = [f'gpu_check ({env.get("mode", "?")}, '
             f'{env.get("device_name", "?")}, torch {env.get("torch", "?")})']
    for name, st in stages.items():
        lines.append(f'  {name:<14} {st.get("status", "?"):<8} '
                     f'{st.get("elapsed_s", 0):6.1f}s' +
                     (f'  (rc {st.get("rc")})'
                      if st.get('status') != 'ok' else ''))
    lines.append('  memory of one step (MiB): device peak, fake mode, '
                 'difference')
    for e in summary['memory']:
        dev, fake = e.get('device_peak_mib'), e.get('fake_peak_mib')
        diff = e.get('diff_pct')
        lines.append(
            f'    {e["row"]:<26} {fmt(dev, ".1f"):>9} {fmt(fake, ".1f"):>9}'
            f' {"-" if diff is None else format(diff, "+.2f") + "%":>8}' +
            (f'  cuts {e["cuts"]}' if e.get('cuts') else ''))
    ratio = {k: fmt(v, '.3f') for k, v in summary['time_ratio'].items()
             if not k.endswith('ratios')}
    lines.append(f'  step time x E2E: InfoPro K=2 '
                 f'{ratio["infopro_k2_vs_e2e"]}, checkpointing '
                 f'{ratio["checkpoint_vs_e2e"]}, InfoPro K=4 '
                 f'{ratio["infopro_k4_vs_e2e"]}')
    amp = (stages.get('a_amp') or {}).get('result') or {}
    if amp:
        lines.append(f'  amp: max loss rel. diff '
                     f'{fmt(amp.get("max_rel_diff_loss"), ".2e")}, '
                     f'autocast {amp.get("autocast_dtype")}, '
                     f'checks {amp.get("checks")}')
    hook_res = (stages.get('d_hook') or {}).get('result') or {}
    if hook_res.get('mem'):
        lines.append(f'  hook (tools/train.py): {hook_res["mem"][-1]}')
    tests = (stages.get('e_pytest') or {}).get('result') or {}
    if tests:
        lines.append(f'  pytest: {tests.get("passed")} passed, '
                     f'{tests.get("failed")} failed, {tests.get("errors")} '
                     f'errors, {tests.get("skipped")} skipped')
    lines.append(f'  all stages ok: {summary["ok"]}; wrote {out}')
    return lines
