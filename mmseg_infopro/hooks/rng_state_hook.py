"""Save the random number generators' states in checkpoints and restore
them on resume, so that a resumed run continues exactly where the
interrupted one stopped (dropout masks, random augmentation in the main
process)."""
import random

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.logging import print_log

from mmseg.registry import HOOKS

KEY = 'rng_state'


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Put the Python, numpy, torch (and CUDA) RNG states of the process
    that saves the checkpoint (rank 0) into ``checkpoint['rng_state']``;
    ``--resume`` restores them after the weights, optimizer and schedulers.

    mmengine seeds every process with ``randomness.seed`` at start-up but
    does not save the generators, so without this hook a resumed run draws
    different dropout masks than the uninterrupted one. All ranks share the
    seed (``diff_rank_seed=False``, the default), so rank 0's state is
    every rank's. Dataloader workers draw from their own generators; with
    ``num_workers > 0`` random augmentation after a resume is seeded anew
    by mmengine's ``worker_init_fn`` and exactness holds only without
    random augmentation.
    """
    priority = 'VERY_LOW'

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        state = dict(
            python=random.getstate(),
            numpy=np.random.get_state(),
            torch=torch.get_rng_state())
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state['cuda'] = torch.cuda.get_rng_state_all()
        checkpoint[KEY] = state

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get(KEY)
        if state is None:
            print_log('the checkpoint has no random generator states (saved '
                      'without RNGStateHook): the resumed run draws new '
                      'random numbers', logger='current')
            return
        random.setstate(state['python'])
        np.random.set_state(state['numpy'])
        torch.set_rng_state(state['torch'])
        if 'cuda' in state and torch.cuda.is_available():
            if len(state['cuda']) == torch.cuda.device_count():
                torch.cuda.set_rng_state_all(state['cuda'])
