"""Test set-up: 8 virtual CPU devices, float32 matmuls, before jax is imported anywhere."""
import os

from tests.support import xla_flags

os.environ["XLA_FLAGS"] = xla_flags(devices=8)
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# One persistent XLA cache for the whole run, inherited by the CLI subprocesses the tests start: the tiny config's
# train step is compiled once, not once per test and per command; every program is kept, the small ones too (each
# command a test starts compiles dozens: reading them back saves about a sixth of a warm command's CPU time). A fresh
# clone (CI) starts it empty.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(os.path.expanduser("~"), ".cache", "mm1_jax", "xla_tests"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")

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


# The longest files first (`pytest --durations=0` of a cold run on 2 cores), so that pytest-xdist's workers, which
# take a file at a time (--dist loadfile), finish together while the short files fill in; then collection order.
LONGEST_FIRST = ("test_train.py", "test_aot.py", "test_train_multiprocess.py", "test_sweep_run.py",
                 "test_eval_generate.py", "test_drills.py", "test_hyper_attention.py", "test_reliability.py",
                 "test_notebooks.py", "test_moe.py", "test_eval_distractors.py", "test_decoder.py", "test_console.py",
                 "test_generate_cli.py", "test_owl3.py", "test_vit.py", "test_studies.py", "test_mm1.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: a file's tests keep their order
