# Accuracy study: DeepLabV3 ResNetV1c-18 (the CPU demo's model) on the
# generated Cityscapes-format data at 64x128 (batch 4), 1200 iterations,
# seeds 0, 1, 2 (fixed before any result). Run:
#   python tools/accuracy_study.py \
#       configs/study/deeplabv3_r18_synthetic.py \
#       --out docs/accuracy/deeplabv3_r18_synthetic.json \
#       --plot docs/accuracy/deeplabv3_r18_synthetic.png --markdown
# Variants: e2e (K=1); k2 (InfoPro, cut before layer3, 1.5 x image
# reconstruction + 1 x task); k4 (cuts before layer2, layer3, layer4);
# greedy (K=2, task loss only: DGL's greedy local cross-entropy).
demo = 'configs/demo/deeplabv3_r18-tiny_k{}_synthetic.py'
study = dict(
    name='deeplabv3_r18_synthetic',
    metric='mIoU',
    iters=1200,
    seeds=[0, 1, 2],
    data=dict(kind='synthetic_cityscapes',
              root='data/study/cityscapes_64x128', num_train=400,
              num_val=100, height=64, width=128, seed=0),
    # every variant: the demo's model at the data's size
    options={'model.data_preprocessor.size': (64, 128)},
    variants=dict(
        e2e=dict(config=demo.format(1)),
        k2=dict(config=demo.format(2)),
        k4=dict(config='configs/study/models/'
                'deeplabv3_r18-tiny_k4_synthetic.py'),
        greedy=dict(config=demo.format(2),
                    options={'model.local_heads.0.recons_head': None}),
        # issue 23: local-head capacity and the mechanisms
        k2_default=dict(
            config='configs/study/models/deeplabv3_r18-tiny_k2_default-heads_synthetic.py',
            options={}),
        k4_default=dict(
            config='configs/study/models/deeplabv3_r18-tiny_k4_default-heads_synthetic.py',
            options={}),
        k2_auglocal=dict(
            config='configs/demo/deeplabv3_r18-tiny_k2_synthetic.py',
            options={'model.local_heads.0.lookahead.type': 'auglocal',
                  'model.local_heads.0.lookahead.depth': 2}),
        k2_auglocal_default=dict(
            config='configs/study/models/deeplabv3_r18-tiny_k2_default-heads_synthetic.py',
            options={'model.local_heads.lookahead.type': 'auglocal',
                  'model.local_heads.lookahead.depth': 2}),
        k2_man=dict(
            config='configs/demo/deeplabv3_r18-tiny_k2_synthetic.py',
            options={'model.local_heads.0.lookahead.type': 'man',
                  'model.local_heads.0.lookahead.momentum': 0.995}),
        k2_man_default=dict(
            config='configs/study/models/deeplabv3_r18-tiny_k2_default-heads_synthetic.py',
            options={'model.local_heads.lookahead.type': 'man',
                  'model.local_heads.lookahead.momentum': 0.995}),
        k4_auglocal=dict(
            config='configs/study/models/deeplabv3_r18-tiny_k4_synthetic.py',
            options={'model.local_heads.0.lookahead.type': 'auglocal',
                  'model.local_heads.0.lookahead.depth': 2,
                  'model.local_heads.1.lookahead.type': 'auglocal',
                  'model.local_heads.1.lookahead.depth': 2,
                  'model.local_heads.2.lookahead.type': 'auglocal',
                  'model.local_heads.2.lookahead.depth': 2}),
        k4_auglocal_default=dict(
            config='configs/study/models/deeplabv3_r18-tiny_k4_default-heads_synthetic.py',
            options={'model.local_heads.lookahead.type': 'auglocal',
                  'model.local_heads.lookahead.depth': 2}),
        k4_man=dict(
            config='configs/study/models/deeplabv3_r18-tiny_k4_synthetic.py',
            options={'model.local_heads.0.lookahead.type': 'man',
                  'model.local_heads.0.lookahead.momentum': 0.995,
                  'model.local_heads.1.lookahead.type': 'man',
                  'model.local_heads.1.lookahead.momentum': 0.995,
                  'model.local_heads.2.lookahead.type': 'man',
                  'model.local_heads.2.lookahead.momentum': 0.995}),
        k4_man_default=dict(
            config='configs/study/models/deeplabv3_r18-tiny_k4_default-heads_synthetic.py',
            options={'model.local_heads.lookahead.type': 'man',
                  'model.local_heads.lookahead.momentum': 0.995}),
        # AugLocal as published: the task loss only (no reconstruction)
        k2_auglocal_ce=dict(
            config='configs/demo/deeplabv3_r18-tiny_k2_synthetic.py',
            options={'model.local_heads.0.lookahead.type': 'auglocal',
                     'model.local_heads.0.lookahead.depth': 2,
                     'model.local_heads.0.recons_head': None}),
        k4_auglocal_ce=dict(
            config='configs/study/models/deeplabv3_r18-tiny_k4_synthetic.py',
            options={'model.local_heads.0.lookahead.type': 'auglocal',
                     'model.local_heads.0.lookahead.depth': 2,
                     'model.local_heads.0.recons_head': None,
                     'model.local_heads.1.lookahead.type': 'auglocal',
                     'model.local_heads.1.lookahead.depth': 2,
                     'model.local_heads.1.recons_head': None,
                     'model.local_heads.2.lookahead.type': 'auglocal',
                     'model.local_heads.2.lookahead.depth': 2,
                     'model.local_heads.2.recons_head': None})),
    baseline='e2e',
    threads=1)
