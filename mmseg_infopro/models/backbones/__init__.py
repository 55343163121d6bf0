from .infopro_resnet import InfoProResNetV1c, normalize_split_points

__all__ = ['InfoProResNetV1c', 'normalize_split_points']
