"""ptycho-mynet: the `mynet` generator for ptycho (registered in `ptycho_mynet.plugin`)."""

__version__ = "0.1.0"
