"""The only place that works around third-party breakage.

``apply()`` runs once, from ``import mmseg_infopro``, before anything imports
mmseg. Each fix checks that the environment needs it and does nothing
otherwise; ``APPLIED`` lists the fixes that were applied (for logs and tests).

Fixes:

* ``mmcv_lite_ops``: mmcv-lite ships ``mmcv/ops`` without its compiled
  extension ``mmcv._ext``, and mmseg 1.2.2 imports ``mmcv.ops`` unguarded in
  modules that every ``import mmseg.models`` loads. We register a stand-in
  ``mmcv._ext`` whose every function raises :class:`MissingCompiledOpError`
  telling the user to install the full mmcv. Pure-Python parts of
  ``mmcv.ops`` (e.g. ``point_sample``) keep working.
* ``pkg_resources``: setuptools >= 82 removed ``pkg_resources``, which
  mmengine uses to resolve ``mmseg::`` config bases. We replace mmengine's
  three package helpers by ``importlib.metadata`` equivalents.
* ``safe_checkpoint_load``: mmengine 0.10.x calls ``torch.load`` without
  ``weights_only``, so under torch >= 2.6 its own checkpoints (which pickle
  a ``HistoryBuffer``) cannot be loaded for ``load_from`` / ``--resume``,
  and before torch 2.6 every checkpoint loads with ``weights_only=False``
  (a file can run code). mmengine's checkpoint module gets a ``torch``
  whose ``load``, and a ``load_url``, that load with ``weights_only=True``
  and the allowlist of :mod:`mmseg_infopro.safe_loading`; a file that
  needs another global is refused with an error naming the file and the
  global, unless the user sets ``MMSEG_INFOPRO_TRUST_CHECKPOINTS=1``.
* ``numpy_in1d``: numpy >= 2.4 removed ``np.in1d``, which cityscapesscripts
  2.3 (mmseg's ``CityscapesMetric``) calls; restored as ``np.isin`` on the
  flattened input, only when cityscapesscripts is installed.

Applied by the memory tools around FakeTensorMode only, never at import:

* :class:`RealLinspace`: MiT and Swin read their drop-path rates with
  ``[x.item() for x in torch.linspace(...)]`` in ``__init__``, which
  FakeTensorMode refuses (data-dependent); while a model is built,
  ``torch.linspace`` runs on real tensors.
* :func:`mmseg_accuracy_without_masks`: mmseg's ``accuracy`` (a log metric)
  indexes with a boolean mask, whose output shape depends on the values;
  it is swapped for an equivalent top-1 accuracy without one.

Used by the device check's CPU dry run: :func:`cpu_amp_optim_wrapper`,
mmengine's ``AmpOptimWrapper`` without the GPU assertion of its
constructor.
"""
import contextlib
import importlib
import importlib.machinery
import importlib.metadata
import importlib.util
import os.path as osp
import sys
import types
import warnings

import torch
from torch.overrides import TorchFunctionMode as _TorchFunctionMode

APPLIED = []

INSTALL_FULL_MMCV = (
    'This needs the compiled operators of the full mmcv, but only mmcv-lite '
    'is installed. Install the full mmcv (2.0.0rc4 <= mmcv < 2.2.0) matching '
    'your torch and CUDA, e.g. `pip uninstall -y mmcv-lite && mim install '
    '"mmcv>=2.0.0rc4,<2.2.0"`. DeepLabV3/ResNet/FCN/ASPP and InfoPro need no '
    'compiled operator.')


class MissingCompiledOpError(RuntimeError):
    """A compiled mmcv operator was called while only mmcv-lite is there."""


def _missing_op(name):

    def op(*args, **kwargs):
        raise MissingCompiledOpError(f'mmcv.ops: `{name}` is a compiled '
                                     f'operator. {INSTALL_FULL_MMCV}')

    op.__name__ = name
    return op


class _MissingExtModule(types.ModuleType):
    """Stand-in for ``mmcv._ext``: any attribute is an op that raises."""

    def __getattr__(self, name):
        if name.startswith('__'):
            raise AttributeError(name)
        return _missing_op(name)


def _dist_installed(name):
    try:
        importlib.metadata.distribution(name)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


def _fix_mmcv_lite():
    spec = importlib.util.find_spec('mmcv')
    if spec is None:
        raise ImportError(
            'mmseg-infopro needs mmcv (2.0.0rc4 <= mmcv < 2.2.0). If you have '
            'no full mmcv, install the lite one: '
            '`pip install "mmseg-infopro[lite]"` or '
            '`pip install "mmcv-lite>=2.0.0rc4,<2.2.0"`.')
    if importlib.util.find_spec('mmcv._ext') is not None:
        return  # full mmcv: nothing to do
    if _dist_installed('mmcv') and _dist_installed('mmcv-lite'):
        warnings.warn(
            'Both mmcv and mmcv-lite are installed and mmcv._ext is missing: '
            'mmcv-lite has probably overwritten the full mmcv. Reinstall the '
            'full mmcv (`pip uninstall -y mmcv-lite mmcv` then install mmcv).')
    ext = _MissingExtModule(
        'mmcv._ext', 'mmseg-infopro stand-in: compiled ops are missing '
        '(mmcv-lite).')
    # a spec without loader: pkgutil.find_loader('mmcv._ext') (mmcv's
    # check_ops_exist, used by collect_env) answers None = "no ops"
    # instead of raising ValueError("mmcv._ext.__spec__ is None")
    ext.__spec__ = importlib.machinery.ModuleSpec('mmcv._ext', None)
    sys.modules['mmcv._ext'] = ext
    APPLIED.append('mmcv_lite_ops')


# --------------------------------------------------------------- pkg_resources
def _distribution(package):
    try:
        return importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def is_installed(package: str) -> bool:
    """``mmengine.utils.is_installed`` without ``pkg_resources``."""
    if _distribution(package) is not None:
        return True
    spec = importlib.util.find_spec(package)
    return spec is not None and spec.origin is not None


def package2module(package: str) -> str:
    """``mmengine.utils.package2module`` without ``pkg_resources``."""
    dist = _distribution(package)
    if dist is None:
        raise ValueError(f'can not infer the module name of {package}: '
                         'it is not installed')
    top_level = dist.read_text('top_level.txt')
    if top_level:
        return top_level.split('\n')[0]
    names = {
        str(f).split('/')[0]
        for f in (dist.files or []) if str(f).endswith('__init__.py')
    }
    if len(names) == 1:
        return names.pop()
    raise ValueError(f'can not infer the module name of {package}')


def get_installed_path(package: str) -> str:
    """``mmengine.utils.get_installed_path`` without ``pkg_resources``."""
    spec = importlib.util.find_spec(package)
    if spec is None and _distribution(package) is not None:
        spec = importlib.util.find_spec(package2module(package))
    if spec is None:
        raise importlib.metadata.PackageNotFoundError(
            f'{package} is not installed')
    if spec.origin is None:
        raise RuntimeError(f'{package} is a namespace package, which is '
                           'invalid for `get_install_path`')
    return osp.dirname(spec.origin)


def _fix_pkg_resources():
    try:
        import pkg_resources  # noqa: F401
        return
    except ImportError:
        pass
    import mmengine.config.config as config_module
    import mmengine.utils as utils
    import mmengine.utils.package_utils as package_utils
    targets = [package_utils, utils, config_module]
    try:
        import mmengine.hub.hub as hub_module
        targets.append(hub_module)
    except ImportError:
        pass
    replacements = dict(
        is_installed=is_installed,
        get_installed_path=get_installed_path,
        package2module=package2module)
    for module in targets:
        for name, func in replacements.items():
            if hasattr(module, name):
                setattr(module, name, func)
    APPLIED.append('pkg_resources')


# ------------------------------------------------------------------ torch.load
class _TorchWithSafeLoad(types.ModuleType):
    """``torch`` as seen by mmengine's checkpoint module: ``load`` is
    :func:`mmseg_infopro.safe_loading.load_checkpoint`."""

    def __init__(self, torch):
        super().__init__('torch')
        self._torch = torch

    def __getattr__(self, name):
        return getattr(self._torch, name)

    def load(self, f, map_location=None, **kwargs):
        from .safe_loading import load_checkpoint
        return load_checkpoint(f, map_location=map_location, **kwargs)


def _safe_load_url(url, model_dir=None, map_location=None, progress=True,
                   **kwargs):
    """mmengine's ``load_url`` (``torch.hub.load_state_dict_from_url``)
    with the safe loader."""
    import torch.hub

    from .safe_loading import load_checkpoint
    return load_checkpoint(url, map_location=map_location, name=url,
                           load=torch.hub.load_state_dict_from_url,
                           model_dir=model_dir, progress=progress, **kwargs)


def _fix_torch_load():
    import torch
    from mmengine.runner import checkpoint
    from mmengine.utils import digit_version
    if digit_version(torch.__version__) < digit_version('2.6.0'):
        # safe_globals with (object, 'module.name') entries, needed for the
        # allowlist, came with torch 2.6 (so did weights_only=True default)
        raise ImportError(
            f'mmseg-infopro needs torch >= 2.6; this is {torch.__version__}.'
            ' Install a newer build of torch for your CUDA first.')
    if isinstance(checkpoint.torch, _TorchWithSafeLoad):
        return
    checkpoint.torch = _TorchWithSafeLoad(torch)
    checkpoint.load_url = _safe_load_url
    loader = checkpoint.CheckpointLoader
    load_checkpoint = loader.load_checkpoint.__func__

    def named_load_checkpoint(cls, filename, map_location=None,
                              logger='current'):
        # streams (s3://, pavi://) reach torch.load without their name
        from .safe_loading import naming_checkpoint
        with naming_checkpoint(filename):
            return load_checkpoint(cls, filename, map_location, logger)

    loader.load_checkpoint = classmethod(named_load_checkpoint)
    APPLIED.append('safe_checkpoint_load')


# ------------------------------------------------------------------ np.in1d
def _fix_numpy_in1d():
    """numpy 2.4 removed ``np.in1d``; cityscapesscripts 2.3 (used by
    mmseg's ``CityscapesMetric``) still calls it. Restore it as the
    documented equivalent, only when cityscapesscripts is installed."""
    import numpy as np
    if hasattr(np, 'in1d') or importlib.util.find_spec(
            'cityscapesscripts') is None:
        return

    def in1d(ar1, ar2, assume_unique=False, invert=False):
        return np.isin(np.ravel(ar1), ar2, assume_unique=assume_unique,
                       invert=invert)

    np.in1d = in1d
    APPLIED.append('numpy_in1d')


# ------------------------------------------------- under FakeTensorMode
class RealLinspace(_TorchFunctionMode):
    """Inside FakeTensorMode, while a model is built: ``torch.linspace``
    runs on real tensors and returns a numpy array. MiT and Swin read
    their drop-path rates with ``[x.item() for x in torch.linspace(...)]``
    in ``__init__``, which FakeTensorMode refuses (data-dependent)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.linspace:
            from torch._subclasses.fake_tensor import unset_fake_temporarily
            with unset_fake_temporarily():
                return func(*args, **kwargs).numpy()
        return func(*args, **kwargs)


def fake_safe_accuracy(pred, target, topk=1, thresh=None,
                        ignore_index=None):
    """mmseg's ``accuracy`` (top-1 only) without boolean-mask indexing,
    whose output shape depends on the values (FakeTensorMode refuses it).
    It only feeds the ``acc_seg`` log entry; its temporaries are a few
    (N, H, W) bool/long tensors, as mmseg's."""
    if topk not in (1, (1, )) or thresh is not None:
        raise NotImplementedError('fake mode supports top-1 accuracy only')
    valid = torch.ones_like(target, dtype=torch.bool) \
        if ignore_index is None else target != ignore_index
    correct = (pred.argmax(1) == target) & valid
    acc = correct.sum().float().reshape(1) * 100.0 / \
        valid.sum().clamp(min=1)
    return acc if topk == 1 else [acc]



@contextlib.contextmanager
def mmseg_accuracy_without_masks():
    """Swap mmseg's ``accuracy`` for :func:`fake_safe_accuracy` in every
    mmseg / mmseg_infopro module that imported it; restored on exit."""
    import mmseg.models.losses  # noqa: F401  (loads the accuracy module)
    original = sys.modules['mmseg.models.losses.accuracy'].accuracy
    patched = []
    for name, module in list(sys.modules.items()):
        if name.startswith(('mmseg.', 'mmseg_infopro.')) and \
                getattr(module, 'accuracy', None) is original:
            module.accuracy = fake_safe_accuracy
            patched.append(module)
    try:
        yield
    finally:
        for module in patched:
            module.accuracy = original


def cpu_amp_optim_wrapper(optimizer):
    """mmengine's AmpOptimWrapper without its GPU assertion: a CPU
    GradScaler and bf16 autocast (the CPU stand-in of ``cpu=True``)."""
    import torch
    from mmengine.optim import AmpOptimWrapper, OptimWrapper

    class CPUAmpOptimWrapper(AmpOptimWrapper):

        def __init__(self, optimizer):
            OptimWrapper.__init__(self, optimizer=optimizer)
            self._scale_update_param = None
            self.cast_dtype = torch.bfloat16
            self.loss_scaler = torch.amp.GradScaler('cpu')

    return CPUAmpOptimWrapper(optimizer)


_done = False


def apply():
    """Apply every fix the environment needs (idempotent)."""
    global _done
    if _done:
        return
    _done = True
    _fix_mmcv_lite()
    _fix_pkg_resources()
    _fix_torch_load()
    _fix_numpy_in1d()
