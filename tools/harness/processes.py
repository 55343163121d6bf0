"""Setting up and ending a training or test process (``tools/train.py``,
``tools/test.py``): a gloo process group for CPU-only distributed runs, the
default model wrapper such a run needs, and the end of a distributed run.

mmengine's ``init_dist`` calls ``torch.cuda.set_device`` and its default
``MMDistributedDataParallel`` passes ``device_ids``, both of which fail
without a GPU; these helpers make a CPU run behave as a GPU run does.
"""
import logging
import os
import sys
from typing import Optional

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


def shutdown_process_group(hard_exit: bool = False) -> None:
    """End a distributed run cleanly: wait for every rank, then destroy
    the default process group (a no-op outside torch.distributed).

    mmengine leaves the group to the interpreter's exit. With gloo, a rank
    can then abort after a finished run ("terminate called without an
    active exception", SIGABRT, on a loaded machine, 2 of about 50 of the
    test suite's 2-rank runs): Python's faulthandler shows the main
    thread with no Python frame, so it happens in the C++ teardown at
    interpreter exit, after the group is destroyed. ``hard_exit=True``
    (``tools/train.py`` and ``tools/test.py`` run as scripts) therefore
    ends a gloo rank with ``os._exit(0)`` once the group is destroyed,
    after flushing the logs and standard streams: checkpoints, logs and
    ``vis_data`` are closed by then (mmengine closes its visualizer in
    ``after_run``), and nothing in mmengine, mmcv or mmseg registers an
    ``atexit`` handler. DataLoader worker processes, if any, see their
    parent gone and exit within torch's 5 s status interval. NCCL runs
    exit normally."""
    if not (torch_dist.is_available() and torch_dist.is_initialized()):
        return
    gloo = torch_dist.get_backend() == 'gloo'
    torch_dist.barrier()
    torch_dist.destroy_process_group()
    if hard_exit and gloo:
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # closed or broken pipe
                pass
        os._exit(0)
