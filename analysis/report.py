"""The run report: ``build_report(run_dir)`` writes ``report.md``, a self-contained ``report.html`` and PNGs.

What it reads: the run's records (:func:`analysis.load_results`, :func:`analysis.load_curves`) and its
``run.json`` (the resolved config, to load the domains for distances; see :mod:`adapt.store`). What it
writes, into ``out`` (default the run folder)::

    report.md         the report, figures linked as figures/<name>.png
    report.html       the same report with every figure embedded (base64 PNG): one file to send around
    figures/*.png     the figures
    distances.csv     the domain distances per pair (reused on the next build; the file
                      ``transferlab distances`` writes, so either can fill it)

Sections: run summary; findings; the ranked worst pairs with their evidence (gain, CI, q, flag, distances);
per method and budget > 0 a gain-vs-scratch heatmap (negative-transfer cells marked "NT") and a
target-accuracy heatmap; the negative-transfer table (vs ``scratch``), the source-effect table (vs
``target-only``, when the run has those cells), unconverged rows with what to change, the budget-0 table,
the DA-harm and budget-crossover tables; distance-vs-gain scatters with permutation tests over domains;
label-budget curves of the worst pairs; training curves of one cell (default: the worst flagged one);
failed cells. Every statistics table names its baseline and says in one sentence what its seeds can show.

Gains follow :func:`analysis.negative_transfer` (the statistics, their model and calibration are in
:mod:`analysis.negative`): ``accuracy(method) − accuracy(baseline)``, seed-paired, at the same label budget
> 0. At budget 0 no target-only baseline can train: those rows are in their own section
(:func:`analysis.negative.budget_zero`, exact tests against chance, their own FDR family), never mixed into
the negative-transfer family. With budgets > 0 but no scratch cells, gains are reported as unavailable.

The figures are bare :class:`matplotlib.figure.Figure` objects saved with the Agg renderer: no display,
no ``pyplot`` state, safe in a headless CLI.
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from adapt.errors import TransferlabError

from . import plots
from .negative import ok_rows
from .report_forecast import section_explanations, section_forecast

#: Distances the report computes per pair when ``distances.csv`` does not already hold them: each takes about
#: a second per pair on a few thousand samples. ``otdd`` reads target labels (an oracle, for analysis only).
#: ``proxy_a`` is left out: it is slow on wide features (16 s per Office-Caltech pair on 2 cores), and a
#: linear domain classifier is blind after per-domain z-scoring (every projection has mean 0 in both domains).
REPORT_DISTANCES = ("mmd2", "coral", "wasserstein", "otdd")
DISTANCES_FILE = "distances.csv"
FIGURES_DIR = "figures"
SCRATCH = "scratch"
TARGET_ONLY = "target-only"
TOP_PAIRS = 10
BUDGET_CURVE_PAIRS = 4
DPI = 110

__all__ = ["build_report", "REPORT_DISTANCES"]


# ---------------------------------------------------------------------------------------------- document
@dataclass
class _Doc:
    """A small document model rendered twice: Markdown (figures linked) and HTML (figures embedded)."""

    title: str
    blocks: list[tuple[str, Any]] = field(default_factory=list)

    def heading(self, text: str, level: int = 2) -> None:
        self.blocks.append(("heading", (level, text)))

    def para(self, text: str) -> None:
        self.blocks.append(("para", text))

    def bullets(self, items: Sequence[str]) -> None:
        if items:
            self.blocks.append(("bullets", list(items)))

    def table(self, frame: pd.DataFrame) -> None:
        self.blocks.append(("table", frame))

    def figure(self, path: Path, caption: str) -> None:
        self.blocks.append(("figure", (path, caption)))

    # ------------------------------------------------------------------ markdown
    def markdown(self, base: Path) -> str:
        lines = [f"# {self.title}", ""]
        for kind, payload in self.blocks:
            if kind == "heading":
                level, text = payload
                lines += ["#" * level + " " + text, ""]
            elif kind == "para":
                lines += [payload, ""]
            elif kind == "bullets":
                lines += [f"- {item}" for item in payload] + [""]
            elif kind == "table":
                lines += [_md_table(payload), ""]
            elif kind == "figure":
                path, caption = payload
                rel = path.relative_to(base).as_posix() if path.is_relative_to(base) else path.as_posix()
                lines += [f"![{caption}]({rel})", "", f"*{caption}*", ""]
        return "\n".join(lines).rstrip() + "\n"

    # ------------------------------------------------------------------ html
    def html(self) -> str:
        body = [f"<h1>{_inline_html(self.title)}</h1>"]
        for kind, payload in self.blocks:
            if kind == "heading":
                level, text = payload
                anchor = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
                body.append(f'<h{level} id="{anchor}">{_inline_html(text)}</h{level}>')
            elif kind == "para":
                body.append(f"<p>{_inline_html(payload)}</p>")
            elif kind == "bullets":
                body.append("<ul>" + "".join(f"<li>{_inline_html(i)}</li>" for i in payload) + "</ul>")
            elif kind == "table":
                body.append(_html_table(payload))
            elif kind == "figure":
                path, caption = payload
                data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
                body.append(f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(caption)}">'
                            f"<figcaption>{_inline_html(caption)}</figcaption></figure>")
        return _HTML_PAGE.format(title=html.escape(self.title), body="\n".join(body))


_HTML_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1150px; margin: 2em auto;
       padding: 0 1em; color: #222; line-height: 1.45; }}
h1, h2, h3 {{ line-height: 1.2; }}
h2 {{ border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 2em; }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 0.88em; }}
th, td {{ border: 1px solid #ccc; padding: 3px 8px; text-align: left; }}
th {{ background: #f2f2f2; }} tr:nth-child(even) td {{ background: #fafafa; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
code {{ background: #f3f3f3; padding: 0 3px; border-radius: 3px; }}
figure {{ margin: 1.2em 0; }} figure img {{ max-width: 100%; border: 1px solid #eee; }}
figcaption {{ font-size: 0.9em; color: #555; }}
</style>
</head>
<body>
{body}
</body>
</html>
"""


def _inline_html(text: str) -> str:
    """Escape, then render the two inline markups the report uses: `code` and **bold**."""
    out = html.escape(str(text))
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)


def _cell_text(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def _md_table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "*(no rows)*"
    cols = [str(c) for c in frame.columns]
    esc = lambda s: _cell_text(s).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = ["| " + " | ".join(esc(c) for c in cols) + " |",
             "|" + "|".join("---:" if _numeric_column(frame[c]) else "---" for c in frame.columns) + "|"]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(esc(v) for v in row) + " |")
    return "\n".join(lines)


def _html_table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "<p><em>(no rows)</em></p>"
    numeric = [_numeric_column(frame[c]) for c in frame.columns]
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for row in frame.itertuples(index=False):
        cells = "".join(f'<td class="num">{html.escape(_cell_text(v))}</td>' if num
                        else f"<td>{html.escape(_cell_text(v))}</td>" for v, num in zip(row, numeric))
        rows.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


_NUMBER = re.compile(r"^[\s+\-−]?[\d.]+(e[+-]?\d+)?%?$|^$|^\[.*\]$")


def _numeric_column(col: pd.Series) -> bool:
    return all(bool(_NUMBER.match(_cell_text(v))) for v in col)


# ---------------------------------------------------------------------------------------------- formatting
def _pts(x, signed: bool = True) -> str:
    """A fraction as accuracy points, e.g. ``-0.0412`` → ``-4.1``."""
    if x is None or not np.isfinite(x):
        return "n/a"
    return f"{100 * x:+.1f}" if signed else f"{100 * x:.1f}"


def _ci(lo, hi) -> str:
    if lo is None or hi is None or not (np.isfinite(lo) and np.isfinite(hi)):
        return "n/a"
    return f"[{100 * lo:+.1f}, {100 * hi:+.1f}]"


def _p(x) -> str:
    if x is None or not np.isfinite(x):
        return "n/a"
    if x == 0:
        return "0"
    return f"{x:.2g}" if x >= 1e-3 else f"{x:.1e}"


def _num(x) -> str:
    if x is None or not np.isfinite(x):
        return "n/a"
    return f"{x:.3g}"


def _pair(s, t) -> str:
    return f"{s} → {t}"


def _slug(*parts) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", "_".join(str(p) for p in parts)).strip("-")


# ---------------------------------------------------------------------------------------------- inputs
def _read_run_json(run_dir: Path) -> dict:
    path = run_dir / "run.json"
    if not path.is_file():
        return {}
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        warnings.warn(f"{path}: unreadable ({err}); the report goes on without the run's config",
                      stacklevel=3)
        return {}
    return info if isinstance(info, dict) else {}


def _load_domains(run_info: dict, run_dir: Path):
    """The run's domains from its recorded config; the config's folder resolves relative data paths."""
    from adapt.config import parse_config
    from adapt.domains import load_domains

    raw = run_info.get("config")
    if not isinstance(raw, Mapping):
        raise TransferlabError("run.json holds no config")
    cfg = parse_config(dict(raw), source=f"{run_dir / 'run.json'} (config)")
    candidates = []
    if run_info.get("config_path"):
        candidates.append(Path(run_info["config_path"]).parent)
    candidates += [Path.cwd(), run_dir]
    last = None
    for base in candidates:
        try:
            domains = load_domains(cfg.data, base)
        except TransferlabError as err:  # a relative data path that does not resolve from here
            last = err
            continue
        from adapt.identity import verify_fingerprints

        verify_fingerprints(domains, run_info.get("fingerprints"), str(run_dir),
                            "distances would describe other data than the records")
        return domains
    raise last


def _distances(run_info: dict, run_dir: Path, out: Path, pairs: list[tuple[str, str]],
               which: Sequence[str]) -> tuple[pd.DataFrame | None, str]:
    """The distance table ``source, target, <distance>...`` and a sentence on where it came from."""
    for path in (out / DISTANCES_FILE, run_dir / DISTANCES_FILE):
        if path.is_file():
            try:
                table = pd.read_csv(path)
            except (OSError, ValueError):
                continue
            have = set(zip(table.get("source", []), table.get("target", [])))
            if {"source", "target"} <= set(table.columns) and set(pairs) <= have:
                return table, f"read from `{path}`"
    if not which:
        return None, "not computed (no distances asked for)"
    try:
        domains = _load_domains(run_info, run_dir)
    except Exception as err:  # noqa: BLE001 - a report without distances is still a report
        return None, f"unavailable: cannot load the run's domains ({type(err).__name__}: {err})"
    from .distances import domain_distances

    rows = []
    for s, t in pairs:
        if s not in domains or t not in domains:
            continue
        a, b = domains[s], domains[t]
        if a.kind == "text" or b.kind == "text":
            return None, "unavailable: text domains have no input-space distances (encode them first)"
        xs = np.asarray(a.X, dtype=np.float64).reshape(len(a.X), -1)
        xt = np.asarray(b.X, dtype=np.float64).reshape(len(b.X), -1)
        rows.append({"source": s, "target": t,
                     **domain_distances(xs, xt, a.y, b.y, which=list(which), seed=0)})
    if not rows:
        return None, "unavailable: none of the run's pairs are in its domains"
    table = pd.DataFrame(rows)
    try:
        out.mkdir(parents=True, exist_ok=True)
        table.to_csv(out / DISTANCES_FILE, index=False)
        where = (f"computed on the inputs as the config loads them (after its preprocessing; images "
                 f"flattened) and written to `{out / DISTANCES_FILE}`")
    except OSError:
        where = "computed on the inputs as the config loads them (after its preprocessing; images flattened)"
    return table, where


# ---------------------------------------------------------------------------------------------- analysis
@dataclass
class _Analysis:
    df: pd.DataFrame
    ok: pd.DataFrame
    run_info: dict
    domains: list[str]
    methods: list[str]
    budgets: list[int]
    has_scratch: bool
    nt: pd.DataFrame | None = None  # tested rows vs scratch (budget > 0, baseline present, converged)
    nt_all: pd.DataFrame | None = None  # every row of negative_transfer, unconverged and no-baseline included
    source: pd.DataFrame | None = None  # tested rows vs target-only (the source's own effect)
    source_all: pd.DataFrame | None = None
    zero: pd.DataFrame | None = None  # budget_zero: accuracy vs chance, exact tests, own family
    outcomes: pd.DataFrame | None = None
    harm: pd.DataFrame | None = None
    crossover: pd.DataFrame | None = None
    dist: pd.DataFrame | None = None
    dist_note: str = ""
    notes: dict[str, str] = field(default_factory=dict)


def _analyse(run_dir: Path, out: Path, distances: Sequence[str], alpha: float) -> _Analysis:
    from . import negative
    from .results import load_outcomes, load_results

    with warnings.catch_warnings():  # the header says it instead (other_records)
        warnings.simplefilter("ignore")
        df = load_results(run_dir)
    run_info = _read_run_json(run_dir)
    ok = ok_rows(df)
    domains = [d for d in run_info.get("domains") or [] if d in set(df["source"]) | set(df["target"])]
    domains = domains or plots.domain_order(df)
    methods = list(dict.fromkeys(m["label"] for m in (run_info.get("config") or {}).get("methods", [])
                                 if isinstance(m, Mapping) and "label" in m))
    methods = [m for m in methods if m in set(df["method"])] + sorted(set(df["method"]) - set(methods))
    budgets = sorted(int(b) for b in df["budget"].dropna().unique())
    a = _Analysis(df=df, ok=ok, run_info=run_info, domains=domains, methods=methods, budgets=budgets,
                  has_scratch=bool((ok["method"] == SCRATCH).any()))

    transfer_methods = [m for m in methods if m not in negative.BASELINES]
    try:
        a.outcomes = load_outcomes(run_dir)
    except TransferlabError:
        a.outcomes = None
    tested = ("negative", "positive", "inconclusive")
    if transfer_methods and len(ok):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            a.nt_all = negative.negative_transfer(df, alpha=alpha, outcomes=a.outcomes)
        usable = a.nt_all[a.nt_all["flag"].isin(tested)]
        a.nt = usable.reset_index(drop=True) if len(usable) else None
        if a.nt is None and (a.nt_all["flag"] == "unconverged").any():
            a.notes["gain"] = ("No row could be tested: every (pair, method, budget > 0) row with a `scratch` "
                               "baseline has an arm that had not converged (see **Unconverged rows**).")
        elif a.nt is None:
            zero = " (budget-0 rows have their own section: no baseline can train without labels)" \
                if 0 in budgets else ""
            a.notes["gain"] = ("Gains vs scratch are unavailable: the run has no finished `scratch` cells "
                               f"paired with a transfer method at a budget > 0{zero}.")
        if (ok["method"] == TARGET_ONLY).any():
            a.source_all = negative.negative_transfer(df, alpha=alpha, baseline=TARGET_ONLY,
                                                      outcomes=a.outcomes)
            src = a.source_all[a.source_all["flag"].isin(tested)]
            a.source = src.reset_index(drop=True) if len(src) else None
        if (pd.to_numeric(ok["budget"], errors="coerce") == 0).any():
            a.zero = negative.budget_zero(df, alpha=alpha, outcomes=a.outcomes)
    else:
        a.notes["gain"] = ("Gains vs scratch are unavailable: the run has no transfer method with finished "
                           "cells.")

    da = [m for m in transfer_methods if m != "finetune"]
    if "finetune" in set(ok["method"]) and da:
        a.harm = negative.da_harm(df, alpha=alpha, outcomes=a.outcomes)
    else:
        a.notes["harm"] = ("DA harm needs `finetune` and at least one other adaptation method with finished "
                           "cells; this run has " + ", ".join(f"`{m}`" for m in methods) + ".")
    if a.nt is not None and a.nt.groupby(["source", "target", "method"])["budget"].nunique().max() > 1:
        a.crossover = negative.budget_crossover(df)
    else:
        a.notes["crossover"] = "Budget crossover needs gains at two or more budgets for one pair and method."

    pairs = [tuple(p) for p in run_info.get("pairs") or []]
    pairs = pairs or list(dict.fromkeys(zip(df["source"], df["target"])))
    pairs = [p for p in pairs if p[0] != p[1]]
    a.dist, a.dist_note = _distances(run_info, run_dir, out, pairs, distances)
    return a


def _distance_columns(a: _Analysis) -> list[str]:
    if a.dist is None:
        return []
    return [c for c in a.dist.columns if c not in ("source", "target")
            and pd.api.types.is_numeric_dtype(a.dist[c])]


def _with_distances(table: pd.DataFrame, a: _Analysis) -> pd.DataFrame:
    cols = _distance_columns(a)
    if not cols:
        return table
    return table.merge(a.dist[["source", "target", *cols]], on=["source", "target"], how="left")


def _worst(a: _Analysis, top: int) -> pd.DataFrame:
    """NT rows, flagged first, then by gain (lowest first)."""
    nt = a.nt.assign(_flag=[not plots.is_flagged(f) for f in a.nt["flag"]])
    return nt.sort_values(["_flag", "gain"], kind="mergesort").drop(columns="_flag").head(top)


# ---------------------------------------------------------------------------------------------- the cell
def _pick_cell(a: _Analysis, cell) -> tuple[dict, str]:
    """Filters for :func:`load_curves` and a sentence saying which cell and why."""
    keys = ("source", "target", "method", "budget", "seed")
    if cell is None:
        if a.nt is not None:
            flagged = a.nt[[plots.is_flagged(f) for f in a.nt["flag"]]]
            if len(flagged):
                row = flagged.sort_values("gain", kind="mergesort").iloc[0]
                why = "the worst flagged cell (lowest gain among the negative-transfer flags)"
            else:
                row = a.nt.sort_values("gain", kind="mergesort").iloc[0]
                why = "no cell is flagged; the cell with the lowest gain"
        else:
            transfer = a.ok[a.ok["method"] != SCRATCH]
            pool = transfer if len(transfer) else a.ok
            if not len(pool):
                return {}, "no finished cell to show"
            grp = pool.groupby(["source", "target", "method", "budget"])["accuracy"].mean().sort_values()
            row = dict(zip(["source", "target", "method", "budget"], grp.index[0]))
            why = "gains are unavailable; the cell with the lowest mean accuracy"
        filters = {k: _plain(row[k]) for k in keys[:4]}
        return filters, why
    if isinstance(cell, str):
        hit = a.df[(a.df.get("cell_id") == cell) | (a.df.get("key") == cell)]
        if hit.empty:
            raise TransferlabError(f"build_report: no cell record with key {cell!r} in the run")
        row = hit.iloc[0]
        return {k: _plain(row[k]) for k in keys}, f"the cell asked for (`{cell}`)"
    if isinstance(cell, Mapping):
        unknown = sorted(set(cell) - set(keys))
        if unknown:
            raise TransferlabError(f"build_report: cell filters must be among {list(keys)}, got {unknown}")
        return dict(cell), "the cell asked for"
    if isinstance(cell, (tuple, list)) and 2 <= len(cell) <= 5:
        return dict(zip(keys, cell)), "the cell asked for"
    raise TransferlabError("build_report: cell must be a record key, a mapping of source/target/method/budget"
                           f"/seed, or a (source, target, method, budget[, seed]) tuple; got {cell!r}")


def _plain(v):
    if isinstance(v, np.generic):
        return v.item()
    return v


def _describe_filters(filters: Mapping) -> str:
    parts = []
    if "source" in filters and "target" in filters:
        parts.append(_pair(filters["source"], filters["target"]))
    if "method" in filters:
        parts.append(str(filters["method"]))
    if "budget" in filters:
        parts.append(f"budget {filters['budget']}")
    if "seed" in filters:
        parts.append(f"seed {filters['seed']}")
    return ", ".join(parts)


# ---------------------------------------------------------------------------------------------- build
class _Figures:
    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.written: list[Path] = []

    def save(self, fig, name: str) -> Path:
        path = self.folder / f"{_slug(name)}.png"
        fig.savefig(path, dpi=DPI, facecolor="white")
        self.written.append(path)
        return path


def build_report(run_dir: str | Path, cell=None, out: str | Path | None = None, *,
                 distances: Sequence[str] = REPORT_DISTANCES, alpha: float = 0.05,
                 top: int = TOP_PAIRS) -> Path:
    """Build the report of a run folder; returns the path of ``report.md`` (``report.html`` is beside it).

    Parameters
    ----------
    run_dir : str or Path
        A run folder (``results/<name>``: ``run.json`` and ``cells/*.json``).
    cell : optional
        Which cell's training curves to show: a record key (``cells/<key>.json``), a mapping of some of
        ``source, target, method, budget, seed``, or a ``(source, target, method, budget[, seed])`` tuple.
        Default: the worst flagged cell (lowest gain among rows flagged negative transfer), all its seeds.
    out : str or Path, optional
        Folder for ``report.md``, ``report.html``, ``figures/`` and ``distances.csv`` (default ``run_dir``).
    distances : sequence of str
        Distances (names of ``analysis.distances.DISTANCES``) to compute per pair when no
        ``distances.csv`` covers the run's pairs; ``()`` skips them.
    alpha : float
        FDR level of the negative-transfer and DA-harm flags.
    top : int
        Rows of the ranked worst-pairs table.
    """
    run_dir = Path(run_dir)
    out = Path(out) if out is not None else run_dir
    a = _analyse(run_dir, out, distances, alpha)
    chosen = _pick_cell(a, cell)  # a bad ``cell`` fails here, before any figure is drawn
    figs = _Figures(out / FIGURES_DIR)
    for stale in figs.folder.glob("*.png"):
        stale.unlink()
    name = a.run_info.get("name") or run_dir.name
    doc = _Doc(title=f"Transfer report: {name}")

    _section_run(doc, a, run_dir)
    _section_findings(doc, a, alpha)
    _section_worst(doc, a, top)
    _section_gain_heatmaps(doc, a, figs)
    _section_accuracy_heatmaps(doc, a, figs)
    _section_tables(doc, a)
    _section_distances(doc, a, figs)
    _section_budget_curves(doc, a, figs)
    _section_training(doc, a, figs, run_dir, chosen)
    section_forecast(doc, run_dir)
    section_explanations(doc, run_dir)
    _section_failed(doc, a)
    doc.heading("Reproduce")
    doc.para(f"`transferlab report {run_dir}` rebuilds this report from the records; "
             f"`analysis.report.build_report(run_dir, cell=...)` picks another cell for the training curves.")

    out.mkdir(parents=True, exist_ok=True)
    md_path, html_path = out / "report.md", out / "report.html"
    md_path.write_text(doc.markdown(out), encoding="utf-8")
    html_path.write_text(doc.html(), encoding="utf-8")
    return md_path


# ---------------------------------------------------------------------------------------------- sections
def _section_run(doc: _Doc, a: _Analysis, run_dir: Path) -> None:
    cfg = a.run_info.get("config") or {}
    n_ok = len(a.ok)
    n_failed = int((a.df["status"].astype(str) != "ok").sum())
    items = [f"run folder: `{run_dir}`",
             f"data: `{(cfg.get('data') or {}).get('kind', '?')}`; domains: " + ", ".join(a.domains),
             "methods: " + ", ".join(f"`{m}`" for m in a.methods),
             "budgets (target labels per class): " + ", ".join(map(str, a.budgets)),
             f"seeds: {len(cfg.get('seeds') or a.df['seed'].dropna().unique())}",
             f"cells: {len(a.df)} recorded, {n_ok} finished, {n_failed} failed"]
    expected = len(a.run_info.get("cells") or [])
    if expected and expected != len(a.df):
        items[-1] += f" ({expected} expected by run.json: {expected - len(a.df)} missing)"
    others = int(a.df.attrs.get("other_records", 0))
    if others:
        items.append(f"{others} other record(s) in `cells/` belong to cells this config does not ask for (an "
                     f"earlier question of this folder, see run.json's history); not reported here")
    git = a.run_info.get("git") or {}
    if isinstance(git, Mapping) and git.get("commit"):
        items.append(f"code: git `{str(git['commit'])[:12]}`" + (" (dirty)" if git.get("dirty") else ""))
    if cfg.get("train"):
        tr = cfg["train"]
        items.append(f"training: {tr.get('steps')} steps, batch {tr.get('batch_size')}, lr {tr.get('lr')}, "
                     f"selection `{tr.get('selection', 'last')}`; "
                     f"model `{(cfg.get('model') or {}).get('backbone')}`")
    items.append(f"report built {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}")
    doc.heading("Run")
    doc.bullets(items)


def _section_findings(doc: _Doc, a: _Analysis, alpha: float) -> None:
    doc.heading("Findings")
    items = []
    if a.nt is not None:
        flagged = a.nt[a.nt["flag"] == "negative"]
        items.append(f"**{len(flagged)} of {len(a.nt)}** tested (pair, method, budget > 0) rows are flagged "
                     f"negative transfer: gain vs `scratch` significantly below −min_effect (moderated t, "
                     f"Benjamini–Hochberg q < {alpha} among the loss tests).")
        for row in flagged.sort_values("gain").head(5).itertuples():
            items.append(f"NT: {_pair(row.source, row.target)}, `{row.method}`, budget {row.budget}: gain "
                         f"{_pts(row.gain)} points, 95% CI {_ci(row.ci_low, row.ci_high)}, q = {_p(row.q_value)}")
        if flagged.empty:
            for row in a.nt[a.nt["gain"] < 0].sort_values("gain").head(3).itertuples():
                items.append(f"Largest loss, not significant: {_pair(row.source, row.target)}, "
                             f"`{row.method}`, budget {row.budget}: gain {_pts(row.gain)} points, 95% CI "
                             f"{_ci(row.ci_low, row.ci_high)}, q = {_p(row.q_value)}")
        positive = int((a.nt["flag"] == "positive").sum())
        rest = len(a.nt) - positive - len(flagged)
        items.append(f"{positive} row{'s' if positive != 1 else ''} show{'s' if positive == 1 else ''} "
                     f"significant positive transfer; {rest} {'are' if rest != 1 else 'is'} inconclusive at "
                     f"{_seed_text(a.nt)}. {_power_sentence(a.nt)}")
    if "gain" in a.notes:
        items.append(a.notes["gain"])
    if a.nt_all is not None:
        unconv = int((a.nt_all["flag"] == "unconverged").sum())
        orphans = int((a.nt_all["flag"] == "no-baseline").sum())
        if unconv:
            items.append(f"{unconv} row{'s' if unconv != 1 else ''} not tested because an arm had not "
                         f"converged (see **Unconverged rows**).")
        if orphans:
            items.append(f"{orphans} row{'s' if orphans != 1 else ''} without a `scratch` run on the same "
                         f"seeds: `no-baseline`, not compared with anything.")
    if a.source is not None:
        neg = a.source[a.source["flag"] == "negative"]
        items.append(f"Source effect (vs `target-only`, same initial weights): {len(neg)} of {len(a.source)} "
                     f"rows significantly worse — the source domain itself hurts there.")
    if a.zero is not None and len(a.zero):
        above = int((a.zero["flag"] == "above-chance").sum())
        below = int((a.zero["flag"] == "below-chance").sum())
        items.append(f"Budget 0 (no target labels; its own table and FDR family): {above} of {len(a.zero)} "
                     f"rows above chance, {below} below chance (exact binomial tests on the pooled test "
                     f"counts).")
    if a.harm is not None:
        harm = a.harm[a.harm["flag"] == "harm"]
        tested = int(a.harm["flag"].isin(["harm", "help", "inconclusive"]).sum())
        unconv = int((a.harm["flag"] == "unconverged").sum())
        items.append(f"DA harm: {len(harm)} of {tested} tested adaptation rows are significantly worse than "
                     f"plain `finetune` on the same pair" + (f" ({unconv} more not tested: an arm had not "
                                                             f"converged)" if unconv else "")
                     + (":" if len(harm) else "."))
        for row in harm.sort_values("gain").head(5).itertuples():
            items.append(f"harm: {_pair(row.source, row.target)}, `{row.method}`, budget {row.budget}: "
                         f"{_pts(row.gain)} points vs finetune, 95% CI {_ci(row.ci_low, row.ci_high)}, "
                         f"q = {_p(row.q_value)}")
    if a.nt is not None and a.dist is not None:
        corr = _correlations(a)
        if corr is not None and corr["rho"].notna().any():
            best = corr.loc[corr["rho"].abs().idxmax()]
            n_tried = int(corr["rho"].notna().sum())
            verdict = ("significant after adjusting for the distances tried"
                       if best["p_adjusted"] < alpha else "not significant once the distances tried are "
                       "accounted for")
            items.append(f"Strongest distance–gain association of {n_tried} tried: `{best['distance']}` for "
                         f"`{best['method']}` at budget {best['budget']} (Spearman ρ = {best['rho']:+.2f}, "
                         f"n = {int(best['n'])} pairs of {int(best['n_domains'])} domains; permutation over "
                         f"domains p = {_p(best['p_value'])}, max-statistic adjusted p = "
                         f"{_p(best['p_adjusted'])}: {verdict}).")
    doc.bullets(items or ["No finished cells."])


def _power_sentence(table: pd.DataFrame) -> str:
    """One sentence on what the table's seeds can show: typical detectable loss, seeds an effect needs."""
    mde = table["mde"].to_numpy(float)
    mde = mde[np.isfinite(mde)]
    if not len(mde):
        return ""
    text = (f"With these seeds a loss is detected (80% power, per-test level) from about "
            f"{100 * np.median(mde):.1f} points (median over rows; {100 * mde.min():.1f}–{100 * mde.max():.1f})")
    need = table.loc[table["flag"] == "inconclusive", "seeds_needed"].to_numpy(float)
    finite = need[np.isfinite(need)]
    if len(finite):
        text += (f"; the inconclusive rows' observed effects would need a median of {int(np.median(finite))} "
                 f"seeds")
    unreachable = int((~np.isfinite(need)).sum())
    if unreachable:
        text += f" ({unreachable} are within the margin or need more than 1000)"
    return text + "."


def _seed_text(nt: pd.DataFrame) -> str:
    n = nt["n_seeds"].dropna()
    if n.empty:
        return "this number of seeds"
    low, high = int(n.min()), int(n.max())
    return f"{high} seeds" if low == high else f"{low}–{high} seeds"


def _section_worst(doc: _Doc, a: _Analysis, top: int) -> None:
    doc.heading("Worst pairs")
    if a.nt is None:
        doc.para(a.notes.get("gain", "Gains unavailable."))
        return
    worst = _with_distances(_worst(a, top), a)
    rows = []
    for rank, r in enumerate(worst.itertuples(index=False), 1):
        d = r._asdict()
        row = {"rank": rank, "pair": _pair(d["source"], d["target"]), "method": d["method"],
               "budget": d["budget"], "gain (pts)": _pts(d["gain"]), "95% CI": _ci(d["ci_low"], d["ci_high"]),
               "q": _p(d["q_value"]), "flag": d["flag"], "vs": d["baseline"], "seeds": d["n_seeds"]}
        for col in _distance_columns(a):
            row[col] = _num(d.get(col))
        rows.append(row)
    doc.para("Ranked: flagged rows first, then by gain. Gains in accuracy points (method − baseline, "
             "seed-paired; `vs` names the baseline). " + (f"Distances: {a.dist_note}." if a.dist is not None
                                                            else f"Distances {a.dist_note}."))
    doc.table(pd.DataFrame(rows))


def _section_gain_heatmaps(doc: _Doc, a: _Analysis, figs: _Figures) -> None:
    doc.heading("Gain vs scratch")
    shown = None if a.nt_all is None else a.nt_all[a.nt_all["flag"].isin(
        ["negative", "positive", "inconclusive", "unconverged"])]
    if shown is None or shown.empty:
        doc.para(a.notes.get("gain", "Gains unavailable."))
        return
    if "gain" in a.notes:
        doc.para(a.notes["gain"])
    doc.para("Mean gain in accuracy points, sources as rows and targets as columns; blue: transfer beats the "
             "baseline, red: it loses, white: no difference. Boxed, hatched cells marked **NT** are flagged "
             f"negative transfer; cells marked `{plots.UNCONVERGED_MARK}` had an arm that had not converged "
             "and are not tested. The heatmaps of one budget share their colour scale.")
    for method in a.methods:
        for budget in a.budgets:
            sel = shown[(shown["method"] == method) & (shown["budget"] == budget)]
            if sel.empty:
                continue
            limit = plots.gain_limit(shown[shown["budget"] == budget])
            fig = plots.gain_heatmap(shown, method, budget, domains=a.domains, limit=limit)
            doc.figure(figs.save(fig, f"gain_{method}_b{budget}"),
                       f"Gain of {method} vs scratch, {budget} target labels per class")


def _section_accuracy_heatmaps(doc: _Doc, a: _Analysis, figs: _Figures) -> None:
    doc.heading("Target accuracy")
    if not len(a.ok):
        doc.para("No finished cells.")
        return
    for method in a.methods:
        for budget in a.budgets:
            if not ((a.df["method"] == method) & (a.df["budget"] == budget)).any():
                continue
            fig = plots.accuracy_heatmap(a.df, method, budget, domains=a.domains)
            doc.figure(figs.save(fig, f"accuracy_{method}_b{budget}"),
                       f"Target test accuracy of {method}, {budget} target labels per class "
                       f"(mean over seeds)")


def _fmt_stats(table: pd.DataFrame, ref_col: str, ref_name: str) -> pd.DataFrame:
    return pd.DataFrame({
        "pair": [_pair(s, t) for s, t in zip(table["source"], table["target"])],
        "method": table["method"], "budget": table["budget"],
        "gain (pts)": [_pts(g) for g in table["gain"]],
        "95% CI": [_ci(lo, hi) for lo, hi in zip(table["ci_low"], table["ci_high"])],
        "p": [_p(p) for p in table["p_value"]], "q": [_p(q) for q in table["q_value"]],
        "flag": table["flag"], "seeds": table["n_seeds"],
        "accuracy (%)": [_pts(x, signed=False) for x in table["mean_accuracy"]],
        ref_name: [_pts(x, signed=False) for x in table[ref_col]],
        "margin (pts)": [_pts(x, signed=False) for x in table["min_effect"]],
        "MDE (pts)": [_pts(x, signed=False) for x in table["mde"]],
        "seeds needed": [("" if not np.isfinite(v) else ">1000" if np.isinf(v) else str(int(v)))
                         if isinstance(v, float) else "" for v in table["seeds_needed"].astype(float)],
        "note": table["note"],
    })


_STATS_NOTE = ("Moderated t over seeds (variances shrunk toward the family's pooled variance; Smyth 2004), "
               "one-sided per direction against the margin (`margin`: one test example), Benjamini–Hochberg "
               "q per direction over the tested rows at budget > 0. `MDE`: the loss detectable with 80% power "
               "at the row's variance and seeds; `seeds needed`: for inconclusive rows, the seeds at which the "
               "observed effect would be detected. Zero-variance and one-seed rows never get p = 0 (an exact "
               "McNemar test on the per-example outcomes is added where recorded; `note`).")


def _section_tables(doc: _Doc, a: _Analysis) -> None:
    doc.heading("Negative transfer")
    if a.nt is None:
        doc.para(a.notes.get("gain", "Gains unavailable."))
    else:
        doc.para("Baseline: **`scratch`** (random init, target labels only, same seed and budget): does "
                 "transfer beat training from nothing? " + _STATS_NOTE + " " + _power_sentence(a.nt))
        doc.table(_fmt_stats(a.nt, "mean_scratch", "scratch acc (%)"))
    if a.nt_all is not None:
        orphans = a.nt_all[a.nt_all["flag"] == "no-baseline"]
        if len(orphans):
            doc.para(f"`no-baseline` ({len(orphans)} rows, not tested, never compared with chance): "
                     + ", ".join(f"{_pair(r.source, r.target)} `{r.method}` budget {r.budget}"
                                 for r in orphans.head(20).itertuples()) + ("…" if len(orphans) > 20 else "."))

    if a.source is not None:
        doc.heading("Source effect (vs target-only)")
        doc.para("Baseline: **`target-only`** (the transfer methods' initial weights, target labels only): "
                 "does the *source domain* help, beyond the initialisation? (Wang et al.'s negative-transfer "
                 "gap.) " + _STATS_NOTE + " " + _power_sentence(a.source))
        doc.table(_fmt_stats(a.source, "mean_scratch", "target-only acc (%)"))

    _section_unconverged(doc, a)
    _section_budget_zero(doc, a)

    doc.heading("DA harm")
    if a.harm is None:
        doc.para(a.notes.get("harm", "Unavailable."))
    else:
        tested = a.harm[a.harm["flag"].isin(["harm", "help", "inconclusive"])]
        doc.para("Baseline: **`finetune`** on the same pair, seed and budget: does the adaptation term help or "
                 "harm? `harm` when significantly worse. Budget 0 and budget > 0 are separate FDR families. "
                 + _STATS_NOTE + " " + _power_sentence(tested))
        doc.table(_fmt_stats(a.harm, "mean_reference", "finetune acc (%)"))

    doc.heading("Budget crossover")
    if a.crossover is None:
        doc.para(a.notes.get("crossover", "Unavailable."))
    else:
        doc.para("`crossover_budget`: the smallest label budget from which scratch beats the method at that "
                 "and every larger budget (point estimates); `support`: the share of bootstrap resamples of the "
                 "seeds with a crossover, `95% CI` its percentile interval (`inf`: no crossover within the "
                 "budgets run); `confirmed`: the loss at the largest budget is flagged `negative`. A crossover "
                 "that is not confirmed is a point estimate, not a finding.")
        cross = a.crossover.copy()
        cross.insert(0, "pair", [_pair(s, t) for s, t in zip(cross.pop("source"), cross.pop("target"))])
        for col in ("crossover_budget", "first_negative_budget"):
            cross[col] = [("" if not np.isfinite(v) else str(int(v))) for v in cross[col].astype(float)]
        cross["95% CI"] = [("" if not np.isfinite(lo) else f"[{lo:g}, {hi:g}]")
                           for lo, hi in zip(cross.pop("ci_low").astype(float),
                                             cross.pop("ci_high").astype(float))]
        cross["support"] = [_num(v) for v in cross["support"]]
        doc.table(cross)


def _section_unconverged(doc: _Doc, a: _Analysis) -> None:
    tables = [(name, t[t["flag"] == "unconverged"]) for name, t in (("scratch", a.nt_all),
                                                                    ("target-only", a.source_all))
              if t is not None]
    rows = pd.concat([t.assign(vs=name) for name, t in tables if len(t)], ignore_index=True) \
        if any(len(t) for _, t in tables) else None
    if rows is None:
        return
    doc.heading("Unconverged rows")
    doc.para("These rows are **not** tested and never flagged `negative` or `positive`: an arm's training loss "
             "was still falling (or its labelled-target accuracy still climbing) at the end of a phase, so the "
             "gain measures where training stopped, not transfer. To decide them, train longer "
             "(`train.steps`) or with a larger learning rate (`train.lr`), or a schedule that ends lower "
             "(`train.lr_schedule`), then rerun these cells (`transferlab run` resumes).")
    doc.table(pd.DataFrame({
        "pair": [_pair(s, t) for s, t in zip(rows["source"], rows["target"])], "method": rows["method"],
        "budget": rows["budget"], "vs": rows["vs"], "gain (pts)": [_pts(g) for g in rows["gain"]],
        "seeds": rows["n_seeds"], "why": rows["convergence_reason"]}))


def _section_budget_zero(doc: _Doc, a: _Analysis) -> None:
    if a.zero is None or not len(a.zero):
        return
    z = a.zero
    doc.heading("Budget 0 (no target labels)")
    doc.para("Without target labels no target-only baseline can train, so these rows are not in the "
             "negative-transfer family. Accuracy over the test counts pooled over seeds, with the exact "
             "(Clopper–Pearson) 95% interval; one-sided exact binomial tests against chance (1/K), and, "
             "where per-example outcomes are recorded, an exact McNemar test against the source-only model "
             "(`finetune` at budget 0) on the same test examples; all p-values of this table form one "
             "Benjamini–Hochberg family of their own. Pooling treats test predictions as independent, so "
             "these say whether the model family is above chance on these test sets, not how it varies "
             f"over seeds. With {int(z['n'].median()) if z['n'].notna().any() else 'n/a'} pooled test "
             "predictions per row (median), the interval is about ±"
             f"{_half_width(z)} points wide.")
    doc.table(pd.DataFrame({
        "pair": [_pair(s, t) for s, t in zip(z["source"], z["target"])], "method": z["method"],
        "seeds": z["n_seeds"], "accuracy (%)": [_pts(x, signed=False) for x in z["accuracy"]],
        "exact 95% CI": [_ci(lo, hi).replace("+", "") for lo, hi in zip(z["ci_low"], z["ci_high"])],
        "chance (%)": [_pts(x, signed=False) for x in z["chance"]],
        "correct / n": [f"{int(k)}/{int(n)}" if np.isfinite(n) else "n/a"
                        for k, n in zip(z["correct"], z["n"])],
        "q above": [_p(q) for q in z["q_above"]], "q below": [_p(q) for q in z["q_below"]], "flag": z["flag"],
        "vs finetune (pts)": [_pts(g) for g in z["gain_vs_reference"]],
        "q vs finetune": [_p(q) for q in z["q_vs_reference"]], "flag vs finetune": z["flag_vs_reference"],
        "converged": ["yes" if c else "no" for c in z["converged"]]}))


def _half_width(z: pd.DataFrame) -> str:
    w = (z["ci_high"] - z["ci_low"]).to_numpy(float) / 2
    w = w[np.isfinite(w)]
    return f"{100 * np.median(w):.1f}" if len(w) else "n/a"


def _correlations(a: _Analysis) -> pd.DataFrame | None:
    from .predictors import distance_gain_correlation

    cols = _distance_columns(a)
    if a.nt is None or not cols:
        return None
    return distance_gain_correlation(a.nt, a.dist, columns=cols, by=("method", "budget"))


def _section_distances(doc: _Doc, a: _Analysis, figs: _Figures) -> None:
    doc.heading("Distances vs gain")
    cols = _distance_columns(a)
    if not cols:
        doc.para(f"Domain distances {a.dist_note}.")
        return
    doc.para(f"Distances between the inputs of each pair ({a.dist_note}). `otdd`/`class_w2` read the "
             f"target labels (oracle quantities for analysis, not for model selection).")
    dist = a.dist.copy()
    dist.insert(0, "pair", [_pair(s, t) for s, t in zip(dist.pop("source"), dist.pop("target"))])
    for c in cols:
        dist[c] = [_num(v) for v in dist[c]]
    doc.table(dist)
    if a.nt is None:
        doc.para(a.notes.get("gain", "Gains unavailable") + " No distance–gain scatter.")
        return
    corr = _correlations(a)
    if corr is not None and len(corr):
        doc.para("Spearman rank correlation of each distance with the gain (a harm predictor has ρ < 0). The "
                 "pairs share domains, so `p_value` permutes the domain labels of the distance matrix (Mantel/QAP; "
                 "with D domains no p below 1/D! exists: 1/24 for 4), and `p_adjusted` corrects for the "
                 "distances tried (max-statistic); `p_spearman` wrongly treats the pairs as independent and "
                 "is shown for reference only.")
        doc.table(corr.assign(rho=[_num(v) for v in corr["rho"]], p_value=[_p(v) for v in corr["p_value"]],
                              p_adjusted=[_p(v) for v in corr["p_adjusted"]],
                              p_spearman=[_p(v) for v in corr["p_spearman"]]))
    joined = _with_distances(a.nt, a)
    ncol = min(3, len(cols))
    nrow = math.ceil(len(cols) / ncol)
    from matplotlib.figure import Figure

    for budget in a.budgets:
        part = joined[joined["budget"] == budget]
        if part.empty:
            continue
        fig = Figure(figsize=(5.6 * ncol, 4.3 * nrow), layout="constrained")
        axes = fig.subplots(nrow, ncol, squeeze=False).ravel()
        for ax, col in zip(axes, cols):
            plots.distance_gain_scatter(part, col, ax=ax)
        for ax in axes[len(cols):]:
            ax.set_axis_off()
        fig.suptitle(f"Gain vs scratch against domain distance, {budget} target labels per class")
        doc.figure(figs.save(fig, f"distance_gain_b{budget}"),
                   f"Gain vs distance at budget {budget}; black rings: flagged NT")


def _section_budget_curves(doc: _Doc, a: _Analysis, figs: _Figures) -> None:
    doc.heading("Label-budget curves")
    if not len(a.ok):
        doc.para("No finished cells.")
        return
    if a.nt is not None:
        pairs = list(dict.fromkeys(zip(_worst(a, len(a.nt))["source"], _worst(a, len(a.nt))["target"])))
        why = "the worst pairs (as ranked above)"
    else:
        means = a.ok.groupby(["source", "target"])["accuracy"].mean().sort_values()
        pairs = list(means.index)
        why = "the pairs with the lowest mean accuracy"
    pairs = pairs[:BUDGET_CURVE_PAIRS]
    doc.para(f"Target accuracy against target labels per class for {why}: mean over seeds with a 95% "
             f"Student-t interval, every method and scratch."
             + (" The run has a single budget, so each curve is one point." if len(a.budgets) == 1 else ""))
    for s, t in pairs:
        fig = plots.budget_curves(a.df, s, t, methods=a.methods)
        doc.figure(figs.save(fig, f"budget_{s}_{t}"), f"Label-budget curve, {_pair(s, t)}")


def _section_training(doc: _Doc, a: _Analysis, figs: _Figures, run_dir: Path,
                      chosen: tuple[dict, str]) -> None:
    from .results import load_curves

    doc.heading("Training curves")
    filters, why = chosen
    if not filters:
        doc.para(why)
        return
    curves = load_curves(run_dir, **filters)
    label = _describe_filters(filters)
    if curves.empty:
        doc.para(f"{label} ({why}): the records hold no training curves (closed-form methods have none).")
        return
    seeds = sorted(curves["seed"].dropna().unique())
    doc.para(f"{label}: {why}; {len(seeds)} seed{'s' if len(seeds) != 1 else ''}. Losses are window means "
             f"between evaluation points; `target_labelled_acc` is accuracy on the labelled target subset "
             f"(training data), not the test split; `disc_acc` (DANN) is the domain discriminator's accuracy "
             f"on the training batches — near 100% it has won and sends almost no reversed gradient, near "
             f"50% the domains are confused.")
    fig = plots.training_curves(curves, title=f"Training curves: {label}")
    doc.figure(figs.save(fig, "training_" + _slug(*filters.values())), f"Training curves, {label}")


def _section_failed(doc: _Doc, a: _Analysis) -> None:
    failed = a.df[a.df["status"].astype(str) != "ok"]
    doc.heading("Failed cells")
    if failed.empty:
        doc.para("None.")
        return
    cols = [c for c in ("source", "target", "method", "budget", "seed", "reason") if c in failed.columns]
    doc.para(f"{len(failed)} cell{'s' if len(failed) != 1 else ''} failed; they are left out of every "
             f"statistic above (a pair with no finished seed shows n/a).")
    doc.table(failed[cols].reset_index(drop=True))
