"""Setting up and ending a training or test process (``tools/train.py``,
``tools/test.py``): a gloo process group for CPU-only distributed runs, the
default model wrapper such a run needs, and the end of a distributed run.

mmengine's ``init_dist`` calls ``torch.cuda.set_device`` and its default
``MMDistributedDataParallel`` passes ``device_ids``, both of which fail
without a GPU; these helpers make a CPU run behave as a GPU run does.
"""
import gc
import logging
import os
import sys
from typing import Callable, Optional

import torch.distributed as torch_dist
from mmengine.device import get_device
from mmengine.logging import print_log


def init_cpu_process_group(launcher: str,
                           dist_cfg: Optional[dict] = None) -> bool:
    """Initialise a gloo process group for a CPU-only distributed run.

    mmengine's ``init_dist`` calls ``torch.cuda.set_device``, which fails
    without a GPU, but it skips initialisation when a process group exists.
    Call this before building the runner: on a machine with no accelerator
    and ``launcher='pytorch'`` (torchrun's environment variables) it
    initialises gloo; otherwise it does nothing and mmengine initialises as
    usual.

    Args:
        launcher: the ``--launcher`` value.
        dist_cfg: the config's ``env_cfg.dist_cfg`` (only ``timeout``, in
            seconds, is used; the backend is gloo).

    Returns:
        True if it initialised the process group.
    """
    if launcher == 'none' or get_device() != 'cpu' or \
            torch_dist.is_initialized():
        return False
    if launcher != 'pytorch':
        raise RuntimeError(
            f'--launcher {launcher} needs a GPU (mmengine sets a CUDA '
            'device); without one, launch with torchrun and --launcher '
            'pytorch (tools/dist_train.sh), which uses gloo on the CPU')
    dist_cfg = dict(dist_cfg or {})
    backend = dist_cfg.get('backend', 'gloo')
    if backend != 'gloo':
        print_log(
            f'No GPU: using the gloo backend instead of {backend}.',
            logger='current',
            level=logging.WARNING)
    kwargs = {}
    if dist_cfg.get('timeout') is not None:
        import datetime
        kwargs['timeout'] = datetime.timedelta(seconds=dist_cfg['timeout'])
    torch_dist.init_process_group(backend='gloo', init_method='env://',
                                  **kwargs)
    return True


def cpu_default_model_wrapper(cfg) -> bool:
    """Make mmengine's default model wrapper work in a CPU-only distributed
    run; call it when :func:`init_cpu_process_group` returned True.

    Without ``model_wrapper_cfg``, mmengine wraps the model in
    ``MMDistributedDataParallel(device_ids=[LOCAL_RANK],
    broadcast_buffers=False)``, which torch rejects for a CPU module
    (``device_ids ... only work with ... GPU modules``). This sets that same
    wrapper without ``device_ids`` in ``cfg``, so that the CPU run behaves
    as a GPU run: a plain mmseg model trains, and an
    InfoPro model with K > 1 stops with its error naming the
    ``model_wrapper_cfg`` line to add. A config that sets
    ``model_wrapper_cfg`` is left alone.

    Returns:
        True if it set ``cfg.model_wrapper_cfg``.
    """
    if cfg.get('model_wrapper_cfg') is not None:
        return False
    cfg.model_wrapper_cfg = dict(
        type='MMDistributedDataParallel',
        device_ids=None,
        broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    return True


def gloo_worker_threads() -> Optional[int]:
    """How many gloo worker threads (``pt_gloo_runloop``) this process
    still runs; None where ``/proc`` cannot say."""
    try:
        tids = os.listdir('/proc/self/task')
    except OSError:
        return None
    count = 0
    for tid in tids:
        try:
            with open(f'/proc/self/task/{tid}/comm') as f:
                count += f.read().strip() == 'pt_gloo_runloop'
        except OSError:
            pass
    return count


def shutdown_process_group() -> bool:
    """End a distributed run: free what still holds the process group,
    wait for every rank, destroy the group (a no-op outside
    torch.distributed).

    Returns whether the interpreter may exit normally: False when a gloo
    group's worker threads are still alive (something else still holds
    the group). Those threads must not outlive the interpreter: one that
    finishes a collective while Python finalizes drops tensors that need
    the GIL, is made to exit by Python, and the forced unwinding aborts
    the process ("terminate called without an active exception"; see
    docs/distributed.md). The runner's DDPs hold the group through their
    reducers, in reference cycles, so they are collected first, while
    torch's registry still holds the group: then ``destroy_process_group``
    drops its last reference, and its destructor joins the threads."""
    if not (torch_dist.is_available() and torch_dist.is_initialized()):
        return True
    gloo = torch_dist.get_backend() == 'gloo'
    gc.collect()
    torch_dist.barrier()
    torch_dist.destroy_process_group()
    return not gloo or gloo_worker_threads() in (0, None)


#: what :func:`hard_exit` writes to stderr
HARD_EXIT_NOTE = ('gloo worker threads are still alive after the process '
                  'group was destroyed: ending with os._exit(0)')


def hard_exit() -> None:
    """``os._exit(0)`` after a note on stderr and flushing the logs and
    standard streams (the run's checkpoints, logs and ``vis_data`` are
    closed by then)."""
    print(HARD_EXIT_NOTE, file=sys.stderr)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed or broken pipe
            pass
    os._exit(0)


def run_tool(main: Callable[[], object]) -> None:
    """The ``__main__`` of tools/train.py and tools/test.py: ``main()``; a
    refused checkpoint ends the process with its message (it says what to
    do); then the end of a distributed run, with a hard exit only where
    gloo threads would abort the interpreter's exit (docs/distributed.md)."""
    from mmseg_infopro.safe_loading import UnsafeCheckpointError
    try:
        main()
    except UnsafeCheckpointError as error:
        raise SystemExit(f'error: {error}') from None
    if not shutdown_process_group():
        hard_exit()
