# ResNet-101 on ImageNet with the release's schedule.
_base_ = [
    './models/imagenet_resnet101.py', './imagenet.py',
    './schedule_imagenet_90e.py', './default_runtime.py'
]
model = dict(data_preprocessor={{_base_.data_preprocessor}})
