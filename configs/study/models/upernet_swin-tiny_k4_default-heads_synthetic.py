# upernet_swin-tiny_k4_synthetic with the local heads a user of the README's mix-in
# gets: the paper's sizes (task head 512 channels, or the decode head's width
# when head-aware; reconstruction decoder (128, 32, 12)) at every cut, the
# study's loss weights (1.5 x image reconstruction + 1 x task).
_base_ = './upernet_swin-tiny_k4_synthetic.py'
model = dict(
    local_heads=dict(
        _delete_=True, loss_recons_weight=1.5, loss_task_weight=1.0,
        head_aware=False, lookahead=dict(type=None)))
