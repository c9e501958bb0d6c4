"""ptycho-pinn-tf: PtychoPINN (TensorFlow / Keras 3) for the ptycho model zoo.

Importing this package is cheap: TensorFlow is imported only by `env`, `physics`, `model` and
`generator`, which the core imports where the generator runs (`plugin.py` registers a spec only).
"""

__version__ = "0.1.0"
