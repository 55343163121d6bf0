from .infopro_ddp import InfoProDistributedDataParallel, init_cpu_process_group

__all__ = ['InfoProDistributedDataParallel', 'init_cpu_process_group']
