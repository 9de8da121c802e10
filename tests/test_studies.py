"""The papers' studies (configs/studies/*.py; MM1 arXiv 2403.09611, MM1.5 arXiv 2409.20566, mPLUG-Owl3 arXiv
2408.04840): every runnable row's every stage is a valid config whose model builds (shapes only, `jax.eval_shape`),
the printed commands parse back to exactly those configs, and `python -m mm1_jax.sweep list|plan` says what it
should, bad input included."""
from __future__ import annotations

import json
import shlex

import jax
import numpy as np
import pytest
from absl import flags
from flax import traverse_util
from ml_collections import config_flags

from mm1_jax.data.config import source_weights
from mm1_jax.eval.datasets import RUNNABLE as TASKS
from mm1_jax.models.inputs import example_batch, input_spec
from mm1_jax.models.registry import build_model
from mm1_jax.sweep import __main__ as cli
from mm1_jax.sweep import studies as S
from mm1_jax.train.trainer import is_trainable

FILES = S.study_files()
STUDIES = {p.stem: S.load_study(p) for p in FILES}
ROOT = "/runs"
_PARAMS: dict[str, dict] = {}  # model config JSON -> {path: shape}


def param_shapes(model_cfg) -> dict[str, tuple]:
    """{parameter path: shape} of the model, traced once per distinct model config (nothing allocated)."""
    key = model_cfg.to_json(sort_keys=True)
    if key not in _PARAMS:
        model = build_model(model_cfg)
        batch = example_batch(input_spec(model_cfg), 1, 8)
        abstract = {k: jax.ShapeDtypeStruct(v.shape, v.dtype) for k, v in batch.items()}
        shapes = jax.eval_shape(lambda b: model.init(jax.random.PRNGKey(0), **b), abstract)
        flat = traverse_util.flatten_dict(shapes["params"], sep="/")
        _PARAMS[key] = {k: tuple(getattr(v, "value", v).shape) for k, v in flat.items()}
    return _PARAMS[key]


def test_the_study_list_is_complete():
    assert set(STUDIES) >= {"mm1_encoder", "mm1_connector", "mm1_data", "mm1_moe", "mm1_sft_resolution",
                            "mm15_cpt_resolution", "mm15_cpt_data", "mm15_pretrain_ratio", "mm15_splitting",
                            "mm15_video_ui", "owl3_attention", "owl3_hyper_layers", "owl3_distractors",
                            "mm15_sft_mixture", "mm1_connector_sft"}
    assert len(STUDIES["mm1_connector"].rows) == 12
    assert {r for r in STUDIES["mm1_data"].rows if r.startswith("a_")} == {
        "a_caption100", "a_caption66", "a_caption50", "a_caption33", "a_caption0"}
    assert STUDIES["mm15_video_ui"].runnable_rows() == ["video_training_free_3b", "video_sft_7b", "ui_1b"]
    for study in STUDIES.values():
        for row in study.rows:
            missing = study.row_missing(row)
            assert missing == "" or len(missing) > 20, (study.name, row)  # a reason names the missing feature


def test_benchmarks_not_marked_pending_exist():
    for study in STUDIES.values():
        for name, bench in study.benchmarks.items():
            if not bench.get("pending"):
                assert bench["task"] in TASKS, (study.name, name)


@pytest.mark.parametrize("name", sorted(STUDIES))
def test_every_runnable_job_is_a_valid_config_that_builds(name):
    study = STUDIES[name]
    checked = 0
    for job in S.jobs(study, ROOT):
        if not job.runnable:
            continue
        config = S.check_job(job)  # overrides exist and fit; model, train, data weights, model <-> data
        if "model" not in config:  # a converted release's evaluation (owl3_distractors): its eval fields only
            assert job.kind == "eval" and job.checkpoint.startswith("gs://YOUR_BUCKET/converted/"), job
            checked += 1
            continue
        shapes = param_shapes(config.model)
        assert sum(int(np.prod(s)) for s in shapes.values()) > 1e8, job  # paper-scale models
        if job.kind == "train":
            for entry in config.train.trainable:  # every trainable entry selects some parameter
                assert any(is_trainable(p, (entry,)) for p in shapes), (job.row, job.stage, entry)
        checked += 1
    assert checked or not study.runnable_rows()


# the MM1.5-Video / UI study with its UI row waiting for a feature (every study row runs today; a row may again wait)
WAITING_STUDY = '''
from configs.studies.mm15_video_ui import *  # noqa: F401,F403
from configs.studies.mm15_video_ui import ROWS
ROWS = dict(ROWS, ui_1b=dict(ROWS["ui_1b"], missing="a feature this test pretends is absent"))
'''


def test_rows_waiting_for_a_feature_fail_only_for_it(tmp_path, capsys):
    """A row marked missing lacks only the feature its reason names: every one of its jobs passes the checks a
    runnable job passes (its overrides exist and fit, its model builds, its data weights resolve), so a config error
    anywhere else in the row raises here, naming it; the plan prints it as not runnable with the reason."""
    for study in STUDIES.values():  # no study of the papers waits today
        assert study.runnable_rows() == list(study.rows), study.name
    path = tmp_path / "mm15_video_ui_waiting.py"
    path.write_text(WAITING_STUDY)
    study = S.load_study(path)
    waiting = []
    for job in S.jobs(study, ROOT):
        if job.runnable:
            continue
        try:
            S.check_job(job)
        except S.StudyError as e:
            pytest.fail(f"{study.name} row {job.row} ({job.stage}) waits for {job.missing!r} but also fails: {e}")
        waiting.append((job.row, job.stage))
    assert waiting == [("ui_1b", "sft"), ("ui_1b", "ui_sft"), ("ui_1b", "eval")], waiting
    assert study.runnable_rows() == ["video_training_free_3b", "video_sft_7b"]
    assert cli.main(["plan", str(path)]) == 0
    assert "ui_1b/ui_sft: # not runnable: a feature this test pretends is absent" in capsys.readouterr().out
    assert STUDIES["owl3_attention"].runnable_rows() == list(STUDIES["owl3_attention"].rows)  # Table 8: every row


def test_rows_set_what_their_names_say():
    connector = STUDIES["mm1_connector"]
    for job in S.jobs(connector, ROOT):
        if job.kind == "train":
            c = S.job_config(job).model
            name, tokens, px = job.row.rsplit("_", 2)
            assert (c.connector.name, f"{c.connector.num_tokens}tok", f"{c.encoder.image_size}px") == (name, tokens, px)
            assert c.decoder.width == 2048 and c.encoder.width == 1024  # 1.2B-class decoder, ViT-L
    enc = {j.row: S.job_config(j).model.encoder for j in S.jobs(STUDIES["mm1_encoder"], ROOT) if j.kind == "train"}
    assert (enc["clip_h_224_vecap"].width, enc["clip_h_224_vecap"].image_size) == (1280, 224)
    assert (enc["aim_3b_224"].width, enc["aim_3b_224"].style) == (3072, "aim_v1")
    data = {j.row: source_weights(S.job_config(j).data) for j in S.jobs(STUDIES["mm1_data"], ROOT)
            if j.kind == "train" and j.runnable}
    assert data["a_caption66"] == pytest.approx({"caption": 66 / 99, "interleaved": 33 / 99, "text": 0.0,
                                                 "vecap": 0.0, "hq_text": 0.0})
    assert data["d_with_vecap"]["vecap"] == pytest.approx(0.0315)  # VeCap: 7% of the 45% caption share
    assert data["c_5_5_1"]["text"] == pytest.approx(1 / 11)
    sft = {j.row: S.job_config(j) for j in S.jobs(STUDIES["mm1_sft_resolution"], ROOT) if j.stage == "sft"}
    assert (sft["sft_560"].model.encoder.image_size, sft["sft_560"].data.split.mode) == (560, "none")
    assert (sft["sft_1344"].model.encoder.image_size, sft["sft_1344"].data.split.mode) == (672, "mm1")
    split = {j.row: S.job_config(j) for j in S.jobs(STUDIES["mm15_splitting"], ROOT) if j.stage == "eval"}
    infer = split["t2_train_4_9_infer_1_9"]
    assert (infer.eval.split_n_min, infer.data.split.n_max) == (1, 9)
    assert split["t3_overview_before"].data.split.overview == "before"


def test_hyper_rows_train_only_projector_and_hyper_parts_in_stage_one():
    """mPLUG-Owl3's stage 1 (arXiv 2408.04840v2 Table 2): projection, visual K/V and gate; the rest frozen."""
    jobs = {(j.row, j.stage): j for j in S.jobs(STUDIES["owl3_hyper_layers"], ROOT)}
    config = S.job_config(jobs["hyper_9_27", "pretrain"])
    assert tuple(config.model.decoder.hyper_layers) == (9, 27) and config.model.decoder.vocab_size == 151936
    trained = [p for p in param_shapes(config.model) if is_trainable(p, tuple(config.train.trainable))]
    decoder = sorted({p.split("/")[1] for p in trained if p.startswith("decoder/")})
    assert decoder == ["layer_27", "layer_9"]  # unscanned: the two hyper layers, nothing else of the decoder
    assert {p.split("/")[-2] for p in trained if p.startswith("decoder/")} == {"image_k_proj", "image_v_proj",
                                                                                "gate_proj"}
    assert any(p.startswith("connector/") for p in trained)
    concat = S.job_config({(j.row, j.stage): j for j in S.jobs(STUDIES["owl3_attention"], ROOT)}[
        "concatenate", "pretrain"])
    assert tuple(concat.train.trainable) == ("connector",) and tuple(concat.model.decoder.hyper_layers) == ()


def test_stages_chain_and_shared_stages_run_once():
    jobs = S.jobs(STUDIES["mm1_sft_resolution"], ROOT)
    assert [j.row for j in jobs if j.stage == "pretrain"] == ["shared"]
    assert len(jobs) == 1 + 2 * len(STUDIES["mm1_sft_resolution"].rows)
    sft = next(j for j in jobs if j.stage == "sft")
    assert dict(sft.overrides)["init.checkpoint"] == f"{ROOT}/mm1_sft_resolution/shared/pretrain/checkpoints"
    evaluation = next(j for j in jobs if j.stage == "eval")
    assert evaluation.checkpoint == f"{sft.workdir}/checkpoints" and "init.checkpoint" not in dict(evaluation.overrides)
    cpt = {j.row: j for j in S.jobs(STUDIES["mm15_cpt_resolution"], ROOT) if j.stage == "sft"}
    assert dict(cpt["no_cpt"].overrides)["init.checkpoint"].endswith("/shared/pretrain/checkpoints")
    assert dict(cpt["cpt_756"].overrides)["init.checkpoint"].endswith("/cpt_756/cpt/checkpoints")


def test_a_shared_stage_runs_once_per_configuration():
    """owl3_distractors at embedded scale: two routes (hyper attention, concatenation), each trained once per
    configuration and shared by its N rows; every eval starts from its own route's last stage."""
    jobs = S.jobs(S.at_scale(STUDIES["owl3_distractors"], "embedded"), ROOT)
    train = [(j.row, j.stage) for j in jobs if j.kind == "train"]
    assert train == [("shared", "pretrain"), ("shared", "sft"), ("shared-concat_n_1", "pretrain"),
                     ("shared-concat_n_1", "sft")]
    by = {(j.row, j.stage): j for j in jobs}
    assert dict(by["shared-concat_n_1", "sft"].overrides)["init.checkpoint"].endswith(
        "/shared-concat_n_1/pretrain/checkpoints")
    assert dict(by["shared", "pretrain"].overrides)["model.decoder.hyper_layers"] == (1,)
    assert "model.decoder.hyper_layers" not in dict(by["shared-concat_n_1", "pretrain"].overrides)
    for n in (1, 5, 10, 20, 50):
        for route, trained in (("n", "shared"), ("concat_n", "shared-concat_n_1")):
            evaluation = by[f"{route}_{n}", "eval"]
            assert evaluation.checkpoint == f"{ROOT}/owl3_distractors/{trained}/sft/checkpoints"
            assert dict(evaluation.overrides)["eval.embedded_distractors.num_images"] == n
    paper = {(j.row, j.stage): j for j in S.jobs(STUDIES["owl3_distractors"], ROOT)}
    assert set(paper) == {(f"{route}_{n}", stage) for route, stage in (("n", "eval"), ("concat_n", "eval_concat"))
                          for n in (1, 5, 10, 20, 50, 100, 200, 400)}  # each route's rows run their own model
    assert all(job.runnable for job in paper.values())
    concat = paper["concat_n_50", "eval_concat"]  # LLaVA-NeXT-Interleave, converted; a context for 50 images
    assert concat.config == "configs/llava_eval.py" and concat.checkpoint.endswith("/llava-interleave-qwen-7b-hf")
    assert dict(concat.overrides)["data.seq_len"] >= 50 * 729


def _parse_config(command: str, tmp_name: str):
    """The config a command's --config flags produce, parsed by ml_collections config_flags as the CLIs do."""
    argv = [tmp_name] + [a for a in shlex.split(command) if a.startswith("--config")]
    values = flags.FlagValues()
    config_flags.DEFINE_config_file("config", None, "", flag_values=values, lock_config=False, sys_argv=argv)
    values(argv)
    return values.config


@pytest.mark.parametrize("name", sorted(STUDIES))
def test_printed_commands_parse_back_to_the_checked_configs(name, monkeypatch):
    monkeypatch.chdir(S.REPO)  # commands run from the repository root
    for job in S.jobs(STUDIES[name], ROOT):
        if not job.runnable or job.waiting:
            continue
        command = job.command()
        for key, _ in job.overrides:
            assert f"--config.{key}=" in command
        parsed = _parse_config(command, "prog")
        assert json.loads(parsed.to_json()) == json.loads(S.job_config(job).to_json()), (job.row, job.stage)
        assert f"--workdir={ROOT}/{name}/" in command


def test_list_prints_every_study_with_its_counts(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out.splitlines()
    for study in STUDIES.values():
        line = next(line for line in out if line.split()[0] == study.name)
        assert line.split()[1:3] == [str(len(study.rows)), str(len(study.runnable_rows()))]
    total = next(line for line in out if line.startswith("total")).split()
    assert total[1] == str(sum(len(s.rows) for s in STUDIES.values()))


def test_plan_prints_one_line_per_job(capsys):
    path = str(STUDIES["mm1_connector"].path)
    assert cli.main(["plan", path, "--root=/r"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if not line.startswith("#")]
    assert len(lines) == 24  # 12 rows x (pretrain, eval)
    first = lines[0]
    assert first.startswith("avg_pool_64tok_224px/pretrain: python -m mm1_jax.train --config=configs/mm1_pretrain.py:"
                            "decoder=1b,encoder=clip_vit_l14_224,connector=avg_pool,tokens=64 "
                            "--workdir=/r/mm1_connector/avg_pool_64tok_224px/pretrain ")
    evals = [line for line in lines if "/eval:" in line]
    tasks = "coco_cap,nocaps,textcaps,vqav2,textvqa,vizwiz,gqa,okvqa"  # every MM1 few-shot benchmark has its task
    assert len(evals) == 12 and all("python -m mm1_jax.eval" in e and f"--tasks={tasks} " in e and
                                    "--shots=0,4,8" in e and "not yet available" not in e and
                                    "--config.eval.textcaps.annotations=gs://YOUR_BUCKET/eval/textcaps/TextCaps_0.1_val"
                                    ".json" in e for e in evals)
    assert cli.main(["plan", path, "--rows=c_abstractor_144tok_336px"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if not line.startswith("#")]
    assert [line.split(":")[0] for line in lines] == ["c_abstractor_144tok_336px/pretrain",
                                                      "c_abstractor_144tok_336px/eval"]
    assert cli.main(["plan", str(STUDIES["mm15_video_ui"].path)]) == 0
    out = capsys.readouterr().out
    assert "ui_1b/ui_sft: python -m mm1_jax.train --config=configs/mm15_ui.py:decoder=1b " in out
    assert "video_sft_7b/video_sft: python -m mm1_jax.train --config=configs/mm15_video.py:decoder=7b " in out


BAD_STUDY = '''
STUDY = dict(title="t", paper="MM1 (arXiv 2403.09611)", source="Fig. 4")
STAGES = (dict(name="pretrain", config="configs/mm1_pretrain.py"),)
ROWS = {"r": dict(arg="decoder=1b", overrides={OVERRIDE})}
'''


@pytest.mark.parametrize("override, message", [
    ('"model.conector.num_tokens": 64', "override 'model.conector.num_tokens' names no field (model has no 'conector'"),
    ('"model.connector.num_tokens": "64"', "override model.connector.num_tokens='64' does not fit the field's type"),
    ('"data.weights": "caption:1,recap:0"', "'recap' is not a source"),
])
def test_plan_refuses_bad_overrides_in_one_sentence(tmp_path, capsys, override, message):
    path = tmp_path / "bad.py"
    path.write_text(BAD_STUDY.replace("OVERRIDE", override))
    assert cli.main(["plan", str(path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: study bad, row 'r', stage 'pretrain'") and message in err and "\n" not in err


def test_plan_refuses_bad_input_in_one_sentence(tmp_path, capsys):
    path = str(STUDIES["mm1_connector"].path)
    cases = [
        (["plan", "configs/studies/nope.py"], "study file 'configs/studies/nope.py' does not exist"),
        (["plan", path, "--rows=avg_pool_64tok_224px,nope"], "study mm1_connector has no row 'nope'; its rows are"),
        (["plan", str(STUDIES["mm1_encoder"].path), "--scale=embedded"],
         "embedded scale not defined for study mm1_encoder yet (it has no EMBEDDED)."),
    ]
    not_a_study = tmp_path / "plain.py"
    not_a_study.write_text("X = 1\n")
    cases.append((["plan", str(not_a_study)], "is not a study file: it defines no ROWS."))
    for argv, message in cases:
        assert cli.main(argv) == 1
        err = capsys.readouterr().err.strip()
        assert message in err and err.count("\n") == 0, err


def test_aggregate_follows_the_papers_averages():
    mm1 = STUDIES["mm1_connector"]
    scores = {f"{b['task']}/0shot/{b['metric']}": 0.5 for b in mm1.benchmarks.values()}
    scores["coco_cap/0shot/cider"] = 1.1  # CIDEr-D x10 scale: 110
    got = S.aggregate(mm1, scores)
    assert got["0-shot"] == pytest.approx((110 + 7 * 50) / 8) and got["4-shot"] is None
    del scores["gqa/0shot/accuracy"]
    assert S.aggregate(mm1, scores)["0-shot"] is None  # an average needs every benchmark
    mm15 = STUDIES["mm15_cpt_resolution"]
    scores = {f"{b['task']}/0shot/{b['metric']}": 0.6 for b in mm15.benchmarks.values()}
    scores["mme/0shot/score"] = 1400.0  # points of 2800: 50 in the General average
    assert "MME" in mm15.metrics["General"]["mean"]
    assert S.aggregate(mm15, scores)["Text-rich"] == pytest.approx(60.0)
    assert S.aggregate(mm15, scores)["General"] == pytest.approx((50 + 5 * 60) / 6)
    assert S.aggregate(mm15, scores)["MMBase"] == pytest.approx(((50 + 5 * 60) / 6 + 60 + 60) / 3)


@pytest.mark.slow
def test_studies_at_embedded_scale_are_valid_jobs():
    """Every study that defines EMBEDDED gives, at embedded scale, jobs whose configs build (tiny models) with rows
    named as at paper scale, and tasks that all exist."""
    from mm1_jax.eval.datasets import RUNNABLE

    embedded = [s for s in STUDIES.values() if s.embedded]
    assert {s.name for s in embedded} >= {"mm1_data", "mm15_cpt_resolution"}
    for study in embedded:
        small = S.at_scale(study, "embedded")
        assert small.scale == "embedded" and set(small.rows) <= set(study.rows)
        assert all(t in RUNNABLE for t in small.tasks()), (study.name, small.tasks())
        for job in S.jobs(small, ROOT):
            config = S.check_job(job)
            assert config.model.decoder.width == 128 and job.config == "configs/tiny.py", job
