# UPerNet with a small Swin Transformer, shrunk to train on 2 CPU cores:
# 16-channel base, depths (1, 1, 2, 1) (16/32/64/128 channels, 1/2/4/8
# heads), window 4, a 32-channel UPerHead and a 16-channel auxiliary FCN
# head; from scratch on the generated Cityscapes-format data at 128x256.
# InfoPro K=2: cut before stage 3 (the first module ends after stage 2's
# patch merging, stride 16), the paper's local loss (1.5 x image
# reconstruction + 1 x task). AdamW with a linear warm-up, then poly decay.
# Variants (E2E, K=4, feature reconstruction, greedy):
# configs/study/upernet_swin-tiny_synthetic.py.
_base_ = [
    'mmseg::_base_/models/upernet_swin.py',
    './_base_/synthetic_cityscapes.py'
]
crop_size = (128, 256)
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    type='InfoProEncoderDecoder',
    pretrained=None,
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        type='InfoProSwinTransformer',
        embed_dims=16,
        depths=(1, 1, 2, 1),
        num_heads=(1, 2, 4, 8),
        window_size=4,
        drop_path_rate=0.1,
        split_points=[(3, 0)]),
    decode_head=dict(in_channels=[16, 32, 64, 128], channels=32,
                     norm_cfg=norm_cfg),
    auxiliary_head=dict(in_channels=64, channels=16, norm_cfg=norm_cfg),
    local_heads=dict(
        loss_recons_weight=1.5,
        loss_task_weight=1.0,
        task_head=dict(channels=32, dropout_ratio=0.1),
        recons_head=dict(channels=(32, 16, 8)),
        norm_cfg=norm_cfg,
        # the paper's plain local head (issue 23's variants add the rest)
        head_aware=False,
        lookahead=dict(type=None)))
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999),
                   weight_decay=0.01),
    paramwise_cfg=dict(custom_keys={
        'absolute_pos_embed': dict(decay_mult=0.),
        'relative_position_bias_table': dict(decay_mult=0.),
        'norm': dict(decay_mult=0.)
    }))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=False, begin=0,
         end=60),
    dict(type='PolyLR', eta_min=0.0, power=1.0, by_epoch=False, begin=60,
         end={{_base_.max_iters}})
]
