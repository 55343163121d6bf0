from .cls_local_head import (AuxClassifier1c2f, ImageReconsDecoder,
                             InfoProClsLocalHead, SupConLoss,
                             interpolated_weights, release_loss_weights)
from .feature_recons_decoder import FeatureReconstructionDecoder
from .local_head import InfoProLocalHead
from .local_task_head import LocalTaskHead
from .recons_decoder import ReconstructionDecoder, reconstruction_target

__all__ = [
    'InfoProLocalHead', 'LocalTaskHead', 'ReconstructionDecoder',
    'FeatureReconstructionDecoder', 'reconstruction_target',
    'InfoProClsLocalHead', 'ImageReconsDecoder', 'AuxClassifier1c2f',
    'SupConLoss', 'interpolated_weights', 'release_loss_weights'
]
