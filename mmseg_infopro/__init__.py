"""InfoPro local supervision for MMSegmentation 1.x.

Importing this package first applies :mod:`mmseg_infopro.compat` (before
any mmseg import), then registers the engine's model wrapper and RNG-state
hook and the memory hook (in mmengine's root registries, found from any
scope), the backbones, heads and task models (in mmseg's registries) and
the datasets. See
docs/architecture.md for the layout. Use it from a config with
``custom_imports = dict(imports=['mmseg_infopro'],
allow_failed_imports=False)``.
"""
from . import compat

compat.apply()

from . import engine  # noqa: E402,F401
from . import models  # noqa: E402,F401
from . import datasets  # noqa: E402,F401
from . import memory  # noqa: E402,F401  (registers InfoProMemoryHook)

__version__ = '0.1.0'
