"""Training hooks of the engine (for ``custom_hooks``); the memory hook,
an adapter over the memory tools, lives in :mod:`mmseg_infopro.memory`."""
from .rng_state_hook import RNGStateHook

__all__ = ['RNGStateHook']
