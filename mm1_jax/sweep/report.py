"""A study's report: our rows' evaluation scores beside the paper's numbers, as a table, figures and TensorBoard runs.

`write_report(study, results, out_dir)` takes each finished row's eval scores (one flat dict per seed) and writes
  report.md    the study's table (ours: mean ± sample std over seeds (seeds); the paper's value (where tag)), the
               rank agreement per metric (Spearman over the rows with both numbers, and whether the best row agrees),
               the sign agreement of the paper's deltas, failed and not-run rows, and the paper's FINDINGS;
  report.csv   the same numbers, one line per (row, metric);
  figures/     the study's FIGURES in the paper's style (default: one bar chart over every metric), each PNG with a
               `<name>.data.json` beside it holding exactly the plotted numbers, so a figure can be checked;
  tb/          one TensorBoard run per finished row: its hyperparameters and our means (the HParams dashboard).
A reproduction is judged by how its numbers compare with the paper's, so both stand side by side with where each paper
number is and how we know it ([P] read in the paper, [S] secondary summaries, [S1] a single unchecked source).
matplotlib and scipy are imported only when a report is written (`pip install '.[sweep]'`).
"""
from __future__ import annotations

import csv
import dataclasses
import importlib
import json
import math
import pathlib
import time
import warnings
from typing import Any

import numpy as np

from mm1_jax.sweep.studies import Study, StudyError, aggregate, cli_value
from mm1_jax.train.metrics import TensorBoardWriter

TAG_MEANING = ("[P] read in the paper, [S] secondary summaries, [S1] a single unchecked secondary source, no tag: "
               "nothing read")
CSV_COLUMNS = ("row", "metric", "ours_mean", "ours_std", "seeds", "paper", "paper_where", "paper_tag", "status")


@dataclasses.dataclass(frozen=True)
class Stat:
    """One row's metric over its seeds: mean, sample std (ddof=1; None under 2 seeds) and the number of seeds."""

    mean: float | None
    std: float | None
    n: int


@dataclasses.dataclass(frozen=True)
class Agreement:
    """How our ranking of the rows on one metric agrees with the paper's (rho None when not defined)."""

    metric: str
    rows: tuple[str, ...]
    rho: float | None
    text: str


@dataclasses.dataclass(frozen=True)
class DeltaCheck:
    """A paper delta (row minus vs) against ours; `agrees` None when one of our two rows has no number."""

    metric: str
    row: str
    vs: str
    paper: float
    ours: float | None
    agrees: bool | None


def _need(module: str):
    """Import a report-only dependency, or say in one sentence how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(f"the study report needs {module.split('.')[0]}, which is not installed: "
                          "pip install '.[sweep]'") from None


# --- numbers


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _json_number(value: float | None) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def stat(values: list[float]) -> Stat:
    """Mean and sample standard deviation (ddof=1) of one metric over seeds."""
    if not values:
        return Stat(None, None, 0)
    a = np.asarray(values, dtype=np.float64)
    return Stat(float(a.mean()), float(a.std(ddof=1)) if a.size >= 2 else None, int(a.size))


def row_stats(study: Study, results: dict[str, dict[int, dict[str, float]]]) -> dict[str, dict[str, Stat]]:
    """Per row of the study and metric: our Stat over the row's seeds (seeds without the metric are left out)."""
    out = {}
    for row in study.rows:
        values: dict[str, list[float]] = {m: [] for m in study.metrics}
        seeds = results.get(row) or {}
        for seed in sorted(seeds):
            for metric, value in aggregate(study, seeds[seed]).items():
                if value is not None:
                    values[metric].append(value)
        out[row] = {m: stat(v) for m, v in values.items()}
    return out


def row_status(row: str, results: dict, failed: dict) -> str:
    if row in failed:
        return "failed"
    return "done" if results.get(row) else "not run"


def paper_entry(study: Study, row: str, metric: str) -> tuple[Any, str, str] | None:
    return study.paper.get(row, {}).get(metric)


def paper_text(value: Any) -> str:
    """The paper's value as written: a number, a string ('not found'), or '+x vs ROW' for a delta."""
    if isinstance(value, dict):
        delta = value["delta"]
        return f"{'+' if delta >= 0 else ''}{delta} vs {value['vs']}"
    return str(value)


def ours_delta(stats: dict[str, dict[str, Stat]], row: str, vs: str, metric: str) -> float | None:
    """ours(row) - ours(vs): what a paper delta is compared with."""
    a, b = stats.get(row, {}).get(metric), stats.get(vs, {}).get(metric)
    if a is None or b is None or a.mean is None or b.mean is None:
        return None
    return a.mean - b.mean


# --- agreement


def rank_agreement(study: Study, stats: dict[str, dict[str, Stat]]) -> dict[str, Agreement]:
    """Per metric: Spearman's rho between our means and the paper's numbers (rows with both, at least 3), and
    whether the best row (higher is better) is the same."""
    spearmanr = _need("scipy.stats").spearmanr
    out = {}
    for metric in study.metrics:
        rows, ours, theirs = [], [], []
        for row in study.rows:
            entry = paper_entry(study, row, metric)
            if entry and _is_number(entry[0]) and stats[row][metric].mean is not None:
                rows.append(row)
                ours.append(stats[row][metric].mean)
                theirs.append(float(entry[0]))
        rho = None
        if len(rows) < 3:
            text = f"n/a ({len(rows)} rows)"
        else:
            with warnings.catch_warnings():  # constant input: rho is nan, said below
                warnings.simplefilter("ignore")
                value = float(spearmanr(ours, theirs)[0])
            rho = value if math.isfinite(value) else None
            text = (f"Spearman rho = {rho:+.3f} over {len(rows)} rows" if rho is not None
                    else f"undefined over {len(rows)} rows (constant values)")
        if len(rows) >= 2:
            best_ours, best_paper = rows[int(np.argmax(ours))], rows[int(np.argmax(theirs))]
            text += (f"; the best row agrees ({best_ours})" if best_ours == best_paper
                     else f"; the best row differs (ours {best_ours}, paper {best_paper})")
        out[metric] = Agreement(metric, tuple(rows), rho, text)
    return out


def delta_agreement(study: Study, stats: dict[str, dict[str, Stat]]) -> list[DeltaCheck]:
    """Every paper delta of the study's metrics against our difference of the same two rows (sign agreement)."""
    out = []
    for row in study.rows:
        for metric, entry in study.paper.get(row, {}).items():
            if metric in study.metrics and isinstance(entry[0], dict):
                paper, vs = float(entry[0]["delta"]), entry[0]["vs"]
                ours = ours_delta(stats, row, vs, metric)
                agrees = None if ours is None else bool(np.sign(ours) == np.sign(paper))
                out.append(DeltaCheck(metric, row, vs, paper, ours, agrees))
    return out


def _delta_line(check: DeltaCheck) -> str:
    head = f"{check.metric}, {check.row} vs {check.vs}: paper {check.paper:+g}"
    if check.ours is None:
        return f"{head}, ours n/a (needs results of both rows)"
    return f"{head}, ours {check.ours:+.2f}: the sign {'agrees' if check.agrees else 'differs'}"


# --- report.md and report.csv


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def ours_text(s: Stat) -> str:
    """'mean ± std (n)' ('mean (1)' for one seed, '-' for none)."""
    if s.mean is None:
        return "-"
    return f"{s.mean:.2f} ± {s.std:.2f} ({s.n})" if s.std is not None else f"{s.mean:.2f} ({s.n})"


def _ours_cell(study: Study, stats, row: str, metric: str, status: str) -> str:
    s = stats[row][metric]
    if s.mean is None:
        return status if status != "done" else "-"
    entry = paper_entry(study, row, metric)
    if entry and isinstance(entry[0], dict):
        delta = ours_delta(stats, row, entry[0]["vs"], metric)
        head = f"{delta:+.2f} vs {entry[0]['vs']}" if delta is not None else f"n/a vs {entry[0]['vs']}"
        return f"{head}; {ours_text(s)}"
    return ours_text(s)


def _paper_cell(entry) -> str:
    return f"{paper_text(entry[0])} ({entry[1]}{' ' + entry[2] if entry[2] else ''})" if entry else ""


def _markdown(study: Study, stats, statuses: dict[str, str], failed: dict[str, str], agreements, deltas,
              figures: list[tuple[str, str]], skipped: list[str]) -> str:
    info = study.info
    lines = [f"# {study.name}: {info['title']}", "",
             f"{info['paper']}, {info['source']}. Scale: {study.scale}"
             + (" (tiny models on embedded data: compare the ranking, not the values)." if study.scale != "paper"
                else "."), ""]
    if info.get("fixed"):
        lines += [f"Fixed: {info['fixed']}.", ""]
    if info.get("note"):
        lines += [f"Note: {info['note']}", ""]
    lines += ["## Results", "",
              ("ours: mean ± sample std over seeds (seeds); for a paper delta '+x vs ROW', ours is our difference to "
               f"ROW, then the row's own number. paper: value (where tag), {TAG_MEANING}."), ""]
    head = ["row", "status"] + [f"{m} {side}" for m in study.metrics for side in ("ours", "paper")]
    lines += ["| " + " | ".join(_cell(h) for h in head) + " |", "|" + "---|" * len(head)]
    for row in study.rows:
        cells = [row, statuses[row]]
        for metric in study.metrics:
            cells += [_ours_cell(study, stats, row, metric, statuses[row]),
                      _paper_cell(paper_entry(study, row, metric))]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    lines += ["", "## Rank agreement with the paper (higher is better)", ""]
    lines += [f"- {a.metric}: {a.text}" + (f" ({', '.join(a.rows)})" if a.rows else "") for a in agreements.values()]
    if deltas:
        lines += ["", "Paper deltas (sign of row minus the other row):", ""]
        lines += [f"- {_delta_line(d)}" for d in deltas]
    if failed:
        lines += ["", "## Failed rows", ""] + [f"- {row}: {failed[row]}" for row in study.rows if row in failed]
    not_run = [row for row in study.rows if statuses[row] == "not run"]
    if not_run:
        lines += ["", "## Not run", "", ", ".join(not_run)]
    if study.findings:
        lines += ["", "## The paper's findings (to compare with the table)", ""]
        lines += [f"- {sentence} ({where} {tag})" for sentence, where, tag in study.findings]
    if figures or skipped:
        lines += ["", "## Figures", ""]
        lines += [f"![{_cell(title)}](figures/{name})" for title, name in figures]
        lines += [f"- {note}" for note in skipped]
    return "\n".join(lines) + "\n"


def _write_csv(path: pathlib.Path, study: Study, stats, statuses: dict[str, str]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        for row in study.rows:
            for metric in study.metrics:
                s = stats[row][metric]
                entry = paper_entry(study, row, metric)
                writer.writerow([row, metric, "" if s.mean is None else repr(s.mean),
                                 "" if s.std is None else repr(s.std), s.n,
                                 paper_text(entry[0]) if entry else "", entry[1] if entry else "",
                                 entry[2] if entry else "", statuses[row]])


# --- figures


def figure_specs(study: Study) -> list[dict]:
    """The study's FIGURES, or one bar chart over every metric (metrics.png)."""
    if not study.figures:
        return [{"kind": "bars", "metrics": tuple(study.metrics), "file": "metrics.png",
                 "title": f"{study.info['paper']} {study.info['source']}: {study.info['title']}"}]
    for spec in study.figures:
        name = spec.get("file", "")
        if spec.get("kind") not in ("bars", "line") or pathlib.PurePath(name).name != name or not name.endswith(".png"):
            raise StudyError(f"study {study.name}: figure {spec!r} needs kind 'bars' or 'line' and a file 'NAME.png'.")
    return [dict(spec) for spec in study.figures]


def _series(stats, rows: list[str], metrics: list[str]) -> dict[str, list]:
    """{"mean": [...], "std": [...]} over rows x metrics (one of them a single item), None where missing."""
    cells = [stats[r][m] for r in rows for m in metrics]
    return {"mean": [_json_number(c.mean) for c in cells], "std": [_json_number(c.std) for c in cells]}


def bars_data(study: Study, stats, spec: dict, rows: list[str]) -> dict:
    """A group of bars per metric, one bar per finished row; paper's plain numbers as markers."""
    metrics = list(spec["metrics"])

    def paper_value(row: str, metric: str) -> float | None:
        entry = paper_entry(study, row, metric)
        return float(entry[0]) if entry and _is_number(entry[0]) else None

    return {"kind": "bars", "title": spec.get("title", ""), "groups": metrics, "rows": rows,
            "series": {row: _series(stats, [row], metrics) for row in rows},
            "paper": {row: [paper_value(row, m) for m in metrics] for row in rows}}


def line_data(study: Study, stats, spec: dict) -> dict:
    """One metric against the number each row stands for (x sorted); paper's plain numbers as markers."""
    metric = spec["metric"]
    points = sorted(((float(x), row) for row, x in spec["x"].items() if row in study.rows), key=lambda p: p[0])
    rows, xs = [row for _, row in points], [x for x, _ in points]
    groups = spec.get("series") or {}  # row -> the line it belongs to (one line of all rows without it)
    paper: dict[str, list] = {"rows": [], "x": [], "value": [], "series": []}
    for x, row in points:
        entry = paper_entry(study, row, metric)
        if entry and _is_number(entry[0]):
            paper["rows"].append(row)
            paper["x"].append(x)
            paper["value"].append(float(entry[0]))
            paper["series"].append(groups.get(row, metric))
    series = {}
    for label in dict.fromkeys(groups.get(row, metric) for row in rows):
        members = [(row, x) for row, x in zip(rows, xs) if groups.get(row, metric) == label]
        series[label] = {**_series(stats, [r for r, _ in members], [metric]), "rows": [r for r, _ in members],
                         "x": [x for _, x in members]}
    return {"kind": "line", "title": spec.get("title", ""), "metric": metric, "xlabel": spec.get("xlabel", ""),
            "logx": bool(spec.get("logx", False)), "rows": rows, "x": xs, "series": series, "paper": paper}


def _new_axes(width: float, height: float):
    figure_lib = _need("matplotlib.figure")
    agg = _need("matplotlib.backends.backend_agg")
    fig = figure_lib.Figure(figsize=(width, height), dpi=100)
    agg.FigureCanvasAgg(fig)  # Agg for this figure only: pyplot and the global backend are left alone
    return fig, fig.add_subplot()


def _finish(fig, ax, title: str, path: pathlib.Path, outside: bool) -> None:
    ax.set_title(title, fontsize="medium")
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        where = {"loc": "upper left", "bbox_to_anchor": (1.01, 1.0)} if outside else {}
        ax.legend(handles, labels, fontsize="small", **where)
    else:
        ax.text(0.5, 0.5, "no results", transform=ax.transAxes, ha="center", va="center")
    ax.grid(axis="y", alpha=0.3)
    fig.savefig(path, bbox_inches="tight")


def plot_bars(data: dict, path: pathlib.Path) -> None:
    groups, rows = data["groups"], data["rows"]
    fig, ax = _new_axes(max(6.0, 1.5 + 0.3 * len(groups) * max(1, len(rows))), 4.5)
    width = 0.8 / max(1, len(rows))
    colors = _need("matplotlib").colormaps["tab10" if len(rows) <= 10 else "tab20"]
    paper_labeled = False
    for i, row in enumerate(rows):
        xs = [g + (i - (len(rows) - 1) / 2) * width for g in range(len(groups))]
        mean = [math.nan if v is None else v for v in data["series"][row]["mean"]]
        std = [math.nan if v is None else v for v in data["series"][row]["std"]]  # one seed: no error bar
        ax.bar(xs, mean, width, yerr=std, capsize=2, label=row, color=colors(i % colors.N))
        marks = [(x, v) for x, v in zip(xs, data["paper"][row]) if v is not None]
        if marks:
            ax.scatter([x for x, _ in marks], [v for _, v in marks], marker="o", s=40, facecolors="none",
                       edgecolors="black", zorder=3, label=None if paper_labeled else "paper")
            paper_labeled = True
    ax.set_xticks(range(len(groups)), groups)
    _finish(fig, ax, data["title"], path, outside=True)


def plot_line(data: dict, path: pathlib.Path) -> None:
    fig, ax = _new_axes(6.0, 4.5)
    colors = _need("matplotlib").colormaps["tab10"]
    many = len(data["series"]) > 1
    for i, (label, series) in enumerate(data["series"].items()):
        points = [(x, m, math.nan if s is None else s) for x, m, s in zip(series["x"], series["mean"], series["std"])
                  if m is not None]
        if points:
            ax.errorbar([p[0] for p in points], [p[1] for p in points], yerr=[p[2] for p in points], marker="o",
                        capsize=3, color=colors(i % colors.N), label=f"ours ({label})")
        # the paper's points in the colour of the line they belong to (black when there is one line)
        marks = [(x, v) for x, v, g in zip(data["paper"]["x"], data["paper"]["value"],
                                           data["paper"].get("series") or [label] * len(data["paper"]["x"]))
                 if g == label]
        if marks:
            ax.scatter([x for x, _ in marks], [v for _, v in marks], marker="s", s=50, facecolors="none",
                       edgecolors=colors(i % colors.N) if many else "black", zorder=3,
                       label=f"paper ({label})" if many else "paper")
    if data["logx"]:
        ax.set_xscale("log")
    ax.set_xlabel(data["xlabel"])
    ax.set_ylabel(data["metric"])
    _finish(fig, ax, data["title"], path, outside=False)


def _write_figures(study: Study, stats, fig_dir: pathlib.Path) -> tuple[list, list[str], list[str]]:
    """Every figure's PNG and .data.json; returns ((title, file) embedded, notes on skipped figures, paths)."""
    done = [row for row in study.rows if any(s.n for s in stats[row].values())]
    shown, skipped, paths = [], [], []
    for spec in figure_specs(study):
        wanted = list(spec["metrics"]) if spec["kind"] == "bars" else [spec.get("metric")]
        unknown = [m for m in wanted if m not in study.metrics]
        if unknown:
            skipped.append(f"{spec['file']} not drawn: the study ({study.scale} scale) defines no metric "
                           f"{', '.join(map(str, unknown))}.")
            continue
        if spec["kind"] == "bars":
            data = bars_data(study, stats, spec, done)
            plot = plot_bars
        else:
            data = line_data(study, stats, spec)
            plot = plot_line
        fig_dir.mkdir(parents=True, exist_ok=True)
        png = fig_dir / spec["file"]
        plot(data, png)
        data_path = png.with_name(png.stem + ".data.json")
        data_path.write_text(json.dumps(data, indent=1) + "\n")
        shown.append((data["title"] or png.stem, png.name))
        paths += [str(png), str(data_path)]
    return shown, skipped, paths


# --- TensorBoard


def _hparam_value(value: Any) -> bool | float | int | str:
    """A value TensorBoard's hparams take: bool, number or string (tuples as the command line writes them)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        return value.item() if isinstance(value, np.generic) else value
    if isinstance(value, str):
        return value
    if isinstance(value, (tuple, list)):
        return cli_value(tuple(value))
    return json.dumps(value, sort_keys=True) if isinstance(value, dict) else str(value)


def _hparam_domain(summary_v2, values: list):
    """A discrete domain when every row's value has one type (numbers count as one), else none."""
    if all(isinstance(v, bool) for v in values):
        return summary_v2.Discrete(sorted(set(values)), dtype=bool)
    if all(_is_number(v) for v in values):
        return summary_v2.Discrete(sorted({float(v) for v in values}), dtype=float)
    if all(isinstance(v, str) for v in values):
        return summary_v2.Discrete(sorted(set(values)), dtype=str)
    return None


def _write_events(directory: pathlib.Path, summaries: list) -> str:
    """One event file (step 0) in `directory`, replacing the event files an earlier report left there."""
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("events.out.tfevents.*"):
        old.unlink()
    writer = TensorBoardWriter(str(directory))
    for summary in summaries:
        writer.add(0, summary)
    writer.close()
    return str(next(directory.glob("events.out.tfevents.*")))  # the writer names its file, without a getter


def _safe_name(row: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.=,+" else "_" for c in row) or "_"


def _write_tensorboard(study: Study, stats, rows: list[str], hparams: dict, tb_dir: pathlib.Path) -> list[str]:
    """tb/: the experiment (hparams and metrics) and one run per finished row (its hparams and our means)."""
    from tensorboard.compat.proto import summary_pb2
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2, summary_v2

    values = {row: {k: _hparam_value(v) for k, v in (hparams.get(row) or {}).items()} for row in rows}
    names = sorted({k for v in values.values() for k in v})
    experiment = summary_v2.hparams_config_pb(
        hparams=[summary_v2.HParam(k, _hparam_domain(summary_v2, [v[k] for v in values.values() if k in v]))
                 for k in names],
        metrics=[summary_v2.Metric(m) for m in study.metrics])
    paths = [_write_events(tb_dir, [experiment])]
    end = plugin_data_pb2.HParamsPluginData(session_end_info=plugin_data_pb2.SessionEndInfo(
        status=api_pb2.STATUS_SUCCESS, end_time_secs=time.time()))
    end_summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(
        tag=metadata.SESSION_END_INFO_TAG, metadata=metadata.create_summary_metadata(end),
        tensor=metadata.NULL_TENSOR)])
    for row in rows:
        scalars = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=m, simple_value=s.mean)
                                             for m, s in stats[row].items() if s.mean is not None])
        start = summary_v2.hparams_pb(values[row], trial_id=row)
        paths.append(_write_events(tb_dir / _safe_name(row), [start, scalars, end_summary]))
    return paths


# --- the report


def write_report(study: Study, results: dict[str, dict[int, dict[str, float]]], out_dir: str, *,
                 failed: dict[str, str] | None = None, hparams: dict[str, dict[str, Any]] | None = None,
                 tensorboard: bool = True) -> list[str]:
    """Writes out_dir/report.md, report.csv, figures/*.png (+ a .data.json beside each with exactly the plotted
    numbers) and tb/ (TensorBoard hparams); returns the paths written.

    results[row][seed]: that seed's flat eval scores {"task/Nshot/metric": value}; failed[row]: "stage: last error
    line"; hparams[row]: the row's hyperparameters for TensorBoard. Rows with neither results nor a failure are
    'not run'."""
    failed, hparams = dict(failed or {}), dict(hparams or {})
    for what, names in (("results", results), ("failed", failed)):
        unknown = [r for r in names if r not in study.rows]
        if unknown:
            raise StudyError(f"study {study.name}: {what} name row {unknown[0]!r}, which is not one of its rows "
                             f"({', '.join(study.rows)}).")
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stats = row_stats(study, results)
    statuses = {row: row_status(row, results, failed) for row in study.rows}
    agreements, deltas = rank_agreement(study, stats), delta_agreement(study, stats)
    shown, skipped, paths = _write_figures(study, stats, out / "figures")
    md = out / "report.md"
    md.write_text(_markdown(study, stats, statuses, failed, agreements, deltas, shown, skipped))
    table = out / "report.csv"
    _write_csv(table, study, stats, statuses)
    paths = [str(md), str(table)] + paths
    if tensorboard:
        done = [row for row in study.rows if results.get(row)]
        paths += _write_tensorboard(study, stats, done, hparams, out / "tb")
    return paths
