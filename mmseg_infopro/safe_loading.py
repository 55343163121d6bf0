"""Loading files without running code they name.

A pickle can name any importable function and make the unpickler call it
(``os.system`` in an object's ``__reduce__``), so every checkpoint and
dataset file this package loads goes through an allowlist instead:

* :func:`load_checkpoint` loads a ``torch.save`` file with
  ``torch.load(weights_only=True)`` and the globals of
  :data:`CHECKPOINT_GLOBALS` allowed on top of torch's own: what mmengine's
  and this package's checkpoints hold (the message hub's ``HistoryBuffer``
  and its statistics methods, numpy arrays, dtypes and scalars, as in the
  RNG states :class:`~mmseg_infopro.engine.hooks.RNGStateHook` saves).
  :mod:`mmseg_infopro.compat` routes mmengine's checkpoint loading
  (``load_from``, ``--resume``, pretrained weights by path or URL,
  ``tools/test.py``) through it. A file that names any other global is
  refused with :class:`UnsafeCheckpointError`, which names the file and the
  global.
* :func:`restricted_pickle_load` unpickles a plain data file (the CIFAR
  batches) allowing only the globals the caller lists.

The one switch: a user who trusts a file that needs another global sets
the environment variable ``MMSEG_INFOPRO_TRUST_CHECKPOINTS=1``; checkpoints
then load with ``weights_only=False`` (any code the file names runs). It is
never on by default, and it does not apply to dataset files.
"""
import contextlib
import contextvars
import os
import pickle
import re
import warnings
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np
import torch

TRUST_ENV = 'MMSEG_INFOPRO_TRUST_CHECKPOINTS'

_GLOBAL_RE = re.compile(r'GLOBAL ([\w.]+)')


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint names a global outside the allowlist (and the user has
    not said they trust it)."""

    def __init__(self, message: str, filename: str, global_name: str):
        super().__init__(message)
        self.filename = filename
        self.global_name = global_name


def trusted() -> bool:
    """Whether the user set ``MMSEG_INFOPRO_TRUST_CHECKPOINTS=1``."""
    value = os.environ.get(TRUST_ENV, '').strip().lower()
    if value in ('', '0', 'false', 'no', 'off'):
        return False
    if value in ('1', 'true', 'yes', 'on'):
        return True
    raise ValueError(f'{TRUST_ENV}={os.environ[TRUST_ENV]!r}: expected 1 '
                     '(trust the checkpoints this process loads) or 0')


# ------------------------------------------------------------ the allowlist
def _numpy_globals():
    """numpy's pickling globals, under both numpy 1 (``numpy.core``) and
    numpy 2 (``numpy._core``) names, mapped to this numpy's objects."""
    core = getattr(np, '_core', None) or np.core
    out = [np.ndarray, np.dtype]
    for module in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        out.append((core.multiarray._reconstruct, f'{module}._reconstruct'))
        out.append((core.multiarray.scalar, f'{module}.scalar'))
    # numpy >= 1.25 may pickle a dtype through its class
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        for name in dir(dtypes):
            cls = getattr(dtypes, name)
            if isinstance(cls, type) and issubclass(cls, np.dtype):
                out.append(cls)
    return out


def _history_buffer_attribute(obj: Any, name: str) -> Any:
    """``getattr`` restricted to what a pickled ``HistoryBuffer`` asks for:
    its statistics methods (``min``, ``max``, ``current``, ``mean``, or one
    registered with ``HistoryBuffer.register_statistics``)."""
    from mmengine.logging.history_buffer import HistoryBuffer
    owner = obj if isinstance(obj, type) else type(obj)
    if owner is HistoryBuffer and isinstance(name, str) and \
            not name.startswith('_') and \
            callable(HistoryBuffer.__dict__.get(name)):
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f'getattr({owner.__name__}, {name!r}): only the statistics methods '
        'of mmengine HistoryBuffer may be looked up while loading')


def checkpoint_globals() -> list:
    """The globals allowed in a checkpoint on top of torch's own (for
    ``torch.serialization.safe_globals``)."""
    from mmengine.logging.history_buffer import HistoryBuffer
    return [HistoryBuffer, (_history_buffer_attribute, 'builtins.getattr')
            ] + _numpy_globals()


# ------------------------------------------------------------ checkpoints
#: the name of the checkpoint being loaded, for the error message, when the
#: bytes reach torch.load as a stream (set by compat around mmengine's
#: CheckpointLoader)
current_checkpoint_name = contextvars.ContextVar(
    'mmseg_infopro_checkpoint_name', default=None)


@contextlib.contextmanager
def naming_checkpoint(name: str):
    """Name the checkpoint that loads inside this block in errors."""
    token = current_checkpoint_name.set(str(name))
    try:
        yield
    finally:
        current_checkpoint_name.reset(token)


def _describe(f, name: Optional[str]) -> str:
    if name:
        return name
    if isinstance(f, (str, os.PathLike)):
        return os.fspath(f)
    return current_checkpoint_name.get() or getattr(
        f, 'name', None) or 'a checkpoint read from a stream'


def refused_global(error: Exception) -> Optional[str]:
    """The ``module.name`` named by an UnpicklingError of torch's
    weights-only unpickler or of :func:`restricted_pickle_load`."""
    match = _GLOBAL_RE.search(str(error))
    if match:
        return match.group(1)
    return None


def load_checkpoint(f,
                    map_location=None,
                    name: Optional[str] = None,
                    load: Callable = None,
                    **kwargs) -> Any:
    """``torch.load(f, map_location)`` with ``weights_only=True`` and
    :func:`checkpoint_globals` allowed.

    Args:
        f: a path or a binary stream (as for ``torch.load``).
        name: what to call the file in errors (default: the path, or the
            name given by :func:`naming_checkpoint`).
        load: the loading function (default ``torch.load``); a URL loader
            such as ``torch.hub.load_state_dict_from_url`` that takes
            ``weights_only`` also works.

    Raises:
        UnsafeCheckpointError: the file names a global outside the
            allowlist; nothing it names was called. With
            ``MMSEG_INFOPRO_TRUST_CHECKPOINTS=1`` it is loaded with
            ``weights_only=False`` instead (with a warning).
    """
    load = load or torch.load
    kwargs.pop('weights_only', None)
    if trusted():
        warnings.warn(f'{TRUST_ENV}=1: loading {_describe(f, name)} with '
                      'weights_only=False (any code it names runs)')
        return load(f, map_location=map_location, weights_only=False,
                    **kwargs)
    try:
        with torch.serialization.safe_globals(checkpoint_globals()):
            return load(f, map_location=map_location, weights_only=True,
                        **kwargs)
    except pickle.UnpicklingError as error:
        where = _describe(f, name)
        global_name = refused_global(error)
        what = f'the global `{global_name}`' if global_name else \
            f'something the safe loader refuses ({error})'
        raise UnsafeCheckpointError(
            f'{where}: refused to load: it names {what}, which is not one '
            'of the types mmengine and mmseg-infopro checkpoints hold '
            '(tensors, numbers, strings, containers, numpy arrays, '
            'HistoryBuffer). Loading it could run code. If you trust this '
            f'file, set the environment variable {TRUST_ENV}=1 to load it '
            'with weights_only=False.',
            filename=where,
            global_name=global_name) from error


# ------------------------------------------------------------ data files
class _RestrictedUnpickler(pickle.Unpickler):

    def __init__(self, file, allowed: Dict[Tuple[str, str], Any], **kwargs):
        super().__init__(file, **kwargs)
        self._allowed = allowed

    def find_class(self, module: str, name: str):
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f'GLOBAL {module}.{name} is not allowed') from None


def _pickled_bytes(text: str, encoding: str) -> bytes:
    """``_codecs.encode`` as a protocol-2 pickle uses it for ``bytes``
    (``encode(str, 'latin1')``), and for nothing else."""
    if not isinstance(text, str) or encoding != 'latin1':
        raise pickle.UnpicklingError(
            f'_codecs.encode({type(text).__name__}, {encoding!r}): only '
            "the (str, 'latin1') of pickled bytes is allowed")
    return text.encode('latin1')


def plain_data_globals() -> Dict[Tuple[str, str], Any]:
    """What a pickle of plain values and numpy arrays names: numpy's array
    pickling (numpy 1 and 2 names) and the encoding of ``bytes`` in
    protocol 2."""
    out = {('_codecs', 'encode'): _pickled_bytes}
    for item in _numpy_globals():
        obj, path = item if isinstance(item, tuple) else (
            item, f'{item.__module__}.{item.__qualname__}')
        module, _, name = path.rpartition('.')
        out[(module, name)] = obj
    return out


def restricted_pickle_load(file,
                           allowed: Dict[Tuple[str, str], Any],
                           **kwargs) -> Any:
    """``pickle.load(file, **kwargs)`` where a GLOBAL may only name a key
    of ``allowed`` (``(module, name) -> object``); plain values (dicts,
    lists, tuples, str, bytes, numbers) need none.

    Raises:
        pickle.UnpicklingError: naming ``GLOBAL module.name`` for anything
            else; nothing it names was called.
    """
    return _RestrictedUnpickler(file, allowed, **kwargs).load()
