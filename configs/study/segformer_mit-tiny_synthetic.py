# Accuracy study: SegFormer with a small MiT (16-channel base, one block per
# stage; configs/study/models/segformer_mit-tiny_k2_synthetic.py) on the
# generated Cityscapes-format data at 128x256 (batch 4), 1200 iterations,
# seeds 0, 1, 2 (fixed before any result). Run:
#   python tools/accuracy_study.py \
#       configs/study/segformer_mit-tiny_synthetic.py \
#       --out docs/accuracy/segformer_mit-tiny_synthetic.json \
#       --plot docs/accuracy/segformer_mit-tiny_synthetic.png --markdown
# Variants: e2e (K=1); k2 (InfoPro, cut before stage 3, 1.5 x image
# reconstruction + 1 x task); k2_features (the same, reconstructing the
# module's input features, MSE, as Pathak et al.); k4 (one module per
# stage); greedy (K=2, task loss only).
k2 = 'configs/study/models/segformer_mit-tiny_k2_synthetic.py'
study = dict(
    name='segformer_mit-tiny_synthetic',
    metric='mIoU',
    iters=1200,
    seeds=[0, 1, 2],
    data=dict(kind='synthetic_cityscapes',
              root='data/study/cityscapes_128x256', num_train=400,
              num_val=100, height=128, width=256, seed=0),
    variants=dict(
        e2e=dict(config=k2,
                 options={'model.backbone.split_points': [],
                          'model.local_heads': None}),
        k2=dict(config=k2),
        k2_features=dict(
            config=k2,
            options={'model.local_heads.recons_target': 'features',
                     'model.local_heads.recons_head.channels': 32}),
        k4=dict(config='configs/study/models/'
                'segformer_mit-tiny_k4_synthetic.py'),
        greedy=dict(config=k2,
                    options={'model.local_heads.recons_head': None}),
        # issue 23: local-head capacity and the mechanisms
        k2_default=dict(
            config='configs/study/models/segformer_mit-tiny_k2_default-heads_synthetic.py',
            options={}),
        k4_default=dict(
            config='configs/study/models/segformer_mit-tiny_k4_default-heads_synthetic.py',
            options={}),
        k2_fusion=dict(
            config='configs/study/models/segformer_mit-tiny_k2_synthetic.py',
            options={'model.local_heads.head_aware': True}),
        k2_fusion_default=dict(
            config='configs/study/models/segformer_mit-tiny_k2_default-heads_synthetic.py',
            options={'model.local_heads.head_aware': True}),
        k2_auglocal=dict(
            config='configs/study/models/segformer_mit-tiny_k2_synthetic.py',
            options={'model.local_heads.head_aware': True,
                  'model.local_heads.lookahead.type': 'auglocal',
                  'model.local_heads.lookahead.depth': 2}),
        k2_auglocal_default=dict(
            config='configs/study/models/segformer_mit-tiny_k2_default-heads_synthetic.py',
            options={'model.local_heads.head_aware': True,
                  'model.local_heads.lookahead.type': 'auglocal',
                  'model.local_heads.lookahead.depth': 2}),
        k2_man=dict(
            config='configs/study/models/segformer_mit-tiny_k2_synthetic.py',
            options={'model.local_heads.head_aware': True,
                  'model.local_heads.lookahead.type': 'man',
                  'model.local_heads.lookahead.momentum': 0.995}),
        k2_man_default=dict(
            config='configs/study/models/segformer_mit-tiny_k2_default-heads_synthetic.py',
            options={'model.local_heads.head_aware': True,
                  'model.local_heads.lookahead.type': 'man',
                  'model.local_heads.lookahead.momentum': 0.995}),
        k4_auglocal=dict(
            config='configs/study/models/segformer_mit-tiny_k4_synthetic.py',
            options={'model.local_heads.0.head_aware': True,
                  'model.local_heads.0.lookahead.type': 'auglocal',
                  'model.local_heads.0.lookahead.depth': 2,
                  'model.local_heads.1.head_aware': True,
                  'model.local_heads.1.lookahead.type': 'auglocal',
                  'model.local_heads.1.lookahead.depth': 2,
                  'model.local_heads.2.head_aware': True,
                  'model.local_heads.2.lookahead.type': 'auglocal',
                  'model.local_heads.2.lookahead.depth': 2}),
        k4_auglocal_default=dict(
            config='configs/study/models/segformer_mit-tiny_k4_default-heads_synthetic.py',
            options={'model.local_heads.head_aware': True,
                  'model.local_heads.lookahead.type': 'auglocal',
                  'model.local_heads.lookahead.depth': 2}),
        k4_man=dict(
            config='configs/study/models/segformer_mit-tiny_k4_synthetic.py',
            options={'model.local_heads.0.head_aware': True,
                  'model.local_heads.0.lookahead.type': 'man',
                  'model.local_heads.0.lookahead.momentum': 0.995,
                  'model.local_heads.1.head_aware': True,
                  'model.local_heads.1.lookahead.type': 'man',
                  'model.local_heads.1.lookahead.momentum': 0.995,
                  'model.local_heads.2.head_aware': True,
                  'model.local_heads.2.lookahead.type': 'man',
                  'model.local_heads.2.lookahead.momentum': 0.995}),
        k4_man_default=dict(
            config='configs/study/models/segformer_mit-tiny_k4_default-heads_synthetic.py',
            options={'model.local_heads.head_aware': True,
                  'model.local_heads.lookahead.type': 'man',
                  'model.local_heads.lookahead.momentum': 0.995}),
        # AugLocal as published: the task loss only (no reconstruction)
        k2_auglocal_ce=dict(
            config='configs/study/models/segformer_mit-tiny_k2_synthetic.py',
            options={'model.local_heads.head_aware': True,
                     'model.local_heads.lookahead.type': 'auglocal',
                     'model.local_heads.lookahead.depth': 2,
                     'model.local_heads.recons_head': None}),
        k4_auglocal_ce=dict(
            config='configs/study/models/segformer_mit-tiny_k4_synthetic.py',
            options={'model.local_heads.0.head_aware': True,
                     'model.local_heads.0.lookahead.type': 'auglocal',
                     'model.local_heads.0.lookahead.depth': 2,
                     'model.local_heads.0.recons_head': None,
                     'model.local_heads.1.head_aware': True,
                     'model.local_heads.1.lookahead.type': 'auglocal',
                     'model.local_heads.1.lookahead.depth': 2,
                     'model.local_heads.1.recons_head': None,
                     'model.local_heads.2.head_aware': True,
                     'model.local_heads.2.lookahead.type': 'auglocal',
                     'model.local_heads.2.lookahead.depth': 2,
                     'model.local_heads.2.recons_head': None})),
    baseline='e2e',
    threads=1)
