# ResNet-101 on ImageNet, end to end (K=1): the baseline of
# resnet101_k2_imagenet.py through the same code. Published top-1 error
# 22.03% (19.71 GB per GPU).
_base_ = './_base_/resnet101_imagenet.py'
model = dict(local_heads=None)  # K=1: no local module
