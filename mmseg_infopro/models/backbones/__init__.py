from .base import (INFOPRO_TWINS, CuttableBackbone, cuttable_hint,
                   normalize_blocks, normalize_split_points)
from .cifar_resnet import CifarResNet, InfoProCifarResNet
from .cifar_splits import release_split_points, release_to_split_points
from .mit import InfoProMixVisionTransformer
from .resnet import (InfoProResNet, InfoProResNeSt, InfoProResNetV1c,
                     InfoProResNetV1d, InfoProResNeXt)
from .swin import InfoProSwinTransformer

__all__ = [
    'CuttableBackbone', 'INFOPRO_TWINS', 'cuttable_hint', 'normalize_blocks',
    'normalize_split_points', 'InfoProResNet', 'InfoProResNetV1c',
    'InfoProResNetV1d', 'InfoProResNeXt', 'InfoProResNeSt',
    'InfoProMixVisionTransformer', 'InfoProSwinTransformer', 'CifarResNet',
    'InfoProCifarResNet', 'release_split_points', 'release_to_split_points'
]
