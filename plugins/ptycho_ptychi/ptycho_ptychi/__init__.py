"""ptycho-ptychi: pty-chi's iterative engines (`lsqml`, `epie`, `rpie`, `dm`) as generators of
kind "iterative": no training, each reconstructs the test data's whole object.

Importing this package imports nothing heavy: the engines live in `ptycho_ptychi.engines`.
"""

__version__ = "0.1.0"
