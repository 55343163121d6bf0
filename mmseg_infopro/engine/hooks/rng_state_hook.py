"""Save the random number generators' states in checkpoints and restore
them on resume, so that a resumed run continues exactly where the
interrupted one stopped (data order, random augmentation in the main
process, dropout masks)."""
import logging
import random
from typing import Callable, Optional

import numpy as np
import torch
from mmengine.dist import get_world_size
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.registry import HOOKS

KEY = 'rng_state'


def capture_rng_state() -> dict:
    """The Python, numpy, torch (and, once initialised, CUDA) generator
    states of this process."""
    state = dict(
        python=random.getstate(),
        numpy=np.random.get_state(),
        torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    """Inverse of :func:`capture_rng_state`. CUDA states are restored only
    when this process sees as many GPUs as the saving one did."""
    random.setstate(state['python'])
    np.random.set_state(state['numpy'])
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        if len(state['cuda']) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(state['cuda'])
        else:
            print_log(
                f'RNGStateHook: the checkpoint has CUDA generator states of '
                f'{len(state["cuda"])} GPU(s), this process sees '
                f'{torch.cuda.device_count()}: CUDA states not restored',
                logger='current',
                level=logging.WARNING)


class _RestoreBeforeBatch:
    """Stands in for ``IterBasedTrainLoop.dataloader_iterator`` on resume.

    The loop first skips the ``skip`` batches already trained (with
    ``num_workers=0`` their random augmentation draws from this process's
    generators), then fetches the next one. This calls ``restore`` right
    before that fetch, i.e. exactly where the interrupted run saved its
    states, and then puts the original iterator back into the loop.
    """

    def __init__(self, loop, skip: int, restore: Callable[[], None]):
        self._loop = loop
        self._inner = loop.dataloader_iterator
        self._remaining = skip
        self._restore = restore

    def __iter__(self):
        return self

    def __next__(self):
        if self._remaining > 0:
            self._remaining -= 1
            return next(self._inner)
        self._restore()
        self._loop.dataloader_iterator = self._inner
        return next(self._inner)

    def __getattr__(self, name):
        # attributes of mmengine's _InfiniteDataloaderIterator
        if name == '_inner':
            raise AttributeError(name)
        return getattr(self._inner, name)


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Exact resume: put the Python, numpy, torch (and CUDA) generator
    states into ``checkpoint['rng_state']`` and give them back to the run
    resumed from it right where the interrupted run would have continued.

    mmengine seeds every process at start-up but does not save the
    generators; and on ``--resume`` its ``Runner``

    1. builds the train dataloader (sampler order, worker seeds) with the
       *new* run's seed, which is a fresh random number when the config
       sets no ``randomness.seed``;
    2. loads the checkpoint (calling ``after_load_checkpoint``), then
       re-seeds every generator with the checkpoint's seed when the
       config's differs (always, without a config seed), overwriting
       anything restored in ``after_load_checkpoint``;
    3. in the train loop, re-reads the batches already trained to skip
       them (with ``num_workers=0`` their random augmentation draws from
       the main process's generators).

    So this hook

    * ``after_load_checkpoint``: keeps the saved states (not applied yet);
    * ``before_train`` (after the resume and its re-seeding): when the
      runner's seed is no longer the one the train dataloader was built
      with, rebuilds that dataloader with the checkpoint's seed, so that
      the resumed run draws the same data order (and worker seeds) as the
      uninterrupted one; then arranges for the saved states to be
      restored right before the first new batch is fetched, after the
      skipped ones (``IterBasedTrainLoop``), or in the first
      ``before_train_epoch`` (other loops);
    * ``before_val`` / ``after_val``: keeps validation from consuming the
      training generators (its dataloader draws a base seed from torch's):
      a validation right after a checkpoint would otherwise shift every
      random number of the uninterrupted run but not of the resumed one.
      This also makes training independent of ``val_interval``.

    The states are restored only on a resume (the runner's iteration and
    epoch are the checkpoint's); ``load_from`` without ``--resume`` (e.g.
    fine-tuning) keeps the new run's seed.

    Exactness, with this hook: same weights as the uninterrupted run with
    the seed the first run used (the checkpoint's ``meta['seed']``), with
    random augmentation, with or without ``randomness.seed``, with
    ``num_workers`` 0 (augmentation in the main process) or > 0 (workers
    are seeded from the run's seed by mmengine's ``worker_init_fn`` and
    re-read the skipped batches, so they reach the same state). Not
    covered: ``diff_rank_seed=True`` in multi-process runs (only rank 0
    saves its states; every rank gets them, and a warning says so); a
    train dataloader given to the Runner as an object (cannot be rebuilt
    with another seed; a warning says so); ``deterministic=False`` GPU
    kernels (cuDNN autotuning, atomics) are not bitwise reproducible
    anyway.
    """
    priority = 'VERY_LOW'

    def __init__(self):
        self._loaded: Optional[dict] = None  # from after_load_checkpoint
        self._loader_seed: Optional[int] = None  # seed at before_run
        self._restore_at_epoch: Optional[dict] = None
        self._val_state: Optional[dict] = None

    # ---------------------------------------------------------- saving
    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        # a checkpoint saved during validation (save_best) stores the
        # training generators, as they were when validation started
        checkpoint[KEY] = self._val_state if self._val_state is not None \
            else capture_rng_state()

    # --------------------------------------------------------- resuming
    def before_run(self, runner) -> None:
        # Runner.train builds the train loop (and its dataloader, with
        # runner.seed) before before_run and resumes after it
        self._loader_seed = runner.seed

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get(KEY)
        if state is None:
            print_log('the checkpoint has no random generator states (saved '
                      'without RNGStateHook): the resumed run draws new '
                      'random numbers', logger='current',
                      level=logging.WARNING)
            self._loaded = None
            return
        meta = checkpoint.get('meta', {})
        self._loaded = dict(state=state, iter=meta.get('iter'),
                            epoch=meta.get('epoch'))

    def before_train(self, runner) -> None:
        loaded, self._loaded = self._loaded, None
        if loaded is None or loaded['iter'] != runner.iter or \
                loaded['epoch'] != runner.epoch:
            return  # not a resume (load_from, or nothing loaded)
        if get_world_size() > 1 and \
                runner._randomness_cfg.get('diff_rank_seed', False):
            print_log(
                'RNGStateHook: diff_rank_seed=True, but the checkpoint has '
                "rank 0's generator states only: every rank gets them, the "
                'resumed run is not exactly the uninterrupted one',
                logger='current',
                level=logging.WARNING)
        loop = runner.train_loop
        if runner.seed != self._loader_seed:
            self._rebuild_dataloader(runner, loop)
        state = loaded['state']
        if hasattr(loop, 'dataloader_iterator'):  # IterBasedTrainLoop
            loop.dataloader_iterator = _RestoreBeforeBatch(
                loop, runner.iter, lambda: restore_rng_state(state))
        else:
            self._restore_at_epoch = state

    def before_train_epoch(self, runner) -> None:
        if self._restore_at_epoch is not None:
            state, self._restore_at_epoch = self._restore_at_epoch, None
            restore_rng_state(state)

    def _rebuild_dataloader(self, runner, loop) -> None:
        """Rebuild the train dataloader with the runner's (the
        checkpoint's) seed, as ``BaseLoop.__init__`` built it."""
        cfg = getattr(runner, '_train_dataloader', None)
        if not isinstance(cfg, dict):
            print_log(
                f'RNGStateHook: the train dataloader was built with seed '
                f'{self._loader_seed}, the checkpoint was trained with seed '
                f'{runner.seed}, and the dataloader was given as an object '
                '(not a config), so it cannot be rebuilt: the resumed run '
                'draws another data order. Set randomness.seed in the '
                'config to the checkpoint\'s seed to avoid this.',
                logger='current',
                level=logging.WARNING)
            return
        print_log(
            f'RNGStateHook: rebuilding the train dataloader with the '
            f"checkpoint's seed {runner.seed} (it was built with "
            f'{self._loader_seed}), for the same data order as the '
            'interrupted run', logger='current')
        loop.dataloader = runner.build_dataloader(
            cfg, seed=runner.seed,
            diff_rank_seed=runner._randomness_cfg.get('diff_rank_seed',
                                                      False))
        if hasattr(loop, 'dataloader_iterator'):
            # drop the old iterator (and its workers) first
            iterator_type = type(loop.dataloader_iterator)
            loop.dataloader_iterator = None
            loop.dataloader_iterator = iterator_type(loop.dataloader)
        self._loader_seed = runner.seed

    # ------------------------------------------------------- validation
    def before_val(self, runner) -> None:
        self._val_state = capture_rng_state()

    def after_val(self, runner) -> None:
        if self._val_state is not None:
            state, self._val_state = self._val_state, None
            restore_rng_state(state)
