"""Shared fixtures for the pinn_tf tests: tiny seeded data (N = 16) and trained tiny models.

Sizes are chosen so the whole suite runs in well under a minute on two CPU cores: 64 patterns of
16 x 16, filter_scale 1, one to three epochs.
"""

from __future__ import annotations

import os

import pytest

#: The simulation every test uses: 48 x 48 lines object, step 4 -> 64 patterns per dataset.
SIM = {"patch_size": 16, "object_size": 48, "step": 4, "train_objects": 1}


def require_pinn_tf():
    """Import the TF side of the plugin; skip when TensorFlow is missing, except under CI=true."""
    if os.environ.get("CI") == "true":
        import ptycho_pinn_tf.generator as generator
    else:
        generator = pytest.importorskip("ptycho_pinn_tf.generator")
    return generator


@pytest.fixture(scope="session")
def pinn_tf():
    """The `ptycho_pinn_tf.generator` module (TensorFlow imported)."""
    return require_pinn_tf()


@pytest.fixture(scope="session")
def pinn_pair():
    """(train, test) simulated datasets of 64 patterns each."""
    from ptycho_core.simulate import SimConfig, simulate_pair

    return simulate_pair(SimConfig(**SIM))


@pytest.fixture(scope="session")
def prepared_g1(pinn_pair):
    from ptycho_core.pipeline import prepare

    return prepare(pinn_pair[0], pinn_pair[1], gridsize=1, seed=0, val_fraction=0.2)


@pytest.fixture(scope="session")
def prepared_g2(pinn_pair):
    from ptycho_core.pipeline import prepare

    return prepare(pinn_pair[0], pinn_pair[1], gridsize=2, seed=0, val_fraction=0.2)


def _fit_tiny(prepared, epochs: int = 1, seed: int = 0, **options):
    """A filter_scale-1 pinn_tf fitted on `prepared`; returns (generator, history, events)."""
    from ptycho_core.generator import TrainConfig

    generator = require_pinn_tf()
    gen = generator.build_pinn_tf(**{"filter_scale": 1, **options})
    events = []
    config = TrainConfig(epochs=epochs, batch_size=8, lr=3e-3, seed=seed)
    history = gen.fit(prepared.train, prepared.val, config, events.append)
    return gen, history, events


@pytest.fixture(scope="session")
def fit_tiny():
    """`fit_tiny(prepared, epochs=1, seed=0, **options) -> (generator, history, events)`."""
    return _fit_tiny


@pytest.fixture(scope="session")
def trained_g1(prepared_g1):
    """pinn_tf trained 3 epochs at gridsize 1: (generator, history, progress events)."""
    return _fit_tiny(prepared_g1, epochs=3)


@pytest.fixture(scope="session")
def trained_g2(prepared_g2):
    """pinn_tf trained 1 epoch at gridsize 2 (overlap constraint on)."""
    return _fit_tiny(prepared_g2, epochs=1)
