"""A torch network's weights as the named arrays a model file holds (``net.<parameter>``), and back."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["load_net_arrays", "net_arrays"]


def net_arrays(net: Any) -> dict[str, np.ndarray]:
    """Every tensor of ``net``'s state dict as a CPU array named ``net.<key>``."""
    return {f"net.{k}": v.detach().cpu().numpy() for k, v in net.state_dict().items()}


def load_net_arrays(net: Any, arrays: dict[str, np.ndarray], model: str) -> Any:
    """Load the ``net.*`` arrays into ``net``; return it on the default device, in eval mode.

    Weights that do not fit the network (missing, unexpected or mis-shaped:
    a file from another zenrec version, or edited) raise ``ValueError``
    naming ``model``, which model loading reports as an artifact error.
    """
    import torch

    from zenrec.train.device import pick_device

    state = {k[4:]: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items() if k.startswith("net.")}
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"the saved network does not fit {model}'s network in this zenrec version "
                         f"(a file from another version, or edited? retrain the model): {first}") from None
    return net.to(pick_device(None, 1)).eval()
