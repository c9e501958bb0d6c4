"""ptycho_core: shared contracts of the ptycho model zoo.

Importing this package is cheap: only the standard library (docs/design.md#layers). Numerical
modules (`physics`, `data`, `metrics`, ...) are imported explicitly by whoever needs them.
"""

__version__ = "0.1.0"
