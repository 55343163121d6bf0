"""A small synthetic dataset in the Cityscapes layout, for demos and tests.

Every scene is a list of labelled polygons drawn back to front (sky,
buildings, vegetation, road, sidewalk, terrain, then objects: poles, signs,
lights, fences, walls, vehicles, people), like a Cityscapes
``*_gtFine_polygons.json``. Labels are rasterised exactly as
``cityscapesscripts``' ``json2labelImg`` does (PIL ``ImageDraw.polygon``, in
order, background ``unlabeled``), so the official-format files round-trip.
Each class has its own colour and texture, with per-image brightness
jitter and noise, so the task is learnable but not trivial.

Layout written under ``root`` (what mmseg's ``CityscapesDataset`` reads)::

    leftImg8bit/{train,val}/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    gtFine/{train,val}/<city>/<city>_<seq>_<frame>_gtFine_labelTrainIds.png
    synthetic_meta.json

With ``official=True`` also ``*_gtFine_polygons.json``,
``*_gtFine_labelIds.png``, ``*_gtFine_instanceIds.png`` and
``*_gtFine_color.png`` as in the official download (the instance ids are
what cityscapesscripts' pixel-level evaluation, and so mmseg's
``CityscapesMetric``, reads besides the labelIds).
"""
import json
import os
import os.path as osp
from typing import Dict, List, Tuple

import numpy as np
from PIL import Image, ImageDraw

#: Cityscapes' 19 training classes: (name, labelId, colour RGB).
CLASSES: List[Tuple[str, int, Tuple[int, int, int]]] = [
    ('road', 7, (128, 64, 128)), ('sidewalk', 8, (244, 35, 232)),
    ('building', 11, (70, 70, 70)), ('wall', 12, (102, 102, 156)),
    ('fence', 13, (190, 153, 153)), ('pole', 17, (153, 153, 153)),
    ('traffic light', 19, (250, 170, 30)),
    ('traffic sign', 20, (220, 220, 0)), ('vegetation', 21, (107, 142, 35)),
    ('terrain', 22, (152, 251, 152)), ('sky', 23, (70, 130, 180)),
    ('person', 24, (220, 20, 60)), ('rider', 25, (255, 0, 0)),
    ('car', 26, (0, 0, 142)), ('truck', 27, (0, 0, 70)),
    ('bus', 28, (0, 60, 100)), ('train', 31, (0, 80, 100)),
    ('motorcycle', 32, (0, 0, 230)), ('bicycle', 33, (119, 11, 32))
]
NAME_TO_TRAIN_ID: Dict[str, int] = {c[0]: i for i, c in enumerate(CLASSES)}
NAME_TO_ID: Dict[str, int] = {c[0]: c[1] for c in CLASSES}
#: classes whose objects get their own instance id (``id * 1000 + k``)
HAS_INSTANCES = frozenset(('person', 'rider', 'car', 'truck', 'bus', 'train',
                           'motorcycle', 'bicycle'))
IGNORE_INDEX = 255
UNLABELED_ID = 0
CITIES = {'train': ('synthtown', 'mockburg'), 'val': ('testville', )}
META_FILE = 'synthetic_meta.json'

# Appearance per train id: a base colour the image uses (not the palette:
# nearby classes get distinguishable but not trivially separable colours)
# and a texture amplitude.
_TEXTURE = np.array([6, 10, 14, 8, 12, 4, 4, 4, 22, 16, 3, 10, 10, 6, 6, 6,
                     6, 8, 8], dtype=np.float32)

Polygon = List[Tuple[float, float]]


def _rect(x0, y0, x1, y1) -> Polygon:
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def make_scene(rng: np.random.Generator, height: int,
               width: int) -> List[Tuple[str, Polygon]]:
    """Random street scene: ``[(label_name, polygon), ...]`` back to front,
    polygon vertices in pixels ``(x, y)``."""
    H, W = height, width
    objs: List[Tuple[str, Polygon]] = []
    horizon = H * rng.uniform(0.35, 0.55)
    objs.append(('sky', _rect(0, 0, W - 1, horizon + 2)))
    # buildings along the horizon, with ragged roofs
    x = -rng.uniform(0, W * 0.1)
    while x < W:
        bw = W * rng.uniform(0.1, 0.3)
        top = horizon - H * rng.uniform(0.1, 0.35)
        cls = 'building' if rng.random() > 0.15 else 'wall'
        objs.append((cls, _rect(x, top, x + bw, horizon + 2)))
        x += bw + W * rng.uniform(0, 0.05)
    # vegetation blobs in front of buildings
    for _ in range(rng.integers(1, 4)):
        cx, cy = rng.uniform(0, W), horizon - H * rng.uniform(0, 0.15)
        r = H * rng.uniform(0.08, 0.18)
        n = 10
        objs.append(('vegetation', [
            (cx + r * rng.uniform(0.7, 1.2) * np.cos(2 * np.pi * i / n),
             cy + r * rng.uniform(0.7, 1.2) * np.sin(2 * np.pi * i / n))
            for i in range(n)
        ]))
    # ground: terrain everywhere below the horizon, then sidewalk, road
    objs.append(('terrain', _rect(0, horizon, W - 1, H - 1)))
    vx = W * rng.uniform(0.35, 0.65)  # vanishing point
    left, right = W * rng.uniform(-0.3, 0.15), W * rng.uniform(0.85, 1.3)
    walk = W * rng.uniform(0.1, 0.25)
    objs.append(('sidewalk', [(vx - 6, horizon), (vx + 6, horizon),
                              (right + walk, H - 1), (left - walk, H - 1)]))
    objs.append(('road', [(vx - 3, horizon), (vx + 3, horizon),
                          (right, H - 1), (left, H - 1)]))
    if rng.random() < 0.5:
        fy = horizon + H * rng.uniform(0.02, 0.08)
        objs.append(('fence', _rect(0, fy - H * 0.06, W * rng.uniform(
            0.1, 0.3), fy)))
    # poles with lights or signs
    for _ in range(rng.integers(1, 4)):
        px = rng.uniform(0, W)
        base = horizon + H * rng.uniform(0.05, 0.3)
        top = horizon - H * rng.uniform(0.1, 0.3)
        pw = max(1.5, W * 0.008)
        objs.append(('pole', _rect(px, top, px + pw, base)))
        s = H * rng.uniform(0.03, 0.06)
        if rng.random() < 0.5:
            objs.append(('traffic sign', [(px - s, top), (px + s + pw, top),
                                          (px + pw / 2, top + 1.6 * s)]))
        else:
            objs.append(('traffic light', _rect(px - s / 2, top, px + s / 2 +
                                                pw, top + 2 * s)))
    # vehicles and people, larger when lower in the image (perspective)
    movers = ['car'] * 6 + ['truck', 'bus', 'train', 'motorcycle',
                            'bicycle'] + ['person'] * 3 + ['rider']
    items = sorted(
        (rng.uniform(horizon + H * 0.05, H * 1.05), movers[rng.integers(
            len(movers))]) for _ in range(rng.integers(2, 7)))
    for yb, cls in items:  # far to near
        scale = (yb - horizon) / (H - horizon)
        cx = rng.uniform(0, W)
        if cls in ('person', 'rider'):
            h, w = H * 0.35 * scale, W * 0.03 * scale + 1
            body = [(cx - w, yb), (cx - w * 0.8, yb - h * 0.8),
                    (cx - w * 0.4, yb - h), (cx + w * 0.4, yb - h),
                    (cx + w * 0.8, yb - h * 0.8), (cx + w, yb)]
            if cls == 'rider':
                objs.append(('bicycle', _rect(cx - 2.5 * w, yb - h * 0.35,
                                              cx + 2.5 * w, yb)))
                body = [(x, y - h * 0.3) for x, y in body]
            objs.append((cls, body))
        else:
            size = {'car': (0.18, 0.1), 'truck': (0.25, 0.2),
                    'bus': (0.35, 0.22), 'train': (0.6, 0.22),
                    'motorcycle': (0.07, 0.08), 'bicycle': (0.07, 0.07)}[cls]
            w, h = W * size[0] * scale, H * size[1] * scale * 1.6
            roof = 0.25 if cls == 'car' else 0.05
            objs.append((cls, [(cx - w / 2, yb), (cx - w / 2, yb - h * 0.6),
                               (cx - w * (0.5 - roof), yb - h),
                               (cx + w * (0.5 - roof), yb - h),
                               (cx + w / 2, yb - h * 0.6), (cx + w / 2, yb)]))
    return [(name, [(round(float(x), 2), round(float(y), 2)) for x, y in poly])
            for name, poly in objs]


def rasterize(objects: List[Tuple[str, Polygon]], height: int, width: int,
              encoding: str = 'trainIds') -> np.ndarray:
    """Label image exactly as cityscapesscripts' ``createLabelImage``:
    polygons filled in order with PIL; ``encoding`` 'trainIds' (background
    255), 'ids' (background 0) or 'color' (RGB, background black)."""
    if encoding == 'color':
        img = Image.new('RGBA', (width, height), (0, 0, 0))
    else:
        img = Image.new('L', (width, height),
                        IGNORE_INDEX if encoding == 'trainIds' else
                        UNLABELED_ID)
    draw = ImageDraw.Draw(img)
    for name, poly in objects:
        if encoding == 'trainIds':
            value = NAME_TO_TRAIN_ID[name]
        elif encoding == 'ids':
            value = NAME_TO_ID[name]
        elif encoding == 'color':
            value = CLASSES[NAME_TO_TRAIN_ID[name]][2]
        else:
            raise ValueError(f"encoding must be 'trainIds', 'ids' or "
                             f"'color', got {encoding!r}")
        draw.polygon(poly, fill=value)
    arr = np.asarray(img)
    return arr[..., :3].copy() if encoding == 'color' else arr.copy()


def rasterize_instances(objects: List[Tuple[str, Polygon]], height: int,
                        width: int) -> np.ndarray:
    """``*_gtFine_instanceIds.png`` content (uint16) exactly as
    cityscapesscripts' ``createInstanceImage(..., 'ids')``: label ids, and
    ``id * 1000 + k`` for the k-th object of a class with instances."""
    img = Image.new('I', (width, height), UNLABELED_ID)
    draw = ImageDraw.Draw(img)
    count: Dict[str, int] = {}
    for name, poly in objects:
        value = NAME_TO_ID[name]
        if name in HAS_INSTANCES:
            value = value * 1000 + count.get(name, 0)
            count[name] = count.get(name, 0) + 1
        draw.polygon(poly, fill=value)
    return np.asarray(img).astype(np.uint16)


def render_image(train_ids: np.ndarray,
                 rng: np.random.Generator) -> np.ndarray:
    """RGB uint8 image for a train-id map: per-class colour (jittered per
    image), class-dependent texture, noise; ignore pixels are grey."""
    H, W = train_ids.shape
    palette = np.array([c[2] for c in CLASSES], dtype=np.float32)
    # pull colours towards grey a bit and jitter each class per image
    base = 0.7 * palette + 0.3 * 110 + rng.normal(0, 8, palette.shape)
    brightness = rng.uniform(0.8, 1.2)
    img = np.full((H, W, 3), 110, dtype=np.float32)
    valid = train_ids != IGNORE_INDEX
    img[valid] = base[train_ids[valid]]
    amp = np.zeros((H, W), np.float32)
    amp[valid] = _TEXTURE[train_ids[valid]]
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    stripes = np.sin(xx * rng.uniform(0.3, 0.8) + yy * rng.uniform(0.1, 0.5))
    img += (amp * stripes)[..., None]
    img *= brightness * (0.85 + 0.3 * yy / H)[..., None]  # vertical shading
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _write_png(path: str, array: np.ndarray) -> None:
    os.makedirs(osp.dirname(path), exist_ok=True)
    Image.fromarray(array).save(path)


def polygons_json(objects, height: int, width: int) -> dict:
    """The scene as an official ``*_gtFine_polygons.json`` document."""
    return dict(
        imgHeight=height,
        imgWidth=width,
        objects=[
            dict(label=name, polygon=[[x, y] for x, y in poly])
            for name, poly in objects
        ])


def make_synthetic_cityscapes(root: str,
                              num_train: int = 16,
                              num_val: int = 4,
                              height: int = 128,
                              width: int = 256,
                              seed: int = 0,
                              official: bool = False) -> dict:
    """Write the dataset under ``root`` and return its metadata (also
    written to ``root/synthetic_meta.json``). Deterministic given the
    arguments."""
    for key, value in dict(num_train=num_train, num_val=num_val,
                           height=height, width=width).items():
        if not isinstance(value, int) or value < (1 if key.startswith(
                'num') else 16):
            raise ValueError(f'{key} must be an int >= '
                             f"{1 if key.startswith('num') else 16}, "
                             f'got {value!r}')
    rng = np.random.default_rng(seed)
    files = {}
    for split, count in (('train', num_train), ('val', num_val)):
        files[split] = []
        cities = CITIES[split]
        for i in range(count):
            city = cities[i % len(cities)]
            stem = f'{city}_{i // len(cities):06d}_{19 + i:06d}'
            objects = make_scene(rng, height, width)
            train_ids = rasterize(objects, height, width, 'trainIds')
            image = render_image(train_ids, rng)
            _write_png(osp.join(root, 'leftImg8bit', split, city,
                                f'{stem}_leftImg8bit.png'), image)
            gt = osp.join(root, 'gtFine', split, city, stem + '_gtFine_')
            _write_png(gt + 'labelTrainIds.png', train_ids)
            if official:
                with open(gt + 'polygons.json', 'w') as f:
                    json.dump(polygons_json(objects, height, width), f)
                _write_png(gt + 'labelIds.png',
                           rasterize(objects, height, width, 'ids'))
                _write_png(gt + 'instanceIds.png',
                           rasterize_instances(objects, height, width))
                _write_png(gt + 'color.png',
                           rasterize(objects, height, width, 'color'))
            files[split].append(f'{city}/{stem}')
    meta = dict(num_train=num_train, num_val=num_val, height=height,
                width=width, seed=seed, official=official,
                num_classes=len(CLASSES), files=files)
    with open(osp.join(root, META_FILE), 'w') as f:
        json.dump(meta, f, indent=1)
    return meta


def read_meta(root: str):
    """The metadata of a generated dataset, or None if there is none."""
    path = osp.join(root, META_FILE)
    if not osp.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)
