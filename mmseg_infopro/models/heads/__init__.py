from .cls_aux_net import AuxClassifier1c2f
from .cls_local_head import InfoProClsLocalHead
from .cls_loss_weights import interpolated_weights, release_loss_weights
from .cls_recons_decoder import ImageReconsDecoder
from .feature_recons_decoder import FeatureReconstructionDecoder
from .local_head import InfoProLocalHead, InfoProPaperLocalHead
from .local_task_head import LocalTaskHead, pixel_loss
from .multi_level_task_head import (FUSION_STYLES, MultiLevelTaskHead,
                                    fusion_style)
from .recons_decoder import ReconstructionDecoder, reconstruction_target
from .supcon_loss import SupConLoss

__all__ = [
    'InfoProLocalHead', 'InfoProPaperLocalHead', 'LocalTaskHead', 'MultiLevelTaskHead',
    'FUSION_STYLES', 'fusion_style', 'pixel_loss', 'ReconstructionDecoder',
    'FeatureReconstructionDecoder', 'reconstruction_target',
    'InfoProClsLocalHead', 'ImageReconsDecoder', 'AuxClassifier1c2f',
    'SupConLoss', 'interpolated_weights', 'release_loss_weights'
]
