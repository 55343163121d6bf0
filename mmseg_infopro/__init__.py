"""InfoPro local supervision for MMSegmentation 1.x.

Importing this package first applies :mod:`mmseg_infopro.compat` (before
any mmseg import), then registers the backbone, heads, segmentor and model
wrapper in mmseg's/mmengine's registries. Use it from a config with
``custom_imports = dict(imports=['mmseg_infopro'],
allow_failed_imports=False)``.
"""
from . import compat

compat.apply()

from . import models  # noqa: E402,F401
from . import hooks  # noqa: E402,F401
from . import datasets  # noqa: E402,F401

__version__ = '0.1.0'
