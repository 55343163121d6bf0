# ResNet-101 (mmseg's ResNet, pytorch style: stride in the 3x3 conv, 7x7
# stem) as an InfoPro classifier for ImageNet. K=1 (no cut) is plain
# end-to-end training. The local head of a cut is the release's ImageNet
# one: the paper's decoder (1x1 ->128, three x2 upsamplings with 3x3 convs
# ->32 ->12 ->3, sigmoid, BCE) and a conv aux classifier (1x1 ->128, 3x3/2
# ->256, 3x3/2 ->512, 1x1 ->2048, pool, linear) with cross-entropy.
model = dict(
    type='InfoProImageClassifier',
    data_preprocessor=dict(type='ImgDataPreprocessor', bgr_to_rgb=True),
    backbone=dict(type='InfoProResNet', depth=101, out_indices=(3, ),
                  style='pytorch'),
    head=dict(type='LinearClsHead', num_classes=1000, in_channels=2048,
              topk=(1, 5)),
    local_heads=dict(
        type='InfoProClsLocalHead', aux_mode='softmax',
        aux_head=dict(type='AuxConvClassifier'),
        recons_head=dict(type='ReconstructionDecoder', align_corners=True)))
