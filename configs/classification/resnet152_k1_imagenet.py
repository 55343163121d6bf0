# ResNet-152 on ImageNet, end to end (K=1). Published top-1 error 21.60%
# (26.29 GB per GPU).
_base_ = './_base_/resnet101_imagenet.py'
model = dict(backbone=dict(depth=152),
             local_heads=None)  # K=1: no local module
