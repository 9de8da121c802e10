"""lmms-eval's own runner (`simple_evaluate`) on our adapter (`mm1_jax.eval.lmms_eval_model`), offline: a tiny MM1
checkpoint, the local tasks in tests/fixtures/lmms_eval (generation with one, two, no or too many images; multiple
choice by log-likelihood; two rounds), and the answers checked against our generator and scorer on prompts this
file lays out itself from the same files. Skipped where lmms-eval is not installed."""
import json
import os
import pathlib

import numpy as np
import pytest

# lmms-eval reads these when `datasets` and `huggingface_hub` are first imported: nothing may reach a hub
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
pytest.importorskip("lmms_eval.evaluator", reason="lmms-eval is not installed (the [lmms] extra)")

from lmms_eval.api.instance import Instance
from lmms_eval.evaluator import simple_evaluate
from lmms_eval.tasks import TaskManager

from mm1_jax.eval import prompts, tasks
from mm1_jax.runtime import generate as gen

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "lmms_eval"
CONFIG = str(FIXTURES / "tiny_config.py")
GEN, CHOICE, ROUNDS = "mm1_jax_fixture_gen", "mm1_jax_fixture_choice", "mm1_jax_fixture_rounds"
NEW_TOKENS = 6  # the generation task's max_new_tokens
ROUND_TOKENS = 4  # the two-round task's


def _docs(name):
    return [json.loads(line) for line in (FIXTURES / name).read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The adapter on a saved checkpoint (random, perturbed, logits spread so no near-tie decides a token), and one
    `simple_evaluate` over the three fixture tasks, the generation cut at a word of the first answer."""
    import jax

    from mm1_jax.eval.lmms_eval_model import LmmsEvalModel, load_config
    from mm1_jax.eval.results import load
    from mm1_jax.runtime import checkpoint as ckpt_lib

    tmp = tmp_path_factory.mktemp("lmms")
    params, _ = load(load_config(CONFIG), None, seed=3, batch_size=4)
    rng = np.random.default_rng(0)
    params = jax.tree_util.tree_map_with_path(
        lambda p, x: (np.asarray(x) + 0.02 * rng.standard_normal(x.shape).astype(np.float32))
        * (30.0 if "embed_tokens" in jax.tree_util.keystr(p) else 1.0), params)
    manager = ckpt_lib.make_manager(str(tmp / "run" / "checkpoints"), keep=1, async_save=False)
    ckpt_lib.save(manager, 1, {"params": params}, "{}")
    manager.wait_until_finished()
    manager.close()

    model = LmmsEvalModel(config=CONFIG, checkpoint=str(tmp / "run"), batch_size=4)
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(model.params), params)
    answers = generations(model, {d["id"]: (d["question"], d["images"]) for d in _docs("docs.jsonl")}, NEW_TOKENS)
    stop = answers["one"].split()[2]  # a word of doc one's answer: lmms-eval's `until` must cut there
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LMMS_EVAL_DATASETS_CACHE", str(tmp / "datasets"))  # the local files' arrow copies
        out = simple_evaluate(model=model, tasks=[GEN, CHOICE, ROUNDS], gen_kwargs=f"until={stop}",
                              task_manager=TaskManager("WARNING", include_path=str(FIXTURES), include_defaults=False),
                              bootstrap_iters=0, log_samples=True, verbosity="WARNING")
    return model, out, answers, stop


def layout(model, question, files, reserve):
    """The prompt as our evaluation lays out a question: the image files' bytes through its image loader."""
    ctx = model.ctx
    template = prompts.TEMPLATES[ctx.template]
    item = prompts.Item("t", [(FIXTURES / "images" / f).read_bytes() for f in files], question=question)
    parts = prompts.item_parts(item, "vqa", tasks.image_loader(ctx.image_size, ctx.norm, ctx.split), template=template)
    return prompts.build_prompt([], parts, ctx.tok, ctx.k, max_tokens=ctx.max_tokens - reserve,
                                max_images=ctx.max_images, image_shape=(ctx.image_size, ctx.image_size, 3),
                                split=ctx.split, bos=template.bos)


def generations(model, items, new_tokens):
    """{id: our generator's greedy text} for {id: (question, image files)} whose prompt fits (doc five's three
    images do not: the model takes 2)."""
    ctx, laid = model.ctx, {}
    for key, (question, files) in items.items():
        try:
            laid[key] = layout(model, question, files, new_tokens)
        except ValueError:
            assert len(files) > ctx.max_images
    stops = (ctx.tok.eos_id, ctx.tok.image_id)
    made = ctx.generator(4)(model.params, [gen.Request(p.tokens, p.images) for p in laid.values()],
                            gen.Sampling(max_new_tokens=new_tokens, stop_ids=stops))
    return {key: ctx.tok.decode(ids, mark_images=False) for key, (ids, _) in zip(laid, made)}


def cut(text, stop):
    return text[:text.index(stop)] if stop in text else text


def samples(out, task):
    return {s["doc"]["id"]: s for s in out["samples"][task]}


@pytest.mark.slow
def test_generations_are_our_generators(run):
    model, out, answers, stop = run
    got = samples(out, GEN)
    assert sorted(got) == ["five", "four", "one", "three", "two"]
    assert set(answers) == {"one", "two", "three", "four"}
    for key, text in answers.items():
        assert text.strip()
        assert got[key]["resps"] == [[cut(text, stop)]], key
    assert len(got["one"]["resps"][0][0]) < len(answers["one"])  # the stop word cut it
    assert got["five"]["resps"] == [[""]]  # three images: more than the model's 2, skipped
    assert [s["doc_id"] for s in model.skipped if s["task"] == GEN] == [4]
    assert "exact_match,none" in out["results"][GEN]


@pytest.mark.slow
def test_log_likelihoods_are_our_scorers(run):
    model, out, _, _ = run
    ctx = model.ctx
    got = samples(out, CHOICE)
    forward, right = greedy_reference(model), []
    for doc in _docs("choices.jsonl"):
        conts = [ctx.tok.encode(" " + c) for c in doc["choices"]]
        laid = [layout(model, doc["question"], doc["images"], len(c)) for c in conts]
        expected = gen.score_continuations(ctx.model, model.params, [gen.Request(p.tokens, p.images) for p in laid],
                                           conts, pad_id=ctx.tok.pad_id, batch_size=4, **ctx.inputs)
        resps = got[doc["id"]]["resps"]
        assert len(resps) == len(doc["choices"]) and len(conts[-1]) == (2 if doc["id"] == "one" else 1)
        assert all(s < 0 for s in expected)
        loss = [-s / len(c) for s, c in zip(expected, conts)]  # lmms-eval's models answer the mean loss
        np.testing.assert_allclose([r[0][0] for r in resps], loss, rtol=1e-5, atol=1e-5)
        assert [r[0][1] for r in resps] == [forward(p, c) for p, c in zip(laid, conts)]
        right.append(float(np.argmin(loss) == doc["answer"]))  # lmms-eval picks the smallest
    assert out["results"][CHOICE]["acc,none"] == pytest.approx(np.mean(right))


@pytest.mark.slow
def test_rounds_answer_the_task_s_second_prompt(run):
    """Round 0 answers the question with its images; round 1 the fixture's doc_to_text prompt (the first answer and
    the question, no images); then the task says done."""
    model, out, _, stop = run
    docs = _docs("docs.jsonl")
    first = generations(model, {d["id"]: (d["question"], d["images"]) for d in docs}, ROUND_TOKENS)
    again = {d["id"]: f"you said {cut(first[d['id']], stop)} . {d['question'].replace('<image>', '')}"
             for d in docs if d["id"] in first}
    second = generations(model, {key: (question, []) for key, question in again.items()}, ROUND_TOKENS)
    got = samples(out, ROUNDS)
    assert sorted(first) == sorted(second) == ["four", "one", "three", "two"]
    for key in first:
        assert got[key]["resps"] == [[[cut(first[key], stop), cut(second[key], stop)]]], key
        assert got[key]["rounds"] == 2.0
    assert got["five"]["resps"] == [[[]]] and got["five"]["rounds"] == 0.0


def greedy_reference(model):
    """is_greedy from one full forward over prompt + continuation (no cache): the argmax at every position before a
    continuation token is that token. Right-padded to the context length so one compilation serves every prompt."""
    import jax
    import jax.numpy as jnp

    ctx = model.ctx
    apply = jax.jit(lambda p, t, i, idx: ctx.model.apply({"params": p}, t, images=i, image_token_index=idx)["logits"])

    def is_greedy(prompt, cont):
        ids = list(prompt.tokens) + list(cont)
        tokens = np.full((1, ctx.max_tokens), ctx.tok.pad_id, np.int32)
        tokens[0, :len(ids)] = ids
        index = np.full(tokens.shape, -1, np.int32)
        index[tokens == ctx.tok.image_id] = np.arange(int((tokens == ctx.tok.image_id).sum()))
        images = np.zeros((1, ctx.max_images, ctx.image_size, ctx.image_size, 3), np.uint8)
        images[0, :len(prompt.images)] = prompt.images
        logits = apply(model.params, tokens, images, index)
        picked = jnp.argmax(logits[0, len(prompt.tokens) - 1:len(ids) - 1], axis=-1)
        return [int(t) for t in picked] == [int(t) for t in cont]

    return is_greedy


@pytest.mark.slow
def test_a_greedy_continuation_is_greedy_and_prompts_follow_the_template(run):
    """Hand-made requests: the greedy answer's own tokens score is_greedy True, a changed last token False; the
    two-image question's tokens are laid out as written here (User: ... images at the markers ... Assistant:)."""
    model, _, answers, _ = run
    ctx, tok = model.ctx, model.ctx.tok
    doc = _docs("docs.jsonl")[1]
    model.task_dict["direct"] = {"test": [doc]}
    from tests.fixtures.lmms_eval.utils import doc_to_visual

    greedy = tok.encode(answers["two"])[:2]
    assert tok.encode(tok.decode(greedy, mark_images=False)) == greedy
    other = greedy[:1] + [next(t for t in range(30, 200) if t != greedy[1])]
    requests = [Instance("loglikelihood", (doc["question"], " " + tok.decode(c, mark_images=False), doc_to_visual, 0,
                                           "direct", "test"), idx=0, metadata={"task": "direct", "doc_id": 0,
                                                                               "repeats": 1})
                for c in (greedy, other)]
    (loss_greedy, is_greedy), (loss_other, not_greedy) = [r.text for r in model.loglikelihood(requests)]
    assert is_greedy and not not_greedy and 0 < loss_greedy < loss_other

    prompt = model.build_prompt(doc["question"], doc_to_visual(doc), NEW_TOKENS)
    k, img = ctx.k, tok.image_id
    expected = ([tok.bos_id] + tok.encode("User:") + tok.encode("Image 1 :") + [img] * k + tok.encode("Image 2 :")
                + [img] * k + tok.encode("which image shows a blue square ?") + tok.encode("Assistant:"))
    assert prompt.tokens.tolist() == expected and prompt.images.shape == (2, ctx.image_size, ctx.image_size, 3)
    red = np.asarray(prompt.images[0], np.int32)
    assert red[..., 0].mean() > 150 and red[..., 2].mean() < 100  # the red picture first, as the markers say


def test_bad_arguments_are_one_sentence():
    from mm1_jax.eval.lmms_eval_model import LmmsEvalModel, decoding

    with pytest.raises(ValueError, match="num_beams=4 is not supported"):
        decoding({"num_beams": 4}, 8)
    with pytest.raises(ValueError, match="automatic sizing is not done"):
        LmmsEvalModel(config=CONFIG, batch_size="auto")
    with pytest.raises(ValueError, match="pretrained: not an argument"):
        LmmsEvalModel(config=CONFIG, pretrained="x")
    with pytest.raises(ValueError, match="no such config file"):
        LmmsEvalModel(config="nowhere.py")
    with pytest.raises(ValueError, match="data.nonsense=1: the config has no such field"):
        LmmsEvalModel(config=CONFIG, **{"data.nonsense": 1})
    assert decoding({"until": 184}, 8).until == ("184",)  # "until=184" as lmms-eval's argument parser reads it
    how = decoding({"do_sample": True, "top_p": 0.5, "until": "\n", "max_new_tokens": 3}, 8)
    assert (how.temperature, how.top_p, how.until, how.max_new_tokens) == (1.0, 0.5, ("\n",), 3)
    assert decoding({"temperature": 0.7, "do_sample": False}, 8).temperature == 0.0


def test_the_model_name_resolves_with_its_arguments():
    """`--model mm1_jax --model_args ...` as lmms-eval's runner builds it (lmms_eval.models.get_model, then
    create_from_arg_string with the runner's batch size): a dotted argument sets a config field."""
    from lmms_eval import models

    from mm1_jax.eval.lmms_eval_model import LmmsEvalModel, lmms_eval_manifests, register

    assert [(m.model_id, m.simple_class_path) for m in lmms_eval_manifests()] == [
        ("mm1_jax", "mm1_jax.eval.lmms_eval_model.LmmsEvalModel")]
    register()
    cls = models.get_model("mm1_jax")
    assert cls is LmmsEvalModel
    model = cls.create_from_arg_string(f"config={CONFIG},seed=2,data.seq_len=48,max_new_tokens=5",
                                       {"batch_size": "2", "device": "cuda"})
    assert (model.ctx.max_tokens, model.batch_size, model.default_max_new_tokens, model.seed) == (48, 2, 5, 2)
    assert model.config.data.seq_len == 48 and model.ctx.template == "mm1"
