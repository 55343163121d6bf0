"""Training hooks (for ``custom_hooks``)."""
from .memory_hook import InfoProMemoryHook
from .rng_state_hook import RNGStateHook

__all__ = ['InfoProMemoryHook', 'RNGStateHook']
