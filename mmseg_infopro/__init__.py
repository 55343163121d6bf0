"""InfoPro local supervision for MMSegmentation 1.x.

Importing this package first applies :mod:`mmseg_infopro.compat` (before
any mmseg import), then registers the backbones, heads and segmentor (in
mmseg's registries), the engine's model wrapper and hooks (in mmengine's
root registries, found from any scope) and the datasets. See
docs/architecture.md for the layout. Use it from a config with
``custom_imports = dict(imports=['mmseg_infopro'],
allow_failed_imports=False)``.
"""
from . import compat

compat.apply()

from . import models  # noqa: E402,F401
from . import engine  # noqa: E402,F401
from . import datasets  # noqa: E402,F401

__version__ = '0.1.0'
