# The study's small Swin UPerNet (upernet_swin-tiny_k2_synthetic.py) as
# InfoPro K=4: cuts before stages 2, 3 and 4 (the modules end after the
# patch merging of stages 1, 2 and 3: strides 8, 16 and 32). The paper's
# local loss at every cut.
_base_ = './upernet_swin-tiny_k2_synthetic.py'
model = dict(backbone=dict(split_points=[(2, 0), (3, 0), (4, 0)]))
