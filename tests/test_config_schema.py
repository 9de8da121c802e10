"""One check for a training config, used by the trainer and by `python -m mm1_jax.sweep plan`; every section refuses
a key its owner of defaults does not have, in one sentence naming it and the field meant; reading a config file writes
nothing (the embedded dataset is generated when the pipeline first reads it)."""
from __future__ import annotations

import importlib.util
import os
import pathlib

import pytest

from configs import tiny
from mm1_jax.data import config as data_config
from mm1_jax.data import pipeline as pipeline_lib
from mm1_jax.data import synthetic
from mm1_jax.data.tokenizer import load_tokenizer
from mm1_jax.models.inputs import input_spec
from mm1_jax.sweep import __main__ as cli
from mm1_jax.sweep import studies as S
from mm1_jax.train import trainer
from mm1_jax.train.config import validate_config

REPO = pathlib.Path(__file__).resolve().parent.parent
CONFIG_FILES = sorted(p for p in (REPO / "configs").glob("*.py") if p.name != "__init__.py") + [REPO / "tests" / "fixtures" / "data_tiny_config.py"]
STUDY = '''
STUDY = dict(title="t", paper="MM1 (arXiv 2403.09611)", source="Fig. 4")
STAGES = (dict(name="pretrain", config="configs/mm1_pretrain.py"),)
ROWS = {"r": dict(arg="decoder=1b", overrides={OVERRIDE})}
'''


def load_config_module(path: pathlib.Path):
    spec = importlib.util.spec_from_file_location(f"_config_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- the sweep's plan refuses what the trainer refuses


@pytest.mark.parametrize("override, sentence", [
    ('"data.max_error_rate": 7', "data.max_error_rate=7.0 must lie in [0, 1]."),
    ('"data.split.n_min": 12', "data.split.n_max=9 is smaller than data.split.n_min=12."),
    ('"mesh.fsdp": 0', "mesh.fsdp=0 must be a positive size or -1."),
])
def test_plan_refuses_a_row_the_trainer_refuses_with_its_sentence(tmp_path, capsys, override, sentence):
    """A study row whose data (or mesh) field the trainer refuses at once fails `plan` with the trainer's sentence,
    not hours later when its job starts."""
    path = tmp_path / "bad_row.py"
    path.write_text(STUDY.replace("OVERRIDE", override))
    assert cli.main(["plan", str(path)]) == 1
    assert capsys.readouterr().err.strip() == f"error: study bad_row, row 'r', stage 'pretrain': {sentence}"
    job = S.jobs(S.load_study(path), "/runs")[0]
    with pytest.raises(ValueError) as refused:
        trainer.Trainer(S.job_config(job), "/nonexistent")  # the trainer's own refusal, before anything is built
    assert str(refused.value) == sentence


# --- unknown keys


def _set(config, dotted: str, value) -> None:
    *parents, last = dotted.split(".")
    node = config
    for part in parents:
        node = node[part]
    node[last] = value


@pytest.mark.parametrize("key, value, sentence", [
    ("data.max_error_rte", 0.1, 'data.max_error_rte is not a known field (did you mean "max_error_rate"?); '
                                "the fields are: add_bos, add_eos, embedded, max_error_rate, max_images, "),
    ("data.split.n_maxx", 9, 'data.split.n_maxx is not a known field (did you mean "n_max"?); the fields are: '
                             "kinds, markers, max_images_to_split, mode, n_max, n_min, overview, r, separators."),
    ("data.pack.zzz", 1, "data.pack.zzz is not a known field; the fields are: min_piece, split_documents."),
    ("data.embedded.seeds", 1, 'data.embedded.seeds is not a known field (did you mean "seed"?); the fields are: '
                               "directory, scale, seed."),
    ("model.connector.num_token", 16, 'model.connector.num_token is not a known field (did you mean "num_tokens"?); '
                                      "the fields are: depth, hidden_dim, mlp_depth, name, num_heads, num_tokens, "
                                      "pos_emb."),
    ("model.decoder.widht", 128, 'model.decoder.widht is not a known field (did you mean "width"?)'),
    ("train.stepz", 3, 'train.stepz is not a known field (did you mean "steps"?); the fields are: '),
    ("train.optimizer.lr_rul", "fixed", 'train.optimizer.lr_rul is not a known field (did you mean "lr_rule"?)'),
    ("init.checkpont", "", 'init.checkpont is not a known field (did you mean "checkpoint"?)'),
    ("eval.templat", "", 'eval.templat is not a known field or task (did you mean "template"?); the tasks are: '),
    ("mesh.fdsp", 1, 'mesh has unknown axis \'fdsp\' (did you mean "fsdp"?); the axes are data, fsdp, tensor, '
                     "expert."),
    ("trian", {}, 'config.trian is not a section (did you mean "train"?); the sections are: axis_rules, data, eval, '
                  "init, mesh, model, train."),
])
def test_every_section_refuses_an_unknown_key_naming_the_field_meant(key, value, sentence):
    config = tiny.get_config()
    _set(config, key, value)
    with pytest.raises(ValueError) as refused:
        validate_config(config)
    message = str(refused.value)
    assert message.startswith(sentence) and message.endswith(".") and "\n" not in message, message


def test_axis_rules_and_data_sources_refuse_unknown_names():
    config = tiny.get_config()
    config.axis_rules = {"embedd": None}
    with pytest.raises(ValueError, match=r'^axis_rules\.embedd is not a logical axis \(did you mean "embed"\?\)'):
        validate_config(config)
    config = tiny.get_config()
    config.data.sources[0]["wieght"] = 3
    with pytest.raises(ValueError) as refused:
        validate_config(config)
    assert str(refused.value) == ("Data source 'caption': wieght is not a known field (did you mean \"weight\"?); "
                                  "the fields are: format, image_root, kind, name, path, weight.")
    with pytest.raises(ValueError, match=r"^Data source 'sft': image_rot is not a known field \(did you mean "
                                         r"\"image_root\"\?\)"):
        data_config.source("sft", "sft", "llava_json", "x.json", 1, image_rot="/images")


def test_a_misspelled_key_in_a_config_files_data_section_is_refused(tmp_path):
    """A config file whose `data` section sets a field that does not exist: refused by the trainer's check (it used
    to do nothing, silently)."""
    path = tmp_path / "typo.py"
    path.write_text("from configs import tiny\n\n\ndef get_config(arg=''):\n    config = tiny.get_config()\n"
                    "    config.data.shufle = False\n    return config\n")
    with pytest.raises(ValueError) as refused:
        trainer.Trainer(load_config_module(path).get_config(), "/nonexistent")
    assert str(refused.value).startswith('data.shufle is not a known field (did you mean "shuffle"?); the fields '
                                         "are: add_bos, ")


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: p.name)
def test_every_config_file_validates(path):
    """Every shipped config passes the checks it meets: a training config the trainer's, the data-only fixture and
    the evaluation config their sections' (study jobs: tests/test_studies.py)."""
    args = ("main", "pretrain", "cpt", "sft") if path.name == "tiny.py" else ("",)
    for arg in args:
        module = load_config_module(path)
        config = module.get_config(arg) if arg else module.get_config()
        if "train" in config:
            validate_config(config)
        elif "model" in config:  # tests/fixtures/data_tiny_config.py: data, and what a model takes, for the data tools
            data_config.validate_data_config(config.data)
            input_spec(config.model, config.data)
        else:  # configs/owl3_eval.py: a converted model's evaluation; its data section is partial
            data_config.check_known_fields("data", config.data, data_config.get_data_config())


def test_the_sweep_tests_study_validates_at_both_scales():
    study = S.load_study(REPO / "tests" / "fixtures" / "study_lr.py")
    counts = []
    for scale in ("paper", "embedded"):  # at embedded scale the first stage is shared by the 3 rows
        jobs = S.jobs(S.at_scale(study, scale), "/runs")
        counts.append(len([S.check_job(job) for job in jobs]))
    assert counts == [9, 7]


# --- reading a config writes nothing; the pipeline generates the embedded dataset


def test_reading_any_config_writes_nothing(tmp_path, monkeypatch):
    """get_config of every config file, with the dataset cache and HOME in an empty folder: the folder stays empty,
    though the configs' data paths point into it."""
    cache, home = tmp_path / "cache", tmp_path / "home"
    monkeypatch.setenv("MM1_JAX_CACHE", str(cache))
    monkeypatch.setenv("HOME", str(home))
    for path in CONFIG_FILES:
        for arg in (("main", "pretrain", "cpt", "sft") if path.name == "tiny.py" else ("",)):
            module = load_config_module(path)
            config = module.get_config(arg) if arg else module.get_config()
            if path.name in ("tiny.py", "data_tiny_config.py"):
                assert config.data.tokenizer.startswith(str(cache)), config.data.tokenizer
                assert config.data.embedded.directory.startswith(str(cache))
    assert list(tmp_path.rglob("*")) == []


def test_the_pipeline_generates_the_embedded_dataset_on_first_read(tmp_path, capsys):
    world = tmp_path / "world"
    dc = synthetic.embedded_data_config("pretrain", directory=str(world), scale=0.01, seq_len=64, max_images=2)
    assert not world.exists()
    it = pipeline_lib.build_pipeline(dc, global_batch_size=2, tokens_per_image=4, image_size=16, image_norm="clip",
                                     process_index=0, process_count=1)
    assert capsys.readouterr().out.startswith(f"generating the embedded dataset into {world} (once, about 15 s)")
    assert (world / "DONE").exists() and (world / "tokenizer.json").exists()
    assert next(it)["tokens"].shape == (2, 64)
    synthetic.ensure_data(dc)  # present: nothing is generated again
    assert capsys.readouterr().out == ""


def test_the_vocabulary_size_is_known_without_the_tokenizer_file(tmp_path):
    synthetic.build_tokenizer(tmp_path / "tokenizer.json")
    assert synthetic.vocab_size() == load_tokenizer(str(tmp_path / "tokenizer.json")).vocab_size
    assert tiny.get_config().model.decoder.vocab_size == -(-synthetic.vocab_size() // 8) * 8
    assert os.path.basename(tiny.get_config().data.tokenizer) == "tokenizer.json"
