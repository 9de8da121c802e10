"""MM1.5's SFT mixture by category (arXiv 2409.20566 Sec. 3.2; mm1_jax.data.config.sft_mixture): hand-computed
resolutions, the published final split from configs/mm15_sft.py, what `python -m mm1_jax.data.inspect` prints against
the shares the pipeline really draws, bad values in one sentence, and the study rows of
configs/studies/mm15_sft_mixture.py resolving to what their names say."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from configs import mm15_sft
from mm1_jax.data import config as config_lib
from mm1_jax.data import synthetic
from mm1_jax.data.synthetic import writers
from mm1_jax.sweep import studies as S

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def data_config(own: dict[str, float], categories: dict[str, str], **sft):
    """A data config over jsonl sources of those own weights (no file is read), categorised."""
    sources = [config_lib.source(name, "sft", "jsonl", f"/nowhere/{name}.jsonl", w) for name, w in own.items()]
    c = config_lib.get_data_config(sources=sources)
    c.sft.categories = ",".join(f"{n}:{cat}" for n, cat in categories.items())
    for key, value in sft.items():
        if key == "groups":
            c.sft.groups = value
        else:
            c.sft.alpha[key] = value
    return c


OWN = {"a": 1.0, "b": 3.0, "c": 1.0, "d": 1.0, "m": 1.0, "t": 1.0}
CATS = {"a": "general", "b": "general", "c": "science", "d": "refer_ground", "m": "multi_image", "t": "text"}


def test_hand_computed_mixture():
    """Groups (0.8, 0.1, 0.1); single-image categories present: general (1), science (0.5), R&G (2): sum 3.5. General
    gets 0.8 / 3.5 = 8/35, split 1 : 3 between its sources by their own weights; science 0.8 * 0.5 / 3.5 = 4/35; R&G
    0.8 * 2 / 3.5 = 16/35; multi-image and text-only 1/10 each. Text-rich, math and code have no source: left out."""
    c = data_config(OWN, CATS, science=0.5)
    config_lib.validate_data_config(c)
    assert config_lib.source_weights(c) == pytest.approx(
        {"a": 2 / 35, "b": 6 / 35, "c": 4 / 35, "d": 16 / 35, "m": 0.1, "t": 0.1})
    table = config_lib.sft_category_table(c)
    assert table["general"]["weight"] == pytest.approx(8 / 35) and table["general"]["sources"] == ["a", "b"]
    assert table["code"] == dict(group="single-image", alpha=0.2, weight=0, sources=[])
    assert table["multi_image"]["alpha"] is None and table["text"]["group"] == "text-only"


def test_alpha_is_a_per_batch_ratio_to_general_whatever_the_other_categories():
    """Single-image only (1, 0, 0): general a, science c (0.5), R&G d (2). Dropping science (data.weights c:0) leaves
    R&G at twice general's examples; a group at weight 0 and a category at alpha 0 draw nothing."""
    own, cats = {"a": 1.0, "c": 1.0, "d": 1.0, "t": 1.0}, {"a": "general", "c": "science", "d": "refer_ground",
                                                          "t": "text"}
    c = data_config(own, cats, science=0.5, groups=(1.0, 0.0, 0.0))
    assert config_lib.source_weights(c) == pytest.approx({"a": 1 / 3.5, "c": 0.5 / 3.5, "d": 2 / 3.5, "t": 0.0})
    c.weights = "c:0"
    assert config_lib.source_weights(c) == pytest.approx({"a": 1 / 3, "c": 0.0, "d": 2 / 3, "t": 0.0})
    c.weights, c.sft.alpha.refer_ground = "", 0.0
    assert config_lib.source_weights(c) == pytest.approx({"a": 1 / 1.5, "c": 0.5 / 1.5, "d": 0.0, "t": 0.0})
    # data.weights re-weights sources inside their category only: b's 3 -> 1 splits general 1 : 1, shares unchanged
    c = data_config(OWN, CATS, science=0.5)
    c.weights = "b:1"
    assert config_lib.source_weights(c) == pytest.approx(
        {"a": 4 / 35, "b": 4 / 35, "c": 4 / 35, "d": 16 / 35, "m": 0.1, "t": 0.1})
    # without data.sft.categories the sources' own weights are the mixture, as before
    c.sft.categories, c.weights = "", ""
    assert config_lib.source_weights(c) == pytest.approx({n: w / 8 for n, w in OWN.items()})


def test_final_mixture_reproduces_the_published_split():
    """configs/mm15_sft.py (MM1.5's final alphas, text-rich's 3.3 ours; groups (0.8, 0.1, 0.1)) resolves to the split
    MM1.5 publishes, in percent of all SFT data, within rounding; each single-image category's examples per example
    of general data are its alpha."""
    data = mm15_sft.get_config("decoder=3b").data
    config_lib.validate_data_config(data)
    percent = {name: 100 * w for name, w in config_lib.source_weights(data).items()}
    assert set(percent) == set(mm15_sft.PUBLISHED_SPLIT)
    for name, published in mm15_sft.PUBLISHED_SPLIT.items():
        assert abs(percent[name] - published) <= 0.05 and round(percent[name], 1) == published, (name, percent)
    assert sum(percent[c] for c in config_lib.SFT_SINGLE_IMAGE) == pytest.approx(80.0)
    for category, alpha in config_lib.SFT_ALPHA.items():
        assert percent[category] / percent["general"] == pytest.approx(alpha)
    assert config_lib.SFT_ALPHA == dict(text_rich=3.3, science=0.1, math=0.5, code=0.2, refer_ground=2.0)


EMBEDDED_SFT = {name: writers.SIZES[name] for name in synthetic.EMBEDDED_SFT_CATEGORIES}
INSPECT_CONFIG = '''
from mm1_jax.data import synthetic
from tests.fixtures import data_tiny_config


def get_config(arg=""):
    c = data_tiny_config.get_config("0.01")
    c.data = synthetic.embedded_data_config("main", scale=0.01, weights=WEIGHTS)
    c.data.sft.categories = CATEGORIES
    return c
'''


def test_inspect_prints_the_resolved_weights_and_they_are_the_observed_shares(tmp_path):
    """The embedded world's SFT sources by category (sources of a category by size), alpha and groups from the
    command line: inspect prints each source's resolved weight and category and each category's weight, and the
    examples the pipeline drew (600 or so) match them within sampling tolerance."""
    weights = ",".join(["caption:0", "interleaved:0", "text:0"] + [f"{n}:{s}" for n, s in EMBEDDED_SFT.items()])
    categories = ",".join(f"{n}:{c}" for n, c in synthetic.EMBEDDED_SFT_CATEGORIES.items())
    path = tmp_path / "sft_config.py"
    path.write_text(INSPECT_CONFIG.replace("WEIGHTS", repr(weights)).replace("CATEGORIES", repr(categories)))
    flags = ["--config.data.sft.alpha.science=0.5", "--config.data.sft.alpha.refer_ground=1.5",
             "--config.data.sft.groups=(0.7, 0.2, 0.1)"]
    env = dict(os.environ, MM1_JAX_CACHE=str(tmp_path / "cache"), PYTHONPATH=REPO)
    out = subprocess.run([sys.executable, "-m", "mm1_jax.data.inspect", f"--config={path}", "--batches=40",
                          "--rows=0", *flags], env=env, capture_output=True, text=True, check=True, cwd=REPO).stdout
    # the same resolution in this process, from the same config and flags
    sys.path.insert(0, str(tmp_path))
    try:
        import sft_config  # pylint: disable=import-outside-toplevel
    finally:
        sys.path.remove(str(tmp_path))
    data = sft_config.get_config().data
    data.sft.alpha.science, data.sft.alpha.refer_ground, data.sft.groups = 0.5, 1.5, (0.7, 0.2, 0.1)
    want = config_lib.source_weights(data)
    lines = out.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("source"))
    sources = {w[0]: w for w in map(str.split, lines[head + 1:head + 1 + len(want)])}
    assert list(sources) == list(want), out
    total = sum(int(w[3]) for w in sources.values())
    assert total >= 400, out
    for name, w in want.items():
        printed, observed = float(sources[name][1]), float(sources[name][2])
        assert printed == pytest.approx(w, abs=5e-4), (name, out)
        assert observed == pytest.approx(w, abs=0.02), (name, out)  # grain mixes by index: shares are near exact
        assert sources[name][-1] == synthetic.EMBEDDED_SFT_CATEGORIES.get(name, "-"), (name, out)
    top = next(i for i, line in enumerate(lines) if line.startswith("SFT mixture (data.sft)"))
    assert "single-image 0.7 / multi-image 0.2 / text-only 0.1" in lines[top], out
    table = {w[0]: w for w in map(str.split, lines[top + 2:top + 2 + len(config_lib.SFT_CATEGORIES)])}
    # single-image: general 1, text-rich 3.3, science 0.5, math 0.5, R&G 1.5 (no code): sum 6.8 of 0.7
    expected = {"general": 0.7 / 6.8, "text_rich": 0.7 * 3.3 / 6.8, "science": 0.7 * 0.5 / 6.8,
                "math": 0.7 * 0.5 / 6.8, "code": 0.0, "refer_ground": 0.7 * 1.5 / 6.8, "multi_image": 0.2, "text": 0.1}
    for category, share in expected.items():
        row = table[category]
        assert float(row[3]) == pytest.approx(share, abs=5e-4) and float(row[4]) == pytest.approx(share, abs=0.02), \
            (category, out)
    assert table["code"][-1] == "source)" and table["text_rich"][-1] == "ocr,doc_vqa", out
    # inside a category, by size: ocr 1000 and doc_vqa 500 records
    assert want["ocr"] == pytest.approx(2 * want["doc_vqa"])


@pytest.mark.parametrize("change, field, value", [
    (dict(science=-0.1), "data.sft.alpha.science", "-0.1"),
    (dict(sciense=0.1), "data.sft.alpha.sciense", 'did you mean "science"'),
    (dict(general=2.0), "data.sft.alpha.general", "2.0"),
    (dict(text=0.5), "data.sft.alpha.text", "0.5"),
    (dict(groups=(0.8, 0.1, 0.2)), "data.sft.groups", "(0.8, 0.1, 0.2)"),
    (dict(groups=(0.8, 0.2)), "data.sft.groups", "(0.8, 0.2)"),
    (dict(groups=(1.1, -0.1, 0.0)), "data.sft.groups", "(1.1, -0.1, 0.0)"),
    (dict(categories="a:general,b:generl"), "data.sft.categories", "'generl' is not one (did you mean"),
    (dict(categories="a:general,x:science"), "data.sft.categories", "'x' is not a source"),
    (dict(categories="a:general,b"), "data.sft.categories", "'b' is not source:category"),
    (dict(categories="a:general,c:science,d:refer_ground,m:multi_image,t:text"), "source 'b'", "weight 3"),
    (dict(categories="a:general,b:general,c:science,d:refer_ground,t:text"), "source 'm'", "weight 1"),
    (dict(categories="a:general,b:general,c:science,d:refer_ground,m:text,t:text"), "data.sft.groups",
     "multi-image data 0.1, but no source"),
])
def test_bad_values_are_one_sentence_naming_the_field_and_value(change, field, value):
    c = data_config(OWN, CATS)
    for key, v in change.items():
        if key == "categories":
            c.sft.categories = v
        elif key == "groups":
            c.sft.groups = v
        else:
            c.sft.alpha[key] = v
    with pytest.raises(ValueError) as err:
        config_lib.validate_data_config(c)
        config_lib.source_weights(c)
    message = str(err.value)
    assert field in message and value in message and "\n" not in message, message
    assert message.endswith(".") and message.replace("e.g. ", "").count(". ") == 0, message  # one sentence


# --- the study's rows

STUDY = S.load_study(os.path.join(REPO, "configs", "studies", "mm15_sft_mixture.py"))


def resolved(study, stage="sft") -> dict[str, dict[str, float]]:
    """Each row's SFT stage weights, by category (summed over a category's sources)."""
    out = {}
    for job in S.jobs(study, "/r"):
        if job.stage == stage:
            data = S.job_config(job).data
            table = config_lib.sft_category_table(data)
            out[job.row] = {c: row["weight"] for c, row in table.items()}
    return out


def test_study_rows_resolve_to_what_their_names_say():
    rows = resolved(STUDY)
    assert rows["f5_general"] == pytest.approx({c: float(c == "general") for c in config_lib.SFT_CATEGORIES})
    for category, alpha in config_lib.SFT_ALPHA.items():  # Fig. 5: general + one category at its final alpha
        got = rows[f"f5_general_{category}"]
        assert got[category] / got["general"] == pytest.approx(alpha)
        assert got["general"] + got[category] == pytest.approx(1.0)
    for category, grid in {"science": (0.05, 0.1, 0.2, 0.5, 1.0), "math": (0.1, 0.2, 0.5, 1.0, 2.0),
                           "code": (0.05, 0.1, 0.2, 0.5, 1.0), "refer_ground": (0.5, 1.0, 2.0, 3.0, 4.0)}.items():
        assert config_lib.SFT_ALPHA[category] in grid  # the paper's choice is a point of our grid
        for alpha in grid:
            got = rows[f"f6_{category}_{alpha:g}"]
            assert got[category] / got["general"] == pytest.approx(alpha) and sum(got.values()) == pytest.approx(1)
    for w in (0.0, 0.05, 0.1, 0.15, 0.2):
        assert (rows[f"f7_text_{w:g}"]["text"], rows[f"f7_text_{w:g}"]["multi_image"]) == pytest.approx((w, 0.1))
    for w in (0.0, 0.05, 0.1, 0.2, 0.3):
        assert (rows[f"f7_multi_{w:g}"]["multi_image"], rows[f"f7_multi_{w:g}"]["text"]) == pytest.approx((w, 0.1))
    assert rows["f8_base"]["refer_ground"] == 0 and rows["f8_single_image"]["refer_ground"] > 0.25
    assert rows["f8_single_image"]["multi_image"] == rows["f8_single_image"]["text"] == 0
    final = {c: round(100 * w, 1) for c, w in rows["f8_all"].items()}
    assert final == mm15_sft.PUBLISHED_SPLIT  # the All mixture is MM1.5's final one
    assert all(rows[r] == rows["f8_all"] for r in ("f7_text_0.1", "f7_multi_0.1"))


def test_study_paper_values_and_embedded_form():
    """Only STUDIES.md's numbers, tagged as there ([S1] for Fig. 5); the embedded rows leave code out (the world has
    no code data) and weigh the world's categories the same way."""
    numbers = {(r, m): v for r, values in STUDY.paper.items() for m, v in values.items() if v[0] != "not found"}
    assert numbers == {("f5_general", "Text-rich"): (41.0, "Fig. 5 (read approximately)", "[S1]"),
                       ("f5_general", "Knowledge"): (44.0, "Fig. 5 (read approximately)", "[S1]"),
                       ("f5_general", "Refer&Ground"): (18.0, "Fig. 5 (read approximately)", "[S1]"),
                       ("f5_general_text_rich", "Text-rich"): (61.0, "Fig. 5 (read approximately)", "[S1]"),
                       ("f5_general_text_rich", "Knowledge"): (46.0, "Fig. 5 (read approximately)", "[S1]"),
                       ("f5_general_refer_ground", "Refer&Ground"): (73.0, "Fig. 5 (read approximately)", "[S1]")}
    assert "Multi-image" in STUDY.metrics and "MMBase" in STUDY.metrics
    small = S.at_scale(STUDY, "embedded")
    assert set(small.rows) == {r for r in STUDY.rows if "code" not in r}
    rows = resolved(small)
    assert rows["f5_general"]["general"] == 1.0
    science = rows["f6_science_0.2"]
    assert science["science"] / science["general"] == pytest.approx(0.2) and science["code"] == 0
    final = rows["f8_all"]  # no code data: the others keep their ratios to general
    assert final["refer_ground"] / final["general"] == pytest.approx(2.0) and final["text"] == pytest.approx(0.1)
    assert sum(final.values()) == pytest.approx(1.0)
