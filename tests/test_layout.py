"""The layout tells the truth about the architecture (docs/architecture.md):

* the package's subpackages import each other one way, with no circle:
  harness (tools/) -> memory -> models -> engine; datasets only where a data
  structure is shared; ``compat`` and ``safe_loading`` below everything;
* the package never reaches ``tools/`` or ``configs/``, never starts or ends
  a process, never finds the repository through ``__file__``;
* every task model implements the engine's task protocol and every backbone
  family the backbone contract.
"""
import ast
import glob
import os.path as osp

import pytest

from conftest import REPO

PACKAGE = osp.join(REPO, 'mmseg_infopro')
#: who may import whom (by subpackage; root modules: compat, safe_loading)
ALLOWED = {
    'engine': {'engine', 'root'},
    'models': {'models', 'engine', 'datasets', 'root'},
    'datasets': {'datasets', 'root'},
    'memory': {'memory', 'models', 'engine', 'root'},
    'root': {'root'},
    '__init__': {'engine', 'models', 'datasets', 'memory', 'root'},
}
#: calls that start or end a process
PROCESS_CALLS = {'os._exit', 'os.exit', 'sys.exit', 'os.system', 'os.kill',
                 'subprocess.run', 'subprocess.Popen', 'subprocess.call',
                 'subprocess.check_call', 'subprocess.check_output',
                 'os.fork', 'os.execv', 'os.execvp', 'mp.spawn',
                 'multiprocessing.Process', 'torch.multiprocessing.spawn'}


def _modules():
    for path in sorted(glob.glob(osp.join(PACKAGE, '**', '*.py'),
                                 recursive=True)):
        rel = osp.relpath(path, PACKAGE)
        parts = rel.split(osp.sep)
        if len(parts) == 1:
            owner = '__init__' if parts[0] == '__init__.py' else 'root'
        else:
            owner = parts[0]
        yield path, rel, owner, ast.parse(open(path).read(), path)


def _target(rel: str, node: ast.ImportFrom):
    """The subpackage (or 'root') an import inside the package reaches,
    or None for a third-party import."""
    if node.level == 0:
        mod = node.module or ''
        if not mod.startswith('mmseg_infopro'):
            return None
        names = mod.split('.')[1:]
    else:
        here = rel.split(osp.sep)[:-1]
        up = here[:len(here) - (node.level - 1)] if node.level > 1 else here
        names = up + (node.module.split('.') if node.module else [])
        if not names and node.names:
            names = [node.names[0].name]
    if not names:
        return 'root'
    first = names[0]
    if osp.isdir(osp.join(PACKAGE, first)):
        return first
    return 'root'


def test_subpackages_import_one_way_without_a_circle():
    edges, bad = set(), []
    for path, rel, owner, tree in _modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                target = _target(rel, node)
            elif isinstance(node, ast.Import):
                target = None
                for alias in node.names:
                    if alias.name.startswith('mmseg_infopro.'):
                        target = alias.name.split('.')[1]
            else:
                continue
            if target is None:
                continue
            edges.add((owner, target))
            if target not in ALLOWED[owner]:
                bad.append(f'{rel}:{node.lineno} ({owner} -> {target})')
    assert not bad, bad
    # and the graph of subpackages has no cycle
    graph = {}
    for a, b in edges:
        if a != b:
            graph.setdefault(a, set()).add(b)

    def reaches(a, b, seen=()):
        return any(n == b or (n not in seen and reaches(n, b, seen + (n, )))
                   for n in graph.get(a, ()))
    assert not [n for n in graph if reaches(n, n)], graph


def test_the_package_reaches_no_tools_configs_or_processes():
    bad = []
    for path, rel, owner, tree in _modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and node.id == '__file__':
                bad.append(f'{rel}:{node.lineno} uses __file__')
            if isinstance(node, ast.Constant) and isinstance(
                    node.value, str) and node.value in ('tools', 'configs'):
                bad.append(f'{rel}:{node.lineno} names {node.value!r}')
            if isinstance(node, ast.Call):
                name = ast.unparse(node.func)
                if name in PROCESS_CALLS:
                    bad.append(f'{rel}:{node.lineno} calls {name}')
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                mods = [a.name for a in node.names] if isinstance(
                    node, ast.Import) else [node.module or '']
                if any(m.split('.')[0] in ('subprocess', 'harness', 'tools')
                       for m in mods):
                    bad.append(f'{rel}:{node.lineno} imports {mods}')
    assert not bad, bad


def test_no_package_file_over_about_500_lines():
    long = {rel: n for path, rel, _, _ in _modules()
            if (n := len(open(path).read().splitlines())) > 520}
    assert not long, long


@pytest.fixture(autouse=True)
def _mmseg_scope():
    from mmengine.registry import DefaultScope, init_default_scope
    if DefaultScope.get_current_instance() is None:
        init_default_scope('mmseg')


def test_every_task_model_implements_the_protocol():
    from mmseg_infopro.engine.local_learning import LocalLearningModel
    from mmseg_infopro.engine.task_protocol import (REQUIRED_METHODS,
                                                    LocalLearningTask)
    from mmseg_infopro.models import (InfoProEncoderDecoder,
                                      InfoProImageClassifier)
    from test_backbones import model_cfg
    from test_cls_engine import cifar_cfg
    from test_invariants import build
    tasks = [InfoProEncoderDecoder, InfoProImageClassifier]
    assert set(tasks) == {c for c in _subclasses(LocalLearningModel)
                          if c.__module__.startswith('mmseg_infopro.')}
    for task in tasks:
        for name in REQUIRED_METHODS:
            assert name in vars(task), (task.__name__, name)
    for model in (build(model_cfg('MiT', 'default')),
                  build(cifar_cfg([(2, 0)]))):
        assert isinstance(model, LocalLearningTask), type(model).__name__


def _subclasses(cls):
    out = set()
    for sub in cls.__subclasses__():
        out |= {sub} | _subclasses(sub)
    return out


def test_every_backbone_family_implements_the_contract():
    from mmseg.registry import MODELS
    from mmseg_infopro.engine.backbone_contract import (INFOPRO_TWINS,
                                                        CuttableBackbone)
    family_methods = ('_stage_depths', '_has_stem', '_unit_parts',
                      '_run_unit', '_unit_out_channels')
    for plain, name in INFOPRO_TWINS.items():
        cls = MODELS.get(name)
        assert issubclass(cls, CuttableBackbone) and \
            cls.__mro__[1] is not object, name
        for method in family_methods:
            assert getattr(cls, method) is not getattr(
                CuttableBackbone, method), (name, method)
        assert cls.plain_type == plain
