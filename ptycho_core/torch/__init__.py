"""Torch engine shared by torch generators: physics, losses, the training loop, weights I/O.

Imported only by torch plugins and child processes (this package itself imports nothing heavy;
its modules import torch):

    ptycho_core.torch.physics   extract / splat / forward / overlap_average matching the numpy reference
    ptycho_core.torch.losses    Poisson NLL and MAE physics losses, the supervised loss
    ptycho_core.torch.trainer   TorchGenerator: fit / predict / save / load around any nn.Module
    ptycho_core.torch.weights   safetensors save_weights / load_weights (never pickle)
"""
