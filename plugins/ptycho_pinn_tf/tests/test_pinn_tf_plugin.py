"""Registration is cheap and lazy; TensorFlow's start-up chatter never reaches the user."""

import os
import subprocess
import sys
import textwrap

import pytest

from ptycho_core import registry
from ptycho_core.plugins import PluginHost


def run_python(code: str, **env_changes) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PTYCHO_VERBOSE", "TF_CPP_MIN_LOG_LEVEL")}
    env.update(env_changes)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env, timeout=300
    )


def test_pinn_tf_spec_declares_tensorflow_and_its_options():
    import ptycho_pinn_tf.plugin as plugin

    host = PluginHost(load="")
    with host.registered(plugin, "ptycho_pinn_tf", distribution="ptycho-pinn-tf"):
        spec = host.registry().generator("pinn_tf")
    assert spec.framework == "tensorflow" and spec.kind == "learned" and not spec.supervised
    assert spec.requires == ("tensorflow", "keras", "h5py")
    assert spec.factory == "ptycho_pinn_tf.generator:build_pinn_tf"
    assert spec.resolve_options({}) == {"filter_scale": 2, "overlap": True, "joint_channels": True}
    given = {"filter_scale": "1", "overlap": "false", "joint_channels": "true"}
    assert spec.resolve_options(given) == {"filter_scale": 1, "overlap": False, "joint_channels": True}


def test_registration_through_the_entry_point_imports_no_framework():
    result = run_python(
        """
        import sys
        from ptycho_core.plugins import PluginHost
        spec = PluginHost(load="ptycho-pinn-tf").registry().generator("pinn_tf")
        print(spec.distribution, spec.status())
        print(sorted(m for m in ("tensorflow", "keras", "numpy", "h5py") if m in sys.modules))
        """
    )
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.strip().splitlines()
    assert first.split()[0].replace("_", "-") == "ptycho-pinn-tf"
    assert second == "[]"


def test_missing_tensorflow_lists_pinn_tf_as_unavailable_and_the_rest_keeps_working(monkeypatch):
    import ptycho_pinn_tf.plugin as plugin

    real = registry.module_available
    monkeypatch.setattr(registry, "module_available", lambda name: name != "tensorflow" and real(name))
    host = PluginHost(load="")
    with host.registered(plugin, "ptycho_pinn_tf", distribution="ptycho-pinn-tf"):
        reg = host.registry()
        spec = reg.generator("pinn_tf")
        assert not spec.available
        assert spec.status() == "unavailable: missing tensorflow"
        assert reg.stitcher("probe_weighted").available and reg.loader("npz").available
        assert not reg.problems


@pytest.mark.slow
def test_importing_and_training_prints_nothing_on_stderr():
    """No oneDNN notice, no absl pre-init warning, no CPU feature notice, no Keras warning.

    (gridsize 1 here; the CLI test checks the same for gridsize 2, the overlap constraint on.)"""
    result = run_python(
        """
        import numpy as np
        from ptycho_core.generator import TrainConfig, TrainingSet
        import ptycho_pinn_tf.generator as g

        rng = np.random.default_rng(0)
        ts = TrainingSet(
            diffraction=rng.uniform(0, 3, (8, 1, 16, 16)).astype(np.float32),
            positions=rng.uniform(10, 20, (8, 1, 2)),
            offsets=np.zeros((8, 1, 2)),
            probe=np.ones((16, 16), np.complex64),
            input_scale=0.5, s0=1.0, canvas_size=18,
        )
        gen = g.build_pinn_tf(filter_scale=1)
        history = gen.fit(ts, ts.subset(np.arange(2)), TrainConfig(epochs=1, batch_size=4), lambda e: None)
        gen.predict(ts.diffraction, ts.offsets)
        import tempfile
        with tempfile.TemporaryDirectory() as d:
            gen.save(d)
            g.build_pinn_tf(filter_scale=1).load(d)
        print("ok", len(history.loss))
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok 1"
    assert result.stderr == ""


def test_environment_sets_backend_and_log_level_but_never_onednn(pinn_tf, monkeypatch):
    from ptycho_pinn_tf import env

    assert env.keras.backend.backend() == "tensorflow"
    for name in ("KERAS_BACKEND", "TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS", "PTYCHO_VERBOSE"):
        monkeypatch.delenv(name, raising=False)
    env.configure_environment()
    assert os.environ["KERAS_BACKEND"] == "tensorflow"
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "2"
    assert "TF_ENABLE_ONEDNN_OPTS" not in os.environ
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL")
    monkeypatch.setenv("PTYCHO_VERBOSE", "1")
    env.configure_environment()
    assert "TF_CPP_MIN_LOG_LEVEL" not in os.environ


def test_pinn_tf_declares_the_child_environment_tensorflow_needs():
    # The core knows no framework: the plugin says what its compare child's environment holds.
    from ptycho_core.harness.supervise import child_environment

    host = PluginHost(load="ptycho-pinn-tf")
    spec = host.registry().generator("pinn_tf")
    env = child_environment(spec, 3)
    assert env["KERAS_BACKEND"] == "tensorflow" and env["TF_CPP_MIN_LOG_LEVEL"] == "2"
    assert env["TF_NUM_INTRAOP_THREADS"] == "3" and env["OMP_NUM_THREADS"] == "3"
    assert "TF_ENABLE_ONEDNN_OPTS" not in env
