# The CPU demo trained end to end (K=1), for comparison with the K=2 demo.
_base_ = './deeplabv3_r18-tiny_k2_synthetic.py'
model = dict(backbone=dict(split_points=[]), local_heads=None)
