"""mm1_jax.sweep.report: the study report's table, CSV, figures and TensorBoard runs against numbers computed here."""
import csv
import dataclasses
import json

import numpy as np
import pytest
from PIL import Image
from scipy import stats as scipy_stats

from mm1_jax.sweep import report
from mm1_jax.sweep.studies import StudyError, load_study

STUDY_FILE = '''
STUDY = dict(title="toy scaling", paper="Toy (arXiv 0000.00000)", source="Fig. 1", fixed="a tiny model, 10 steps")
STAGES = (
    dict(name="pretrain", config="configs/tiny.py"),
    dict(name="sft", config="configs/tiny.py"),
    dict(name="eval", evaluate=True, shots=(0, 4), limit=8),
)
ROWS = {"small": dict(), "medium": dict(), "large": dict(), "huge": dict()}
BENCHMARKS = {"CAP": dict(task="embedded_cap", metric="cider", scale=100),
              "VQA": dict(task="embedded_vqa", metric="vqa_accuracy", scale=100)}
METRICS = {"0-shot": dict(mean=("CAP", "VQA"), shots=0), "4-shot": dict(mean=("CAP", "VQA"), shots=4)}
PAPER = {
    "small": {"0-shot": (30.0, "Fig. 1a", "[P]"), "4-shot": (40.5, "Fig. 1b", "[S]")},
    "medium": {"0-shot": (35.25, "Fig. 1a", "[P]"), "4-shot": ("not found", "Fig. 1b", "")},
    "large": {"0-shot": (33.0, "Fig. 1a", "[S]"), "4-shot": (dict(delta=2.5, vs="small"), "Fig. 1b", "[S]")},
    "huge": {"0-shot": (50.0, "Fig. 1a", "[P]")},
}
FINDINGS = (("bigger models caption better", "Sec. 9", "[P]"),)
FIGURES = (
    dict(kind="bars", metrics=("0-shot", "4-shot"), title="Toy Fig. 1", file="fig1.png"),
    dict(kind="line", metric="0-shot", x={"small": 1, "medium": 10, "large": 100, "huge": 1000}, logx=True,
         xlabel="parameters", title="0-shot by size", file="size.png"),
    dict(kind="line", metric="4-shot", x={"small": 1, "medium": 2, "large": 1, "huge": 2},
         series={"small": "route A", "medium": "route A", "large": "route B", "huge": "route B"}, file="routes.png"),
)
'''
ERROR = "sft: RuntimeError: out of memory"
HPARAMS = {row: {"layers": layers, "lr": 1e-3, "frozen": row == "small", "weights": ("caption", 0.5)}
           for row, layers in (("small", 2), ("medium", 4), ("large", 8), ("huge", 16))}


def _scores(rng, drop=()):
    keys = [f"embedded_cap/{k}shot/cider" for k in (0, 4)] + [f"embedded_vqa/{k}shot/vqa_accuracy" for k in (0, 4)]
    return {key: float(rng.uniform(0.1, 0.9)) for key in keys if key not in drop}


def _metric(scores, shots):
    """The METRICS above by hand: the mean of CIDEr x100 and VQA accuracy x100 (None when a part is missing)."""
    cap, vqa = scores.get(f"embedded_cap/{shots}shot/cider"), scores.get(f"embedded_vqa/{shots}shot/vqa_accuracy")
    return None if cap is None or vqa is None else (cap * 100 + vqa * 100) / 2


def _expected(results):
    """row -> metric -> (mean, sample std or None, seeds), from the raw scores with numpy."""
    out = {}
    for row, seeds in results.items():
        out[row] = {}
        for metric, shots in (("0-shot", 0), ("4-shot", 4)):
            values = [v for v in (_metric(s, shots) for s in seeds.values()) if v is not None]
            std = float(np.std(values, ddof=1)) if len(values) >= 2 else None
            out[row][metric] = (float(np.mean(values)), std, len(values))
    return out


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    (tmp / "toy.py").write_text(STUDY_FILE)
    study = load_study(tmp / "toy.py")
    rng = np.random.default_rng(0)
    results = {
        "small": {0: _scores(rng), 1: _scores(rng)},
        "medium": {0: _scores(rng), 1: _scores(rng, drop=("embedded_vqa/4shot/vqa_accuracy",))},
        "large": {0: _scores(rng)},
    }
    out = tmp / "out"
    paths = report.write_report(study, results, str(out), failed={"huge": ERROR}, hparams=HPARAMS)
    return study, results, out, paths, _expected(results)


def test_markdown_has_our_means_the_papers_numbers_and_the_failure(written):
    _, _, out, paths, expected = written
    md = (out / "report.md").read_text()
    assert str(out / "report.md") in paths and str(out / "report.csv") in paths
    assert md.startswith("# toy: toy scaling\n") and "Toy (arXiv 0000.00000), Fig. 1. Scale: paper." in md
    assert "Fixed: a tiny model, 10 steps." in md
    small0, small4 = expected["small"]["0-shot"], expected["small"]["4-shot"]
    assert f"{small0[0]:.2f} ± {small0[1]:.2f} (2)" in md
    assert f"{small4[0]:.2f} ± {small4[1]:.2f} (2)" in md
    medium4 = expected["medium"]["4-shot"]  # one seed lacks a part of 4-shot: that seed is left out
    assert medium4[2] == 1 and f"{medium4[0]:.2f} (1)" in md
    large0 = expected["large"]["0-shot"]
    assert f"{large0[0]:.2f} (1)" in md
    # The paper's delta is compared with our difference of the same two rows.
    ours = expected["large"]["4-shot"][0] - small4[0]
    assert f"{ours:+.2f} vs small" in md and "+2.5 vs small (Fig. 1b [S])" in md
    assert f"4-shot, large vs small: paper +2.5, ours {ours:+.2f}: the sign {'agrees' if ours > 0 else 'differs'}" in md
    for paper in ("30.0 (Fig. 1a [P])", "35.25 (Fig. 1a [P])", "not found (Fig. 1b)", "50.0 (Fig. 1a [P])"):
        assert paper in md
    assert "| huge | failed | failed | 50.0 (Fig. 1a [P]) |" in md
    assert f"- huge: {ERROR}" in md
    assert "- bigger models caption better (Sec. 9 [P])" in md
    assert "![Toy Fig. 1](figures/fig1.png)" in md and "![0-shot by size](figures/size.png)" in md


def test_rank_agreement_is_scipys_spearman_and_na_under_three_rows(written):
    study, results, out, _, expected = written
    md = (out / "report.md").read_text()
    rows = ["small", "medium", "large"]  # 0-shot: the rows with our number and a paper number (huge failed)
    ours = [expected[r]["0-shot"][0] for r in rows]
    paper = [30.0, 35.25, 33.0]
    rho = scipy_stats.spearmanr(ours, paper)[0]
    agreement = report.rank_agreement(study, report.row_stats(study, results))
    assert agreement["0-shot"].rows == tuple(rows)
    assert agreement["0-shot"].rho == pytest.approx(rho, abs=1e-12)
    best_ours, best_paper = rows[int(np.argmax(ours))], rows[int(np.argmax(paper))]
    best = (f"the best row agrees ({best_ours})" if best_ours == best_paper
            else f"the best row differs (ours {best_ours}, paper {best_paper})")
    assert f"- 0-shot: Spearman rho = {rho:+.3f} over 3 rows; {best} (small, medium, large)" in md
    # 4-shot: only `small` has a plain paper number ('not found' and the delta do not rank).
    assert agreement["4-shot"].rho is None and "- 4-shot: n/a (1 rows) (small)" in md


def test_csv_has_one_line_per_row_and_metric(written):
    _, _, out, _, expected = written
    with open(out / "report.csv", newline="") as f:
        lines = list(csv.DictReader(f))
    assert tuple(lines[0]) == report.CSV_COLUMNS
    assert [(x["row"], x["metric"]) for x in lines] == [(r, m) for r in ("small", "medium", "large", "huge")
                                                        for m in ("0-shot", "4-shot")]
    by = {(x["row"], x["metric"]): x for x in lines}
    for row, metrics in expected.items():
        for metric, (mean, std, n) in metrics.items():
            line = by[row, metric]
            assert float(line["ours_mean"]) == pytest.approx(mean, rel=1e-12)
            assert (line["ours_std"] == "") if std is None else float(line["ours_std"]) == pytest.approx(std, rel=1e-12)
            assert int(line["seeds"]) == n and line["status"] == "done"
    assert (by["small", "0-shot"]["paper"], by["small", "0-shot"]["paper_where"], by["small", "0-shot"]["paper_tag"]) \
        == ("30.0", "Fig. 1a", "[P]")
    assert by["medium", "4-shot"]["paper"] == "not found" and by["large", "4-shot"]["paper"] == "+2.5 vs small"
    assert by["huge", "0-shot"]["status"] == "failed" and by["huge", "0-shot"]["ours_mean"] == ""
    assert by["huge", "4-shot"]["paper"] == "" and by["huge", "4-shot"]["seeds"] == "0"


def _png(path):
    assert path.stat().st_size > 5_000
    with Image.open(path) as image:
        image.load()
        assert image.size[0] > 300 and image.size[1] > 200
        assert len(set(image.convert("L").getdata())) > 10  # not blank


def test_figures_decode_and_their_data_are_the_results(written):
    _, _, out, paths, expected = written
    for name in ("fig1", "size"):
        assert str(out / "figures" / f"{name}.png") in paths and str(out / "figures" / f"{name}.data.json") in paths
        _png(out / "figures" / f"{name}.png")
    bars = json.loads((out / "figures" / "fig1.data.json").read_text())
    assert bars["kind"] == "bars" and bars["title"] == "Toy Fig. 1" and bars["groups"] == ["0-shot", "4-shot"]
    assert list(bars["series"]) == ["small", "medium", "large"]  # the finished rows
    for row, series in bars["series"].items():
        assert series["mean"] == pytest.approx([expected[row][m][0] for m in ("0-shot", "4-shot")], rel=1e-12)
        stds = [expected[row][m][1] for m in ("0-shot", "4-shot")]
        assert [s is None for s in series["std"]] == [s is None for s in stds]
        assert [s for s in series["std"] if s is not None] == pytest.approx([s for s in stds if s is not None])
    assert bars["paper"] == {"small": [30.0, 40.5], "medium": [35.25, None], "large": [33.0, None]}
    line = json.loads((out / "figures" / "size.data.json").read_text())
    assert line["kind"] == "line" and line["logx"] is True and line["xlabel"] == "parameters"
    assert line["x"] == [1, 10, 100, 1000] and line["rows"] == ["small", "medium", "large", "huge"]
    series = line["series"]["0-shot"]
    assert series["mean"][:3] == pytest.approx([expected[r]["0-shot"][0] for r in ("small", "medium")] +
                                               [expected["large"]["0-shot"][0]], rel=1e-12)
    assert series["mean"][3] is None and series["std"][2:] == [None, None]
    assert series["std"][:2] == pytest.approx([expected[r]["0-shot"][1] for r in ("small", "medium")])
    assert line["paper"] == {"rows": ["small", "medium", "large", "huge"], "x": [1, 10, 100, 1000],
                             "value": [30.0, 35.25, 33.0, 50.0], "series": ["0-shot"] * 4}
    routes_data = json.loads((out / "figures" / "routes.data.json").read_text())
    paper = routes_data["paper"]  # each paper point belongs to its row's line (drawn in that line's colour)
    assert paper["series"] == [{"small": "route A", "medium": "route A", "large": "route B", "huge": "route B"}[r]
                               for r in paper["rows"]]
    routes = routes_data["series"]  # one line per series label
    assert list(routes) == ["route A", "route B"]
    assert routes["route A"]["rows"] == ["small", "medium"] and routes["route A"]["x"] == [1, 2]
    assert routes["route A"]["mean"] == pytest.approx([expected[r]["4-shot"][0] for r in ("small", "medium")])
    assert routes["route B"]["rows"] == ["large", "huge"] and routes["route B"]["x"] == [1, 2]
    assert routes["route B"]["mean"] == [pytest.approx(expected["large"]["4-shot"][0]), None]
    _png(out / "figures" / "routes.png")


def test_tensorboard_runs_hold_each_rows_hparams_and_means(written):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import metadata

    _, _, out, paths, expected = written
    assert sorted(p.name for p in (out / "tb").iterdir() if p.is_dir()) == ["large", "medium", "small"]
    root = EventAccumulator(str(out / "tb"))
    root.Reload()
    experiment = metadata.parse_experiment_plugin_data(root.PluginTagToContent("hparams")[metadata.EXPERIMENT_TAG])
    assert sorted(h.name for h in experiment.hparam_infos) == ["frozen", "layers", "lr", "weights"]
    assert [m.name.tag for m in experiment.metric_infos] == ["0-shot", "4-shot"]
    for row in ("small", "medium", "large"):
        acc = EventAccumulator(str(out / "tb" / row))
        acc.Reload()
        assert any(p.startswith(str(out / "tb" / row) + "/events.out.tfevents.") for p in paths)
        for metric in ("0-shot", "4-shot"):
            (event,) = acc.Scalars(metric)
            assert event.step == 0 and event.value == pytest.approx(expected[row][metric][0], rel=1e-6)  # float32
        content = acc.PluginTagToContent("hparams")[metadata.SESSION_START_INFO_TAG]
        start = metadata.parse_session_start_info_plugin_data(content)
        assert start.group_name == row
        assert start.hparams["layers"].number_value == HPARAMS[row]["layers"]
        assert start.hparams["lr"].number_value == pytest.approx(1e-3)
        assert start.hparams["frozen"].bool_value is (row == "small")
        assert start.hparams["weights"].string_value == '("caption", 0.5)'  # as --config.x= takes it


def test_default_figure_without_tensorboard_and_bad_input(written, tmp_path):
    study, results, _, _, _ = written
    plain = dataclasses.replace(study, figures=())
    paths = report.write_report(plain, {"small": results["small"]}, str(tmp_path), tensorboard=False)
    assert not (tmp_path / "tb").exists() and str(tmp_path / "figures" / "metrics.png") in paths
    _png(tmp_path / "figures" / "metrics.png")
    data = json.loads((tmp_path / "figures" / "metrics.data.json").read_text())
    assert data["groups"] == ["0-shot", "4-shot"] and list(data["series"]) == ["small"]
    md = (tmp_path / "report.md").read_text()
    assert "## Not run\n\nmedium, large, huge" in md and "- 0-shot: n/a (1 rows) (small)" in md
    assert "4-shot, large vs small: paper +2.5, ours n/a (needs results of both rows)" in md
    with pytest.raises(StudyError, match="results name row 'giant'"):
        report.write_report(study, {"giant": {0: {}}}, str(tmp_path))
    with pytest.raises(ImportError, match=r"pip install '\.\[sweep\]'"):
        report._need("no_such_module_for_the_report")


@pytest.mark.parametrize("entry, ok", [
    (("not found", "Fig. 1b", ""), True), (("not in the paper", "Sec. 9 (ours)", ""), True),
    (("not found", "Fig. 1b", "[P]"), False),  # nothing was read: no tag
    ((35.25, "Fig. 1a", ""), False),  # a number says how it is known
])
def test_a_paper_value_s_tag_says_what_was_read(tmp_path, entry, ok):
    path = tmp_path / "toy.py"
    path.write_text(STUDY_FILE.replace('"4-shot": ("not found", "Fig. 1b", "")', f'"4-shot": {entry!r}'))
    if ok:
        assert load_study(path).paper["medium"]["4-shot"] == entry
    else:
        with pytest.raises(StudyError, match=r"PAPER\['medium'\]\['4-shot'\]=.* is not \(value, where, tag\) with tag "):
            load_study(path)
