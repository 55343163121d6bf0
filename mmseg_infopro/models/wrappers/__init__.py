from .infopro_ddp import (BufferSyncedModule, InfoProDistributedDataParallel,
                          cpu_default_model_wrapper, init_cpu_process_group)

__all__ = [
    'InfoProDistributedDataParallel', 'BufferSyncedModule',
    'cpu_default_model_wrapper', 'init_cpu_process_group'
]
