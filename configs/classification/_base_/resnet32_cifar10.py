# CIFAR ResNet-32 (basic blocks [5, 5, 5]) on CIFAR-10, otherwise as
# ResNet-110.
_base_ = './resnet110_cifar10.py'
model = dict(backbone=dict(depth=32))
