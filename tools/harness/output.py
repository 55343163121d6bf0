"""Writing results: JSON files and number formatting."""
import json
import os
import os.path as osp
from typing import Callable, Optional


def save_json(obj, path: str, log: Optional[Callable[[str], None]] = None
              ) -> None:
    """Write ``obj`` as indented JSON to ``path`` (folders created;
    values JSON cannot hold are written as their ``str``)."""
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(obj, f, indent=1, default=str)
    if log:
        log(f'wrote {path}')


def read_json(path: str):
    """The JSON in ``path``, or None when it is missing or not JSON."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def fmt(value, spec: str) -> str:
    """``format(value, spec)``, ``'-'`` for None."""
    return '-' if value is None else format(value, spec)
