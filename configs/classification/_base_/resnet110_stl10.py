# CIFAR ResNet-110 on STL-10 (96x96) with the release's schedule, batch 128.
_base_ = [
    './models/cifar_resnet110.py', './stl10.py', './schedule_160e.py',
    './default_runtime.py'
]
model = dict(data_preprocessor={{_base_.data_preprocessor}})
optim_wrapper = dict(optimizer=dict(lr=0.1))  # the release's STL-10 lr (batch 128)
