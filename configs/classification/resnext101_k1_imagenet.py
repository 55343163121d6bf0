# ResNeXt-101 32x8d on ImageNet, end to end (K=1). Published top-1 error
# 20.64% (19.22 GB per GPU).
_base_ = './_base_/resnet101_imagenet.py'
model = dict(
    backbone=dict(type='InfoProResNeXt', groups=32, base_width=8),
    local_heads=None)  # K=1: no local module
