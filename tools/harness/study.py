"""Accuracy studies: does local learning keep accuracy?

A study trains every *variant* of one model (E2E, InfoPro K=2 / K=4, the
greedy baseline, other local losses) for the **same** number of iterations,
with the learning-rate schedule ending there, over several seeds, and
collects the final validation metric of each run into one JSON file.

* The spec is a small python config read with mmengine's
  ``Config.fromfile`` (``configs/study/*.py``)::

      study = dict(
          name='deeplabv3_r18', metric='mIoU', iters=1200, seeds=[0, 1, 2],
          data=dict(kind='synthetic_cityscapes', root='data/study/cs',
                    num_train=200, num_val=100, height=64, width=128),
          options={'model.data_preprocessor.size': (64, 128)},  # all runs
          variants=dict(
              e2e=dict(config='configs/demo/...k1...py'),
              k2=dict(config='configs/demo/...k2...py', options={}),
              greedy=dict(config='...k2...py',
                          options={'model.local_heads.0.recons_head': None})),
          threads=1)

* Every run is ``python tools/train.py CONFIG --work-dir DIR --cfg-options
  ...`` in a subprocess (the exact command line is kept in the JSON), with
  the spec's and the variant's options, then the study's own
  (:func:`run_options`): the seed, the data root, an ``IterBasedTrainLoop``
  of exactly ``iters`` iterations validating once at the end (also for
  epoch-based configs), every ``param_scheduler`` entry made
  iteration-based and rescaled from the config's own length to ``iters``
  (:func:`rescale_param_schedulers`), one checkpoint at the end, and the
  memory hook idle. The metric is read from the run's
  ``vis_data/scalars.json`` (the validation at the last iteration).
* The JSON is rewritten atomically after every run: a killed study loses
  at most the run in progress, and running it again skips the (variant,
  seed) pairs it holds. A JSON of another iteration count is refused (no
  choosing iterations after seeing results).

The face is ``tools/accuracy_study.py``.
"""
import json
import math
import os
import os.path as osp
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from glob import glob
from typing import Callable, Dict, List, Mapping, Optional, Sequence

from mmengine.config import Config, DictAction

from mmseg_infopro.engine.backbone_contract import is_int

from .synthetic_data import GeneratedDataError, ensure_generated

#: the repository holding ``tools/train.py`` (a source checkout)
REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TRAIN_SCRIPT = osp.join(REPO, 'tools', 'train.py')
#: mmengine's "no end" for a scheduler (``mmengine.optim.scheduler``)
INF = int(1e9)
#: scheduler fields measured in the scheduler's time unit (rescaled)
TIME_KEYS = ('begin', 'end', 'T_max', 'step_size', 'milestones', 'periods',
             'total_steps')
#: what the generated dataset kinds take (besides ``kind`` and ``root``)
DATA_KINDS = {
    'synthetic_cityscapes':
    dict(num_train=16, num_val=4, height=128, width=256, seed=0),
    'synthetic_cifar10':
    dict(train_per_class=100, test_per_class=20, seed=0, difficulty=0.0,
         noise=20.0),
}
_NAME = re.compile(r'^[A-Za-z0-9_.+-]+$')


class StudyError(ValueError):
    """A bad spec, or a study that cannot go on as asked (the message says
    what to change)."""


@dataclass
class StudySpec:
    """A validated study spec (see the module docstring)."""
    name: str
    metric: str
    iters: int
    seeds: List[int]
    data: dict
    variants: Dict[str, dict]
    options: dict = field(default_factory=dict)
    baseline: Optional[str] = None
    threads: Optional[int] = None
    path: Optional[str] = None

    def header(self) -> dict:
        """What the results JSON records about the study."""
        return dict(
            name=self.name, spec=self.path, metric=self.metric,
            iters=self.iters, seeds=list(self.seeds),
            baseline=self.baseline, data=dict(self.data),
            options=format_cfg_options(self.options),
            variants={
                name: dict(config=v['config'],
                           options=format_cfg_options(v['options']))
                for name, v in self.variants.items()
            })


# ------------------------------------------------------------------ spec


def _plain(value):
    """ConfigDict / tuple-preserving plain python copy."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    return value


def load_spec(path: str) -> StudySpec:
    """Read and check the ``study`` dict of the spec file ``path``."""
    if not osp.isfile(path):
        raise StudyError(f'study spec not found: {path}')
    cfg = Config.fromfile(path)
    if 'study' not in cfg:
        raise StudyError(f'{path} defines no `study = dict(...)`')
    return spec_from_dict(_plain(cfg['study']), path=path)


def spec_from_dict(study: Mapping, path: Optional[str] = None) -> StudySpec:
    """:class:`StudySpec` from a ``study`` dict; errors name the bad key."""
    where = path or 'study'
    study = dict(study)
    allowed = {'name', 'metric', 'iters', 'seeds', 'data', 'variants',
               'options', 'baseline', 'threads'}
    unknown = sorted(set(study) - allowed)
    if unknown:
        raise StudyError(f'{where}: unknown study key(s) {unknown}; allowed: '
                         f'{sorted(allowed)}')
    for key in ('name', 'metric', 'iters', 'seeds', 'data', 'variants'):
        if key not in study:
            raise StudyError(f'{where}: study.{key} is missing')
    name = study['name']
    if not isinstance(name, str) or not _NAME.match(name):
        raise StudyError(f'{where}: study.name must be a word of letters, '
                         f'digits, _.+- (it names folders), got {name!r}')
    if not isinstance(study['metric'], str) or not study['metric']:
        raise StudyError(f'{where}: study.metric must be the scalar the '
                         "validation logs ('mIoU', 'accuracy/top1'), got "
                         f"{study['metric']!r}")
    iters = study['iters']
    if not is_int(iters) or iters < 1:
        raise StudyError(f'{where}: study.iters must be an int >= 1, got '
                         f'{iters!r}')
    seeds = study['seeds']
    if not isinstance(seeds, (list, tuple)) or not seeds or not all(
            is_int(s) for s in seeds) or len(set(seeds)) != len(seeds):
        raise StudyError(f'{where}: study.seeds must be a non-empty list of '
                         f'distinct ints, got {seeds!r}')
    data = check_data(study['data'], where)
    options = study.get('options') or {}
    if not isinstance(options, Mapping):
        raise StudyError(f'{where}: study.options must be a dict of '
                         f'--cfg-options, got {options!r}')
    variants = study['variants']
    if not isinstance(variants, Mapping) or not variants:
        raise StudyError(f'{where}: study.variants must be a non-empty dict '
                         f'name -> dict(config=..., options={{...}})')
    checked = {}
    for vname, variant in variants.items():
        if not isinstance(vname, str) or not _NAME.match(vname):
            raise StudyError(f'{where}: variant name {vname!r} must be a '
                             'word of letters, digits, _.+- (it names '
                             'folders)')
        if not isinstance(variant, Mapping) or not isinstance(
                variant.get('config'), str):
            raise StudyError(f'{where}: variant {vname!r} must be dict('
                             f"config='path.py', options={{...}}), got "
                             f'{variant!r}')
        extra = sorted(set(variant) - {'config', 'options'})
        if extra:
            raise StudyError(f'{where}: variant {vname!r} has unknown '
                             f"key(s) {extra}; allowed: ['config', "
                             "'options']")
        voptions = variant.get('options') or {}
        if not isinstance(voptions, Mapping):
            raise StudyError(f'{where}: variant {vname!r}: options must be '
                             f'a dict of --cfg-options, got {voptions!r}')
        checked[vname] = dict(config=variant['config'],
                              options=dict(options, **voptions))
        format_cfg_options(checked[vname]['options'])  # fails early
    baseline = study.get('baseline', 'e2e' if 'e2e' in checked else None)
    if baseline is not None and baseline not in checked:
        raise StudyError(f'{where}: study.baseline={baseline!r} is not a '
                         f'variant; variants: {list(checked)}')
    threads = study.get('threads')
    if threads is not None and (not is_int(threads) or threads < 1):
        raise StudyError(f'{where}: study.threads must be an int >= 1 or '
                         f'None, got {threads!r}')
    return StudySpec(name=name, metric=study['metric'], iters=iters,
                     seeds=list(seeds), data=data, variants=checked,
                     options=dict(options), baseline=baseline,
                     threads=threads, path=path)


def check_data(data, where: str = 'study') -> dict:
    """The ``data`` dict with the generator's defaults filled in."""
    if not isinstance(data, Mapping) or data.get('kind') not in DATA_KINDS:
        raise StudyError(f'{where}: study.data must be dict(kind=..., '
                         f'root=..., ...) with kind in {sorted(DATA_KINDS)}, '
                         f'got {data!r}')
    data = dict(data)
    if 'val_images' in data:  # the generator tool's alias
        data.setdefault('num_val', data.pop('val_images'))
    kind = data['kind']
    defaults = DATA_KINDS[kind]
    unknown = sorted(set(data) - set(defaults) - {'kind', 'root'})
    if unknown:
        raise StudyError(f'{where}: study.data ({kind}) has unknown key(s) '
                         f'{unknown}; allowed: kind, root, '
                         f'{", ".join(defaults)}')
    if not isinstance(data.get('root'), str) or not data['root']:
        raise StudyError(f'{where}: study.data.root must be a folder, got '
                         f'{data.get("root")!r}')
    return dict({k: v for k, v in defaults.items()}, **data)


# --------------------------------------------------------------- data


def _data_params(data: dict) -> dict:
    return {k: data[k] for k in DATA_KINDS[data['kind']]}


def ensure_data(data: dict, log: Callable = print) -> str:
    """Generate the study's dataset in ``data['root']`` unless the same one
    is there (:func:`~harness.synthetic_data.ensure_generated`). Returns
    the root. A root holding something else is never written into."""
    data = check_data(data)
    try:
        ensure_generated(data['root'], data['kind'], _data_params(data),
                         log=lambda msg: log(f'[study] {msg}'))
    except GeneratedDataError as error:
        raise StudyError(f'{error} (study.data.root)') from None
    return data['root']


# ----------------------------------------------------- run configuration


def rescale_param_schedulers(schedulers, total: int, iters: int,
                             by_epoch: bool = False) -> List[dict]:
    """The config's ``param_scheduler`` made iteration-based for a run of
    ``iters`` iterations whose schedule ends where the config's did.

    Every time field (``begin``, ``end``, ``T_max``, ``milestones``, ...,
    :data:`TIME_KEYS`) is multiplied by ``iters / total`` and rounded, the
    same way for all entries (so a warm-up's ``end`` stays the next
    entry's ``begin``); ``end`` stays at least ``begin + 1`` and ``T_max``
    at least 1; an open ``end`` (missing, or mmengine's ``INF``) stays
    open. ``by_epoch`` and ``convert_to_iter_based`` become False.

    Args:
        schedulers: a dict or a list of dicts (mmengine's
            ``param_scheduler``).
        total: the config's own length: ``max_epochs`` when ``by_epoch``
            (an ``EpochBasedTrainLoop``), else ``max_iters``.
        iters: the study's iterations.
        by_epoch: whether ``total`` counts epochs. Every entry must count
            the loop's unit (mmengine's default for an entry is
            ``by_epoch=True``).

    Returns:
        list[dict]: new entries (the input is not changed).
    """
    if not is_int(total) or total < 1 or not is_int(iters) or iters < 1:
        raise StudyError(f'rescale_param_schedulers: total and iters must be '
                         f'ints >= 1, got {total!r}, {iters!r}')
    entries = [schedulers] if isinstance(schedulers, Mapping) else \
        list(schedulers or [])
    factor = iters / total

    def scale(value):
        return int(math.floor(value * factor + 0.5))

    out = []
    for i, entry in enumerate(entries):
        entry = dict(entry)
        unit = bool(entry.get('by_epoch', True))
        if unit != bool(by_epoch):
            raise StudyError(
                f'param_scheduler[{i}] ({entry.get("type")}) has by_epoch='
                f'{unit} but the train loop counts '
                f'{"epochs" if by_epoch else "iterations"}: its length in '
                'the loop\'s unit is unknown, so it cannot be rescaled; '
                f'give it by_epoch={bool(by_epoch)}')
        begin = scale(entry.get('begin', 0))
        entry['begin'] = begin
        end = entry.get('end')
        if end is not None and end < INF:
            entry['end'] = max(scale(end), begin + 1)
        for key in ('T_max', 'step_size', 'total_steps'):
            if entry.get(key) is not None:
                entry[key] = max(1, scale(entry[key]))
        for key in ('milestones', 'periods'):
            if entry.get(key) is not None:
                values = [scale(v) for v in entry[key]]
                if key == 'periods':
                    values = [max(1, v) for v in values]
                entry[key] = type(entry[key])(values)
        entry['by_epoch'] = False
        entry['convert_to_iter_based'] = False
        out.append(entry)
    return out


def run_options(cfg: Config, iters: int, seed: int,
                data_root: Optional[str] = None) -> Dict[str, object]:
    """The study's ``--cfg-options`` for one run of ``cfg`` (the config with
    the variant's options merged): seed, data root, an
    ``IterBasedTrainLoop`` of ``iters`` validating at the end, the
    rescaled schedule, one checkpoint at the end, the memory hook idle.

    Returns:
        dict: dotted key -> value, in order.
    """
    opts: Dict[str, object] = {'randomness.seed': seed}
    if data_root is not None:
        root = data_root.rstrip('/') + '/'
        for loader in ('train_dataloader', 'val_dataloader',
                       'test_dataloader'):
            if isinstance(cfg.get(loader), Mapping) and \
                    'dataset' in cfg[loader]:
                opts[f'{loader}.dataset.data_root'] = root
    loop = cfg.get('train_cfg') or {}
    if loop.get('type') == 'IterBasedTrainLoop' or (
            'max_iters' in loop and 'max_epochs' not in loop):
        total, by_epoch = loop.get('max_iters'), False
    elif 'max_epochs' in loop:
        total, by_epoch = loop['max_epochs'], True
        opts['train_cfg._delete_'] = True
        opts['train_cfg.type'] = 'IterBasedTrainLoop'
    else:
        raise StudyError(f'train_cfg {dict(loop)!r} has neither max_iters '
                         'nor max_epochs: the study cannot tell its length')
    opts['train_cfg.max_iters'] = iters
    opts['train_cfg.val_interval'] = iters
    schedulers = cfg.get('param_scheduler')
    if schedulers:
        rescaled = rescale_param_schedulers(schedulers, total, iters,
                                            by_epoch)
        single = isinstance(schedulers, Mapping)
        for i, entry in enumerate(rescaled):
            prefix = 'param_scheduler.' if single else f'param_scheduler.{i}.'
            for key in TIME_KEYS + ('by_epoch', 'convert_to_iter_based'):
                if key in entry:
                    opts[prefix + key] = entry[key]
    opts['log_processor.by_epoch'] = False
    hooks = cfg.get('default_hooks') or {}
    if 'logger' in hooks:  # the validation's step is the iteration
        opts['default_hooks.logger.log_metric_by_epoch'] = False
    if 'checkpoint' in hooks:
        opts.update({
            'default_hooks.checkpoint.by_epoch': False,
            'default_hooks.checkpoint.interval': iters,
            'default_hooks.checkpoint.max_keep_ckpts': 1,
            'default_hooks.checkpoint.save_best': None,
        })
    for i, hook in enumerate(cfg.get('custom_hooks') or []):
        # --cfg-options cannot drop a list entry: the hook stays, and
        # measures never (its first measured iteration is `interval`)
        if isinstance(hook, Mapping) and \
                hook.get('type') == 'InfoProMemoryHook':
            opts[f'custom_hooks.{i}.interval'] = iters + 1
    return opts


def _flatten(options: Mapping, prefix: str = '') -> Dict[str, object]:
    flat = {}
    for key, value in options.items():
        if not isinstance(key, str) or not key:
            raise StudyError(f'option keys must be dotted strings, got '
                             f'{key!r}')
        full = f'{prefix}{key}'
        if isinstance(value, Mapping):
            if not value:
                raise StudyError(f'option {full}: an empty dict cannot be '
                                 'given with --cfg-options')
            flat.update(_flatten(value, full + '.'))
        else:
            flat[full] = value
    return flat


def _format_value(value, key: str) -> str:
    if isinstance(value, (list, tuple)):
        inner = ','.join(_format_value(v, key) for v in value)
        if isinstance(value, tuple):
            return f'({inner},)' if len(value) == 1 else f'({inner})'
        return f'[{inner}]'
    if isinstance(value, Mapping):
        raise StudyError(f'option {key}: a dict inside a list cannot be '
                         'given with --cfg-options; set its keys one by one '
                         f'({key}.<index>.<key>=...)')
    if value is None or isinstance(value, (bool, int, float)):
        return repr(value)
    if isinstance(value, str):
        return value
    raise StudyError(f'option {key}: cannot pass a {type(value).__name__} '
                     f'({value!r}) with --cfg-options')


def format_cfg_options(options: Mapping) -> List[str]:
    """``['key=value', ...]`` for ``tools/train.py --cfg-options``: nested
    dicts become dotted keys; every value must parse back (mmengine's
    ``DictAction``) to itself, or this raises naming the option."""
    out = []
    for key, value in _flatten(options).items():
        text = _format_value(value, key)
        back = DictAction._parse_iterable(text)
        if back != value or type(back) is not type(value):
            raise StudyError(
                f'option {key}={value!r} would reach the config as '
                f'{back!r} through --cfg-options; use a value that survives '
                '(no spaces, commas, quotes or brackets inside strings, '
                'no strings that read as numbers)')
        out.append(f'{key}={text}')
    return out


def train_command(config: str, work_dir: str, cfg_options: Sequence[str],
                  python: str = sys.executable,
                  script: str = TRAIN_SCRIPT) -> List[str]:
    """``python tools/train.py CONFIG --work-dir DIR --cfg-options ...``."""
    argv = [python, script, config, '--work-dir', work_dir]
    if cfg_options:
        argv += ['--cfg-options'] + list(cfg_options)
    return argv


def _display(argv: Sequence[str], cwd: str, threads: Optional[int]) -> str:
    """The command as one would type it in ``cwd``."""
    shown = ['python' if argv[0] == sys.executable else argv[0]]
    for arg in argv[1:]:
        if osp.isabs(arg) and osp.exists(arg):
            rel = osp.relpath(arg, cwd)
            arg = arg if rel.startswith('..') else rel
        shown.append(arg)
    env = f'OMP_NUM_THREADS={threads} ' if threads else ''
    return env + shlex.join(shown)


# --------------------------------------------------------------- results


def read_final_metric(work_dir: str, metric: str) -> dict:
    """The last ``metric`` value logged by the run in ``work_dir`` (its
    newest ``<timestamp>/vis_data/scalars.json``): ``dict(value=, step=,
    source=)``."""
    logs = sorted(glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    if not logs:
        raise StudyError(f'no */vis_data/scalars.json in {work_dir}: the '
                         'run logged nothing')
    found = None
    with open(logs[-1]) as f:
        for line in f:
            line = line.strip()
            if line:
                record = json.loads(line)
                if metric in record:
                    found = record
    if found is None:
        raise StudyError(f'{logs[-1]} has no {metric!r} (did the run '
                         'validate? is study.metric the key the metric '
                         'logs?)')
    return dict(value=float(found[metric]), step=found.get('step'),
                source=logs[-1])


_PER_CLASS_ROW = re.compile(r'^\|\s*(.+?)\s*\|\s*([-+\w.]+)\s*\|')


def read_per_class(work_dir: str) -> Optional[Dict[str, Optional[float]]]:
    """Per-class IoU of the last validation in ``work_dir`` (the newest
    ``<timestamp>/<timestamp>.log``, the "per class results" table that
    mmseg's ``IoUMetric`` logs): ``{class: IoU}`` in the table's order,
    None for a class absent from the validation set (nan). None when the
    run logged no such table (classification)."""
    logs = sorted(glob(osp.join(work_dir, '*', '*.log')))
    if not logs:
        return None
    with open(logs[-1], errors='replace') as f:
        text = f.read()
    if 'per class results:' not in text:
        return None
    table = text.rsplit('per class results:', 1)[1]
    per_class, started = {}, False
    for line in table.splitlines():
        line = line.strip()
        if line.startswith('+'):
            if per_class:
                break  # the table's bottom rule
            continue
        match = _PER_CLASS_ROW.match(line)
        if not match:
            if started:
                break
            continue
        started = True
        name, iou = match.groups()
        if name == 'Class':
            continue
        try:
            value = float(iou)
        except ValueError:
            raise StudyError(f'{logs[-1]}: per-class IoU {iou!r} of '
                             f'{name!r} is not a number')
        per_class[name] = None if math.isnan(value) else value
    return per_class or None


def fill_per_class(results: dict) -> List[str]:
    """Add ``per_class`` to the runs that lack it, from their logs (the
    ``work_dir`` each run recorded, relative to its ``cwd``). Returns the
    runs (``variant seed<k>``) whose logs are gone."""
    missing = []
    for run in results['runs']:
        if run.get('per_class'):
            continue
        work_dir = run.get('work_dir', '')
        if not osp.isabs(work_dir):
            work_dir = osp.join(run.get('cwd', '.'), work_dir)
        per_class = read_per_class(work_dir)
        if per_class:
            run['per_class'] = per_class
        else:
            missing.append(f'{run["variant"]} seed{run["seed"]}')
    return missing


def per_class_table(results: dict, digits: int = 1) -> str:
    """Mean per-class IoU over the seeds, one column per variant, with the
    difference to the baseline's mean in brackets (segmentation studies;
    runs without ``per_class`` are left out and counted in the header)."""
    rows = summarize(results)
    study = results.get('study', {})
    baseline = study.get('baseline')
    means, counts, classes = {}, {}, []
    for row in rows:
        runs = [r for r in results['runs']
                if r['variant'] == row['variant'] and r.get('per_class')]
        counts[row['variant']] = len(runs)
        table = {}
        for run in runs:
            for name, iou in run['per_class'].items():
                if name not in classes:
                    classes.append(name)
                if iou is not None:
                    table.setdefault(name, []).append(iou)
        means[row['variant']] = {k: statistics.mean(v)
                                 for k, v in table.items()}
    variants = [r['variant'] for r in rows if counts[r['variant']]]
    if not variants:
        raise StudyError('no run has per-class IoU (a classification study, '
                         'or the runs\' logs are gone)')
    fmt = f'{{:.{digits}f}}'
    head = ['class'] + [f'{v} ({counts[v]} seeds)' for v in variants]
    lines = ['| ' + ' | '.join(head) + ' |',
             '|' + '|'.join(['---'] + ['---:'] * len(variants)) + '|']
    for name in classes:
        cells = [name]
        base = means.get(baseline, {}).get(name)
        for variant in variants:
            value = means[variant].get(name)
            if value is None:
                cells.append('-')
            elif variant == baseline or base is None:
                cells.append(fmt.format(value))
            else:
                cells.append(f'{fmt.format(value)} '
                             f'({value - base:+.{digits}f})')
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def load_results(out: str) -> Optional[dict]:
    if not osp.isfile(out):
        return None
    with open(out) as f:
        results = json.load(f)
    if not isinstance(results, dict) or 'runs' not in results:
        raise StudyError(f'{out} is not a study results file (no "runs")')
    return results


def write_results(out: str, results: dict) -> None:
    """Write ``results`` to ``out`` atomically (temp file + rename)."""
    folder = osp.dirname(osp.abspath(out))
    os.makedirs(folder, exist_ok=True)
    tmp = osp.join(folder, f'.{osp.basename(out)}.{os.getpid()}.tmp')
    with open(tmp, 'w') as f:
        json.dump(results, f, indent=1)
        f.write('\n')
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, out)


def _check_compatible(results: dict, spec: StudySpec, iters: int,
                      out: str) -> None:
    study = results.get('study', {})
    if study.get('name') not in (None, spec.name):
        raise StudyError(f'{out} holds the study {study.get("name")!r}, not '
                         f'{spec.name!r}: give another --out')
    if study.get('metric') not in (None, spec.metric):
        raise StudyError(f'{out} holds {study.get("metric")!r} results, the '
                         f'spec asks for {spec.metric!r}: give another --out')
    made = {study.get('iters')} | {r.get('iters') for r in results['runs']}
    made.discard(None)
    if made and made != {iters}:
        raise StudyError(
            f'{out} holds runs of {sorted(made)} iterations; this study asks '
            f'for {iters} (--iters or the spec\'s iters). One study has one '
            'iteration count, fixed before seeing results: write to another '
            '--out (or delete that file to start over).')


def run_study(spec: StudySpec,
              out: str,
              work_dir: str = 'work_dirs/study',
              variants: Optional[Sequence[str]] = None,
              seeds: Optional[Sequence[int]] = None,
              iters: Optional[int] = None,
              threads: Optional[int] = None,
              dry_run: bool = False,
              keep_checkpoints: bool = True,
              study_command: Optional[str] = None,
              log: Callable = print,
              launch: Optional[Callable] = None) -> dict:
    """Train every (variant, seed) of ``spec`` not yet in ``out``.

    Args:
        spec: the study (:func:`load_spec`).
        out: the results JSON (read if it exists, rewritten after every
            run).
        work_dir: runs go to ``work_dir/<name>/<variant>/seed<k>`` (a
            folder left by a killed run is removed first).
        variants, seeds: subsets of the spec's (default: all).
        iters: override the spec's iterations (refused if ``out`` holds
            runs of another count).
        threads: ``OMP_NUM_THREADS`` of the runs (default the spec's; None:
            torch's default).
        dry_run: print the commands only (no data, no training, no JSON).
        keep_checkpoints: keep each run's checkpoint.
        study_command: the command that started the study (recorded).
        log: where progress lines go.
        launch: ``launch(argv, cwd, env, log_path) -> returncode``
            (default: a subprocess; tests count calls with it).

    Returns:
        dict: the results (what ``out`` holds).
    """
    iters = spec.iters if iters is None else iters
    if not is_int(iters) or iters < 1:
        raise StudyError(f'iters must be an int >= 1, got {iters!r}')
    threads = spec.threads if threads is None else threads
    variants = list(spec.variants) if variants is None else list(variants)
    seeds = list(spec.seeds) if seeds is None else list(seeds)
    bad = [v for v in variants if v not in spec.variants]
    if bad:
        raise StudyError(f'unknown variant(s) {bad}; the spec has '
                         f'{list(spec.variants)}')
    bad = [s for s in seeds if s not in spec.seeds]
    if bad:
        raise StudyError(f'seed(s) {bad} are not in the spec\'s seeds '
                         f'{spec.seeds}: seeds are fixed in the spec, before '
                         'seeing results')
    results = load_results(out)
    if results is not None:
        _check_compatible(results, spec, iters, out)
    else:
        results = dict(study={}, runs=[])
    header = spec.header()
    header['iters'] = iters
    results['study'] = dict(results.get('study', {}), **header)
    if study_command and not dry_run:
        results['study'].setdefault('commands', []).append(study_command)
    cwd = os.getcwd()
    data_root = spec.data['root'] if dry_run else ensure_data(spec.data, log)
    done = {(r['variant'], r['seed']): r for r in results['runs']}
    todo = [(v, s) for s in seeds for v in variants]
    for n, (variant, seed) in enumerate(todo, 1):
        config = spec.variants[variant]['config']
        voptions = spec.variants[variant]['options']
        variant_args = format_cfg_options(voptions)
        if (variant, seed) in done:
            run = done[(variant, seed)]
            if run.get('config') != config or \
                    run.get('variant_options') != variant_args:
                raise StudyError(
                    f'{out}: the finished run {variant} seed {seed} was made '
                    f'with config={run.get("config")!r} options='
                    f'{run.get("variant_options")}, the spec now says '
                    f'config={config!r} options={variant_args}; a study '
                    'does not mix settings: give another --out')
            log(f'[study] {variant} seed {seed}: done '
                f'({spec.metric} {run["value"]:.2f}), skipped')
            continue
        if not osp.isfile(config):
            raise StudyError(f'variant {variant!r}: config not found: '
                             f'{config} (paths are relative to {cwd})')
        cfg = Config.fromfile(config)
        if voptions:
            cfg.merge_from_dict(_flatten(voptions))
        study_opts = run_options(cfg, iters, seed, data_root)
        _check_no_clash(_flatten(voptions), study_opts, variant)
        cfg_options = variant_args + format_cfg_options(study_opts)
        run_dir = osp.join(work_dir, spec.name, variant, f'seed{seed}')
        argv = train_command(config, run_dir, cfg_options)
        command = _display(argv, cwd, threads)
        if dry_run:
            log(f'[study] {variant} seed {seed}:\n  {command}')
            continue
        if osp.isdir(run_dir):
            shutil.rmtree(run_dir)  # what a killed run left
        os.makedirs(run_dir)
        env = dict(os.environ)
        if threads:
            env['OMP_NUM_THREADS'] = env['MKL_NUM_THREADS'] = str(threads)
        log_path = osp.join(run_dir, 'train.log')
        log(f'[study] {variant} seed {seed} ({n}/{len(todo)}): training '
            f'{iters} iterations, log {log_path}')
        started = time.time()
        code = (launch or _launch)(argv, cwd, env, log_path)
        seconds = time.time() - started
        if code != 0:
            tail = ''
            if osp.isfile(log_path):
                with open(log_path, errors='replace') as f:
                    tail = ''.join(f.readlines()[-20:])
            raise StudyError(f'{variant} seed {seed}: tools/train.py exited '
                             f'with {code} (log {log_path}):\n{tail}\n'
                             f'command: {command}')
        final = read_final_metric(run_dir, spec.metric)
        if final['step'] is not None and final['step'] != iters:
            raise StudyError(f'{variant} seed {seed}: the last {spec.metric} '
                             f'was logged at step {final["step"]}, not at '
                             f'iteration {iters} ({final["source"]})')
        per_class = read_per_class(run_dir)
        if not keep_checkpoints:
            for ckpt in glob(osp.join(run_dir, '*.pth')):
                os.remove(ckpt)
            last = osp.join(run_dir, 'last_checkpoint')
            if osp.isfile(last):
                os.remove(last)
        run = dict(
            variant=variant, seed=seed, iters=iters, metric=spec.metric,
            value=final['value'], step=final['step'], config=config,
            variant_options=variant_args, cfg_options=cfg_options,
            command=command, argv=argv, cwd=cwd, threads=threads,
            work_dir=run_dir, metric_source=final['source'],
            train_seconds=round(seconds, 1),
            finished_at=time.strftime('%Y-%m-%dT%H:%M:%S'))
        if per_class:
            run['per_class'] = per_class
        # another study process may have written runs since: keep theirs
        results = add_run(out, results, run)
        done[(variant, seed)] = run
        log(f'[study] {variant} seed {seed}: {spec.metric} '
            f'{final["value"]:.2f} ({seconds:.0f} s)')
    if not dry_run:
        results = add_run(out, results, None)
    return results


def add_run(out: str, results: dict, run: Optional[dict]) -> dict:
    """``results`` plus ``run`` plus the runs another process added to
    ``out`` meanwhile (two processes may train other variants or seeds of
    one study into one JSON), written to ``out`` under a lock; returns
    what was written."""
    import fcntl
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    with open(out + '.lock', 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        current = load_results(out) or dict(study={}, runs=[])
        runs = {(r['variant'], r['seed']): r for r in current['runs']}
        for r in results['runs'] + ([run] if run else []):
            runs.setdefault((r['variant'], r['seed']), r)
        merged = dict(results, runs=list(runs.values()))
        commands = current.get('study', {}).get('commands', [])
        mine = merged['study'].get('commands', [])
        if commands or mine:
            merged['study']['commands'] = commands + [
                c for c in mine if c not in commands]
        write_results(out, merged)
    return merged


def _check_no_clash(variant_opts: Mapping, study_opts: Mapping,
                    variant: str) -> None:
    for key in variant_opts:
        parts = key.split('.')
        for skey in study_opts:
            sparts = skey.split('.')
            n = min(len(parts), len(sparts))
            if parts[:n] == sparts[:n]:
                raise StudyError(
                    f'variant {variant!r}: option {key} overlaps {skey}, '
                    'which the study sets itself (seed, data root, '
                    'iterations, schedule, checkpoints): leave it out')


def _launch(argv, cwd, env, log_path) -> int:
    with open(log_path, 'w') as f:
        return subprocess.run(argv, cwd=cwd, env=env, stdout=f,
                              stderr=subprocess.STDOUT).returncode


# --------------------------------------------------------------- reports


def summarize(results: dict) -> List[dict]:
    """Per variant (the spec's order): ``variant, n, mean, std`` (sample
    standard deviation, None below 2 runs), ``values`` (seed -> value),
    ``iters`` and ``delta``: the mean minus the baseline's mean over the
    same seeds (a variant with fewer seeds than the baseline is compared
    with the baseline on those seeds only; None without a shared seed)."""
    study = results.get('study', {})
    order = list(study.get('variants', {}))
    for run in results['runs']:
        if run['variant'] not in order:
            order.append(run['variant'])
    rows = []
    for variant in order:
        runs = sorted((r for r in results['runs']
                       if r['variant'] == variant), key=lambda r: r['seed'])
        if not runs:
            continue
        values = [r['value'] for r in runs]
        rows.append(dict(
            variant=variant, n=len(values), mean=statistics.mean(values),
            std=statistics.stdev(values) if len(values) > 1 else None,
            values={r['seed']: r['value'] for r in runs},
            iters=sorted({r['iters'] for r in runs})))
    base = next((r for r in rows if r['variant'] == study.get('baseline')),
                None)
    for row in rows:
        shared = [] if base is None else [
            s for s in row['values'] if s in base['values']]
        row['delta'] = statistics.mean(
            row['values'][s] - base['values'][s] for s in shared) \
            if shared else None
    return rows


def markdown_table(results: dict, digits: int = 2) -> str:
    """The study as a markdown table: variant, mean, std, one column per
    seed, iterations, and the difference to the baseline (E2E)."""
    study = results.get('study', {})
    seeds = list(study.get('seeds') or sorted(
        {r['seed'] for r in results['runs']}))
    baseline = study.get('baseline')
    metric = study.get('metric', 'metric')
    fmt = f'{{:.{digits}f}}'
    head = (['variant', f'{metric} mean', 'std'] +
            [f'seed {s}' for s in seeds] + ['iterations'] +
            ([f'vs {baseline}'] if baseline else []))
    lines = ['| ' + ' | '.join(head) + ' |',
             '|' + '|'.join(['---'] + ['---:'] * (len(head) - 1)) + '|']
    for row in summarize(results):
        cells = [row['variant'], fmt.format(row['mean']),
                 '-' if row['std'] is None else fmt.format(row['std'])]
        cells += [fmt.format(row['values'][s]) if s in row['values'] else
                  '-' for s in seeds]
        cells.append(','.join(map(str, row['iters'])))
        if baseline:
            cells.append('-' if row['delta'] is None else
                         ('0' if row['variant'] == baseline else
                          f'{row["delta"]:+.{digits}f}'))
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def plot_study(results: dict, path: str) -> str:
    """Mean +- std per variant with every seed's value, to ``path``
    (needs matplotlib)."""
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise StudyError(
            'the plot needs matplotlib, which is not installed: pip install '
            'matplotlib (or pip install -e ".[bench]"), or leave out '
            f'--plot ({exc})') from exc
    rows = summarize(results)
    if not rows:
        raise StudyError('no finished run to plot')
    study = results.get('study', {})
    fig, ax = plt.subplots(figsize=(1.3 * len(rows) + 2.5, 3.6))
    for x, row in enumerate(rows):
        values = list(row['values'].values())
        offsets = [(i - (len(values) - 1) / 2) * 0.08
                   for i in range(len(values))]
        ax.scatter([x + o for o in offsets], values, s=18, color='0.45',
                   zorder=3, label='seeds' if x == 0 else None)
        ax.errorbar([x + 0.28], [row['mean']], yerr=[row['std'] or 0.0],
                    fmt='o', color='C0', capsize=4, zorder=4,
                    label='mean \u00b1 std' if x == 0 else None)
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([r['variant'] for r in rows])
    ax.set_ylabel(study.get('metric', 'metric'))
    iters = sorted({i for r in rows for i in r['iters']})
    ax.set_title(f'{study.get("name", "")}: {",".join(map(str, iters))} '
                 f'iterations, {max(r["n"] for r in rows)} seeds')
    ax.grid(axis='y', alpha=0.3)
    ax.legend(loc='best', fontsize='small')
    fig.tight_layout()
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
