"""What the InfoPro step needs from mmengine's optimizer wrapper.

The InfoPro step back-propagates K losses per iteration but must look, to
mmengine, like one ``OptimWrapper.update_params(loss)``: one ``backward``
call (which counts the iteration for gradient accumulation and decides
``should_sync``), the same loss scaling for every loss, one ``step`` and
``zero_grad`` when ``should_update()``. So the last module's loss goes
through ``update_params`` and every earlier local loss through
:func:`backward_local`, which scales it exactly as ``update_params`` would
and calls ``loss.backward()`` without counting it.
"""
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from torch import Tensor

#: what the InfoPro step relies on in an optimizer wrapper: these methods
#: must be OptimWrapper's or AmpOptimWrapper's own
RELIED_ON = ('update_params', 'backward', 'step', 'zero_grad', 'scale_loss',
             'should_update', 'should_sync', 'optim_context')


def check_optim_wrapper(optim_wrapper, owner: str = 'the InfoPro step'
                        ) -> None:
    """Raise ``NotImplementedError`` unless ``optim_wrapper`` is an
    OptimWrapper / AmpOptimWrapper whose :data:`RELIED_ON` methods are
    those classes' own (a subclass overriding one of them would be
    bypassed or called in a way it does not expect: the local losses are
    scaled and back-propagated outside ``update_params``).

    Args:
        optim_wrapper: what the runner passes to ``train_step``.
        owner: who asks, for the message (e.g.
            ``'InfoProEncoderDecoder.train_step'``).
    """
    if not isinstance(optim_wrapper, OptimWrapper):
        raise NotImplementedError(
            f'{owner} needs one OptimWrapper or AmpOptimWrapper for the '
            f'whole model, got {type(optim_wrapper).__name__}')
    overridden = [
        name for name in RELIED_ON
        if getattr(type(optim_wrapper), name) not in (
            getattr(OptimWrapper, name), getattr(AmpOptimWrapper, name))
    ]
    if overridden:
        raise NotImplementedError(
            f'{owner} supports OptimWrapper and AmpOptimWrapper; '
            f'{type(optim_wrapper).__name__} overrides '
            f'{", ".join(overridden)}, which the InfoPro step calls in its '
            'own order (local losses are scaled and back-propagated outside '
            'update_params)')


def backward_local(loss: Tensor, optim_wrapper: OptimWrapper) -> None:
    """Back-propagate a local loss as ``update_params`` would (the
    accumulation scaling of ``scale_loss`` and, with AMP, the loss
    scaler's), without counting it as an iteration. A loss that needs no
    gradient (a frozen local module and head) is skipped."""
    if not loss.requires_grad:
        return
    loss = optim_wrapper.scale_loss(loss)
    scaler = getattr(optim_wrapper, 'loss_scaler', None)
    if scaler is not None:
        loss = scaler.scale(loss)
    loss.backward()
