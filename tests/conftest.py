"""Test set-up: 8 virtual CPU devices, float32 matmuls, before jax is imported anywhere."""
import os

from tests.support import xla_flags

os.environ["XLA_FLAGS"] = xla_flags(devices=8)
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# One persistent XLA cache for the whole run, inherited by the CLI subprocesses the tests start: the tiny config's
# train step is compiled once, not once per test and per command. A fresh clone (CI) starts it empty.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(os.path.expanduser("~"), ".cache", "mm1_jax", "xla_tests"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")

import jax  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def small_run(tmp_path_factory):
    """One uninterrupted 6-step run of tests.test_train.small_config() (checkpoints at steps 3 and 6): its workdir and
    {step: loss}. The reference for every test that interrupts, damages or restarts that run (test_train,
    test_reliability): computed once per session. Tests copy the workdir before changing anything in it."""
    from mm1_jax.train import trainer  # pylint: disable=import-outside-toplevel
    from tests.test_train import small_config  # pylint: disable=import-outside-toplevel

    workdir = tmp_path_factory.mktemp("small_run") / "run"
    losses = trainer.Trainer(small_config(), str(workdir)).run()["losses"]
    assert sorted(losses) == [1, 2, 3, 4, 5, 6] and len(set(losses.values())) == 6
    return workdir, dict(losses)


def pytest_collection_modifyitems(items):
    """Files with slow tests run first, so that pytest-xdist's workers finish together: the quick files fill in."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)  # stable: a file's tests keep their order
