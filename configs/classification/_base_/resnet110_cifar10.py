# CIFAR ResNet-110 on CIFAR-10 with the release's schedule.
_base_ = [
    './models/cifar_resnet110.py', './cifar10.py', './schedule_160e.py',
    './default_runtime.py'
]
model = dict(data_preprocessor={{_base_.data_preprocessor}})
