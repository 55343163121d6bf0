# The classification CPU demo (python tools/demo.py --task classification):
# CIFAR ResNet-32, InfoPro K=2 (the release's even split and loss weights,
# contrastive local loss), on a small CIFAR-10-format dataset the project
# generates (tools/make_synthetic_cifar10.py), 15 epochs on 2 cores.
# The release's schedule, shortened: batch 64 at lr 0.05 (0.8 x 64 / 1024),
# one warm-up epoch, cosine decay.
_base_ = '../classification/resnet32_k2_cifar10.py'
data_root = 'data/synthetic_cifar10'
epochs = 15
train_dataloader = dict(
    batch_size=64, num_workers=2, persistent_workers=False,
    dataset=dict(data_root=data_root))
val_dataloader = dict(
    batch_size=250, num_workers=1, persistent_workers=False,
    dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
optim_wrapper = dict(optimizer=dict(lr=0.05))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=1, end=epochs,
         T_max=epochs - 1, eta_min=0.0, convert_to_iter_based=True)
]
train_cfg = dict(max_epochs=epochs, val_interval=epochs)
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=epochs, max_keep_ckpts=1))
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
