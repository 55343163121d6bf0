from .local_head import InfoProLocalHead
from .local_task_head import LocalTaskHead
from .recons_decoder import ReconstructionDecoder, reconstruction_target

__all__ = [
    'InfoProLocalHead', 'LocalTaskHead', 'ReconstructionDecoder',
    'reconstruction_target'
]
