"""Loading a config the way mmseg's tools/train.py does: the file, then the
``--cfg-options`` overrides."""
from typing import Optional

from mmengine.config import Config


def load_config(path: str, options: Optional[dict] = None) -> Config:
    """``Config.fromfile(path)`` with ``options`` (``--cfg-options``,
    dotted keys) merged in; ``cfg.filename`` stays ``path``."""
    cfg = Config.fromfile(path)
    if options:
        cfg.merge_from_dict(options)
    return cfg
