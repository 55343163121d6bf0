# CIFAR ResNet-110 (basic blocks [18, 18, 18], 16/32/64 channels, 3x3 stem)
# as an InfoPro classifier for 10 classes. K=1 (no cut) is plain end-to-end
# training; the K>1 configs add split_points and the local heads' weights.
# Local loss: the release's contrastive one (aux_mode='contrast'); the
# other choice is 'softmax'. The data preprocessor's mean/std come from the
# dataset's base file.
model = dict(
    type='InfoProImageClassifier',
    data_preprocessor=dict(type='ImgDataPreprocessor', bgr_to_rgb=True),
    backbone=dict(type='InfoProCifarResNet', depth=110),
    head=dict(type='LinearClsHead', num_classes=10, in_channels=64,
              topk=(1, 5)),
    local_heads=dict(type='InfoProClsLocalHead', aux_mode='contrast'))
