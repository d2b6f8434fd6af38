"""Stand-in gymtorch: the stand-in's tensors are torch tensors already (see __init__.py)."""
import torch


def wrap_tensor(tensor):
    if not isinstance(tensor, torch.Tensor):
        raise TypeError("wrap_tensor takes a tensor descriptor from acquire_*_tensor")
    return tensor


def unwrap_tensor(tensor):
    if not isinstance(tensor, torch.Tensor):
        raise TypeError("unwrap_tensor takes a torch tensor")
    return tensor
