"""benchmarks/gpu_step.py on a CPU. The script is run once, on a scarce GPU machine, so these keep it runnable here:
--smoke prints every row with positive finite figures, and the rows this machine cannot run stop the script with
one sentence and status 1 before anything compiles."""
import json
import math
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from benchmarks import gpu_step
from mm1_jax.models import layers

pytestmark = pytest.mark.slow  # processes started, models trained: see pyproject.toml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "benchmarks", "gpu_step.py")


def run_script(*flags: str, timeout: int = 120) -> subprocess.CompletedProcess:
    """The script in a fresh process on the CPU (JAX_PLATFORMS=cpu: libtpu is installed and would probe a TPU); torch
    on one thread (OMP_NUM_THREADS=1): at smoke dims its threads only contend, a step took 1.3 s on 2 busy cores
    instead of 0.03 s."""
    env = dict(os.environ, JAX_PLATFORMS="cpu", OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, SCRIPT, *flags], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, check=False)


def positive_finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def test_smoke_prints_every_row_with_positive_finite_figures():
    """Tiny dims, float32, attention xla, one round of one step: the matmul peaks, ours and PyTorch are printed,
    and the JSON line's figures (tokens/s, step time, TFLOP/s, MFU against the measured peak, ours / PyTorch) are
    positive and finite; the CPU has no published peak, so that MFU is None."""
    done = run_script("--smoke", "--rounds=1", "--steps=1")
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    for label in ("matmul peak, jax", "matmul peak, torch", "ours, attention=xla", "PyTorch (transformers sdpa"):
        assert label in out, out
    results = json.loads(out.splitlines()[-1].removeprefix("json: "))
    assert results["failures"] == [] and set(results["rows"]) == {"ours:xla", "torch"}
    assert positive_finite(results["matmul_peak_jax_tflops"]) and positive_finite(results["matmul_peak_torch_tflops"])
    for name, row in results["rows"].items():
        for key in ("tokens_per_s", "step_s", "tflops", "mfu_measured"):
            assert positive_finite(row[key]), (name, key, row)
        assert row["mfu_published"] is None
    assert positive_finite(results["rows"]["ours:xla"]["vs_torch"])
    assert results["matmul_params"] > 0 and results["published_peak_tflops"] is None


def test_cudnn_row_without_a_gpu_stops_with_one_sentence():
    done = run_script("--attention=cudnn")
    assert done.returncode == 1
    assert done.stdout == "" and "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "needs an NVIDIA GPU" in lines[0] and "cuDNN" in lines[0], done.stderr


def test_torch_row_without_cuda_stops_with_one_sentence(monkeypatch):
    """jax on a GPU but torch without CUDA (a CPU wheel): the PyTorch row is refused before anything runs."""
    import torch  # pylint: disable=import-outside-toplevel

    if torch.cuda.is_available():
        pytest.skip("torch sees a GPU here")
    monkeypatch.setattr(gpu_step.jax, "default_backend", lambda: "gpu")
    reason = gpu_step.check_devices(gpu_step.parse_args(["--attention=xla"]))
    assert reason and reason.startswith("the PyTorch row needs torch with CUDA")
    assert gpu_step.check_devices(gpu_step.parse_args(["--attention=xla", "--skip_torch"])) is None


def test_published_peaks_and_the_causal_only_variant():
    """Device names as jax / torch print them find their datasheet peak; the cudnn_causal row's attention equals
    the model's fused attention on one-document rows (checked through XLA's lowering of the same call)."""
    assert gpu_step.published_peak("NVIDIA H100 80GB HBM3") == 989e12
    assert gpu_step.published_peak("NVIDIA H100 PCIe") == 756e12
    assert gpu_step.published_peak("NVIDIA H200") == 989e12
    assert gpu_step.published_peak("NVIDIA H200 NVL") == 835e12
    assert gpu_step.published_peak("cpu") is None
    rng = np.random.default_rng(0)
    q, k, v = (jax.numpy.asarray(rng.standard_normal((2, 16, h, 8)), jax.numpy.float32) for h in (4, 2, 2))
    segment_ids = jax.numpy.ones((2, 16), jax.numpy.int32)
    with gpu_step.attention_patch("cudnn_causal"):
        patched = layers.fused_self_attention(q, k, v, segment_ids, implementation=None)
    assert layers.fused_self_attention is not gpu_step.causal_only_attention  # restored
    np.testing.assert_allclose(patched, layers.fused_self_attention(q, k, v, segment_ids, implementation=None),
                               rtol=1e-5, atol=1e-6)
