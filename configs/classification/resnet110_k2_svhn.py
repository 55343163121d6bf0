# CIFAR ResNet-110 on SVHN, K=2: InfoPro (the release's even split), the
# contrastive local loss and the release's loss weights (recons, aux),
# interpolated from the first local module to the last (K=2 has one local
# module, which gets `first`; `last` repeats it, not the release's unused
# (0, 0), so that a plan with more modules trains every one of them).
# Cuts (ours, before (stage, block)): [(2, 9)].
# Softmax local loss: --cfg-options model.local_heads.aux_mode=softmax
_base_ = './_base_/resnet110_svhn.py'
model = dict(
    backbone=dict(split_points=dict(table='even', num_modules=2)),
    local_loss_weights=dict(first=(1, 0.1), last=(1, 0.1)))
