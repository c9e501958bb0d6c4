"""ptycho-fno: Fourier neural operator generators for ptycho (`fno`, `hybrid`, `stable_hybrid`).

Importing this package imports nothing heavy; `plugin` registers specs only, `models` holds the
factories, `blocks`, `fno` and `hybrid` the torch networks.
"""
