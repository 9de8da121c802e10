"""mm1_jax: MM1 / MM1.5 multimodal LLMs and mPLUG-Owl3 hyper attention in JAX + Flax."""
from setuptools import find_packages, setup

CORE = [
    "jax>=0.4.35",
    "flax>=0.10",
    "optax>=0.2.3",
    "orbax-checkpoint>=0.10",
    "tensorstore>=0.1.60",
    "grain>=0.2.10",
    "ml-collections>=0.1.1",
    "einops>=0.8",
    "absl-py>=2.0",
    "numpy>=1.26",
    "safetensors>=0.4",
    "tqdm>=4.60",
    "pillow>=10.0",
    "tokenizers>=0.19",
    "sentencepiece>=0.2",  # tokenizer.model files (Llama 2 and other SentencePiece vocabularies)
    "pyarrow>=14",
    "etils[epath]>=1.5",
    "array-record>=0.5",
    "tensorboard>=2.16",  # its TF-free event writer; `tensorboard --logdir WORKDIR/tb` to look at a run
    # video decoding (mm1_jax.data.video): PyAV's wheels bundle their own FFmpeg; no torch/torchvision. lmms-eval 0.7.3
    # (the [lmms] extra) needs av < 16, which pip then picks.
    "av>=14",
]
# `python -m mm1_jax.sweep report`: figures and rank correlations.
SWEEP = ["matplotlib>=3.8", "scipy>=1.11"]
# torch is pinned to the CPU build: an unpinned torch pulls a multi-GB CUDA wheel.
TORCH = ["torch==2.13.0", "transformers>=4.50"]
# lmms-eval's runner over our checkpoints (mm1_jax/eval/lmms_eval_model.py). lmms-eval 0.7.3 also pulls torchvision
# and wandb from PyPI; filelock < 4 because its evaluator imports filelock._api. The tests install only what the
# runner imports, without those (tests/lmms_eval_requirements.txt).
LMMS = ["lmms-eval==0.7.3", "filelock<4"]
# `python -m mm1_jax.train.aot`: libtpu compiles the train step for a TPU slice that is not attached (no TPU needed).
# Pinned to the libtpu built with jax 0.10.2: tests/goldens/ hold what this compiler emits.
AOT = ["libtpu==0.0.42.1; platform_system == 'Linux' and platform_machine == 'x86_64'"]

setup(
    name="mm1_jax",
    version="0.1.0",
    description=__doc__,
    # configs/ too, so `from configs import tiny` works in a notebook anywhere (not only from the repository root)
    packages=find_packages(include=["mm1_jax", "mm1_jax.*", "configs", "configs.*"]),
    package_data={"mm1_jax": ["data/assets/*"]},
    python_requires=">=3.10",
    install_requires=CORE,
    extras_require={
        "test": ["pytest>=8", "pytest-xdist>=3.6", "nbformat>=5", "nbclient>=0.10", "ipykernel>=6", "pycocoevalcap>=1.2",
             "anls>=0.0.2", "scikit-image>=0.22"] + TORCH + SWEEP + AOT,
        "convert": TORCH,
        "sweep": SWEEP,
        "aot": AOT,
        # notebooks/: Jupyter, the figures (matplotlib, scipy) and transformers models to convert (analysis.ipynb)
        "notebooks": ["jupyter"] + SWEEP + TORCH,
        "lmms": LMMS + TORCH,
    },
    # `python -m lmms_eval --model mm1_jax ...` finds the adapter through this entry point
    entry_points={"lmms_eval.models": ["mm1_jax = mm1_jax.eval.lmms_eval_model:lmms_eval_manifests"]},
)
