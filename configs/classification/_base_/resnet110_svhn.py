# CIFAR ResNet-110 on SVHN with the release's schedule.
_base_ = [
    './models/cifar_resnet110.py', './svhn.py', './schedule_160e.py',
    './default_runtime.py'
]
model = dict(data_preprocessor={{_base_.data_preprocessor}})
