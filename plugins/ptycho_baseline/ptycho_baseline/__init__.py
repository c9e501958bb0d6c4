"""ptycho-baseline: the supervised PtychoNN-style `baseline` generator (torch).

Importing this package imports nothing heavy: the network lives in `ptycho_baseline.network`.
"""

__version__ = "0.1.0"
