# CIFAR ResNet-110 on STL-10, end to end (K=1): the baseline of the
# K>1 configs, through the same code. Published test error: see README.
_base_ = './_base_/resnet110_stl10.py'
model = dict(local_heads=None)  # K=1: no local module
