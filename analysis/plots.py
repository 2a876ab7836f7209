"""Figures for transfer matrices: every function returns a :class:`matplotlib.figure.Figure`.

The figures are built on bare ``Figure`` objects, never through ``pyplot``: no global figure registry, no
GUI backend, nothing to close, and they render headless (Agg) wherever they are saved. In a notebook a
returned ``Figure`` displays itself once the inline backend is active (``%matplotlib inline`` registers a PNG
formatter for it); the heatmaps and the scatter take ``ax=`` to draw into an axes of your own figure.

Units: accuracies and gains are drawn in *accuracy points* (percent). The analysis tables hold accuracies as
fractions in [0, 1] and gains as differences of those fractions; :func:`to_points` converts (values already
in points pass through unchanged, see there).

=========================  =====================================================================
``gain_heatmap``           mean gain vs scratch, source rows x target columns, diverging colour
                           scale centred at zero, negative-transfer cells boxed, hatched, "NT"
``accuracy_heatmap``       mean target accuracy, source rows x target columns
``distance_gain_scatter``  gain against one domain distance, Spearman rho per method
``budget_curves``          accuracy against target labels per class, mean and 95% CI per method
``training_curves``        losses and accuracies against training step of one cell (all seeds)
``feature_projection``     2-D PCA / t-SNE of source and target features, before/after adaptation
=========================  =====================================================================
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from .negative import ok_rows

GAIN_LABEL = "gain vs scratch (accuracy points)"
ACCURACY_LABEL = "target accuracy (%)"
BUDGET_LABEL = "target labels per class"
NT_MARK = "NT"
UNCONVERGED_MARK = "unconv."
GAIN_CMAP = "RdBu"  # red = worse than scratch, blue = better
ACCURACY_CMAP = "viridis"
SCRATCH = "scratch"
FLAGGED_VALUES = ("negative", "harm", "nt", "true", "yes")

__all__ = [
    "GAIN_LABEL", "ACCURACY_LABEL", "BUDGET_LABEL", "NT_MARK", "UNCONVERGED_MARK",
    "to_points", "is_flagged", "domain_order", "gain_limit", "mean_ci", "spearman",
    "gain_heatmap", "accuracy_heatmap", "distance_gain_scatter", "budget_curves", "training_curves",
    "feature_projection",
]


# ---------------------------------------------------------------------------------------------- helpers
def to_points(values, reference=None) -> np.ndarray:
    """Accuracies / gains in accuracy points.

    ``values`` are taken as fractions (multiplied by 100) when ``reference`` (accuracies on the same scale,
    default ``values`` themselves) all lie in [0, 1]; otherwise they are already in points.
    """
    arr = np.asarray(values, dtype=float)
    ref = arr if reference is None else np.asarray(reference, dtype=float)
    ref = ref[np.isfinite(ref)]
    if ref.size == 0 or np.nanmax(np.abs(ref)) <= 1.0 + 1e-9:
        return arr * 100.0
    return arr


def _gain_reference(frame: pd.DataFrame) -> np.ndarray | None:
    """Accuracy columns that tell the scale the gains are on (None: gains are fractions by convention)."""
    for col in ("mean_accuracy", "mean_scratch", "accuracy"):
        if col in frame.columns:
            return frame[col].to_numpy(dtype=float)
    return np.zeros(1)  # no accuracies to look at: the analysis convention is fractions


def is_flagged(flag) -> bool:
    """Whether a ``flag`` value marks negative transfer (or harm).

    The analysis tables flag ``"negative"`` (:func:`analysis.negative_transfer`) and ``"harm"``
    (:func:`analysis.da_harm`); ``"positive"``, ``"help"``, ``"inconclusive"`` and missing values are not
    flagged. Booleans are taken as they are.
    """
    if flag is None or (isinstance(flag, float) and np.isnan(flag)):
        return False
    if isinstance(flag, (bool, np.bool_)):
        return bool(flag)
    return str(flag).strip().lower() in FLAGGED_VALUES


def domain_order(*frames: pd.DataFrame, domains: Sequence[str] | None = None) -> list[str]:
    """Domain names in order of first appearance as source, then as target (or ``domains`` if given)."""
    if domains is not None:
        return list(domains)
    seen: dict[str, None] = {}
    for frame in frames:
        for col in ("source", "target"):
            if col in frame.columns:
                for name in frame[col].astype(str):
                    seen.setdefault(name, None)
    return list(seen)


def _axes(ax, figsize):
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def _select(frame: pd.DataFrame, what: str, **equal) -> pd.DataFrame:
    mask = np.ones(len(frame), dtype=bool)
    for col, value in equal.items():
        if col not in frame.columns:
            raise ValueError(f"{what}: the table has no '{col}' column (columns: {list(frame.columns)})")
        mask &= (frame[col] == value).to_numpy()
    out = frame[mask]
    if out.empty:
        have = {c: sorted(map(str, frame[c].dropna().unique())) for c in equal if c in frame.columns}
        want = ", ".join(f"{k}={v!r}" for k, v in equal.items())
        raise ValueError(f"{what}: no rows with {want}; the table has {have}")
    return out


def _heatmap(ax, matrix: pd.DataFrame, annot: np.ndarray, *, cmap, norm=None, vmin=None, vmax=None,
             cbar_label: str):
    import seaborn as sns

    mask = matrix.isna().to_numpy()
    kwargs = {"norm": norm} if norm is not None else {"vmin": vmin, "vmax": vmax}
    sns.heatmap(matrix.astype(float), ax=ax, cmap=cmap, annot=annot, fmt="", mask=mask, linewidths=1.0,
                linecolor="white", square=True, cbar_kws={"label": cbar_label, "shrink": 0.85},
                annot_kws={"fontsize": 9}, **kwargs)
    ax.set_facecolor("0.92")  # masked cells: the diagonal and pairs without data
    for i, j in zip(*np.nonzero(mask)):
        text = "—" if matrix.index[i] == matrix.columns[j] else "n/a"
        ax.text(j + 0.5, i + 0.5, text, ha="center", va="center", fontsize=9, color="0.45")
    ax.set_xlabel("target domain")
    ax.set_ylabel("source domain")
    ax.tick_params(axis="x", labelrotation=30)
    ax.tick_params(axis="y", labelrotation=0)
    for label in ax.get_xticklabels():
        label.set_horizontalalignment("right")
        label.set_rotation_mode("anchor")


# ---------------------------------------------------------------------------------------------- heatmaps
def gain_heatmap(nt: pd.DataFrame, method: str, budget: int, *, domains: Sequence[str] | None = None,
                 limit: float | None = None, ax=None) -> Figure:
    """Mean gain vs scratch of ``method`` at ``budget``: sources as rows, targets as columns.

    ``nt`` is the negative-transfer table (``analysis.negative_transfer``: ``source, target, method, budget,
    gain, flag`` …). The colour scale is diverging and centred at zero gain (a ``TwoSlopeNorm`` with
    ``vcenter=0``, symmetric limits), red for worse than scratch. Cells whose ``flag`` marks negative transfer
    get a black box, a hatch and an "NT" mark under their value; cells flagged ``unconverged`` (an arm had not
    converged: not tested) get "unconv." under their value and no box; the diagonal shows "—", pairs without
    data "n/a". ``limit`` (accuracy points) fixes the colour range to ``[-limit, limit]`` so several heatmaps share
    one scale (see :func:`gain_limit`); by default it is the largest absolute gain shown.
    """
    sel = _select(nt, "gain_heatmap", method=method, budget=budget)
    doms = domain_order(sel, domains=domains)
    gains = sel.assign(gain=to_points(sel["gain"], _gain_reference(sel)))
    matrix = gains.pivot_table(index="source", columns="target", values="gain", aggfunc="mean", dropna=False)
    matrix = matrix.reindex(index=doms, columns=doms)
    flagged = {(s, t) for s, t, f in zip(sel["source"], sel["target"], sel.get("flag", [False] * len(sel)))
               if is_flagged(f)}
    unconverged = {(s, t) for s, t, f in zip(sel["source"], sel["target"], sel.get("flag", [""] * len(sel)))
                   if str(f) in ("unconverged", "untested")}  # untested with a gain: an arm unconverged
    annot = np.full(matrix.shape, "", dtype=object)
    for i, s in enumerate(doms):
        for j, t in enumerate(doms):
            g = matrix.iat[i, j]
            if np.isfinite(g):
                mark = NT_MARK if (s, t) in flagged else UNCONVERGED_MARK if (s, t) in unconverged else ""
                annot[i, j] = f"{g:+.1f}" + (f"\n{mark}" if mark else "")
    if limit is None or not np.isfinite(limit) or limit <= 0:
        limit = gain_limit(gains)
    norm = TwoSlopeNorm(vcenter=0.0, vmin=-limit, vmax=limit)
    versus = _baseline_name(sel)

    n = len(doms)
    fig, ax = _axes(ax, (1.15 * n + 2.6, 0.95 * n + 1.6))
    _heatmap(ax, matrix, annot, cmap=GAIN_CMAP, norm=norm,
             cbar_label=GAIN_LABEL if versus == SCRATCH else f"gain vs {versus} (accuracy points)")
    for i, s in enumerate(doms):
        for j, t in enumerate(doms):
            if (s, t) in flagged:
                ax.add_patch(Rectangle((j + 0.04, i + 0.04), 0.92, 0.92, fill=False, hatch="//",
                                       edgecolor="black", linewidth=2.4, gid="nt-mark", label=NT_MARK))
    for text in ax.texts:  # keep the value and the mark legible over the hatch
        if text.get_text().endswith(NT_MARK):
            text.set_color("black")
            text.set_fontweight("bold")
            text.set_bbox({"boxstyle": "round,pad=0.25", "facecolor": "white", "edgecolor": "none",
                           "alpha": 0.9})
    title = f"{method}, {budget} target label{'s' if budget != 1 else ''}/class: gain vs {versus}"
    if flagged:
        title += f"\n{len(flagged)} pair{'s' if len(flagged) != 1 else ''} flagged NT (boxed)"
    if unconverged:
        title += f"\n{len(unconverged)} not tested ({UNCONVERGED_MARK}: an arm had not converged)"
    ax.set_title(title)
    return fig


def gain_limit(nt: pd.DataFrame) -> float:
    """The largest absolute gain of ``nt`` in accuracy points: a shared colour range for several heatmaps."""
    gains = np.abs(to_points(nt["gain"], _gain_reference(nt))) if len(nt) else np.zeros(0)
    gains = gains[np.isfinite(gains)]
    return float(gains.max()) if gains.size and gains.max() > 0 else 1.0


def _baseline_name(sel: pd.DataFrame) -> str:
    """What the gains of ``sel`` are measured against: ``scratch`` (default), ``chance``, or both."""
    if "baseline" not in sel.columns:
        return SCRATCH
    kinds = [b for b in dict.fromkeys(sel["baseline"].astype(str)) if b not in ("none", "nan")]
    if not kinds:
        return SCRATCH
    return " or ".join(kinds)


def accuracy_heatmap(df: pd.DataFrame, method: str, budget: int, *, domains: Sequence[str] | None = None,
                     ax=None) -> Figure:
    """Mean target accuracy (%) of ``method`` at ``budget`` over finished seeds, source x target.

    ``df`` is the per-cell results table (``analysis.load_results``). Failed cells are left out; a pair with
    no finished cell shows "n/a". The colour scale is fixed to 0–100 so matrices compare across methods.
    """
    sel = _select(df, "accuracy_heatmap", method=method, budget=budget)
    doms = domain_order(sel, domains=domains)
    ok = ok_rows(sel)
    acc = ok.assign(accuracy=to_points(ok["accuracy"]))
    matrix = acc.pivot_table(index="source", columns="target", values="accuracy", aggfunc="mean")
    matrix = matrix.reindex(index=doms, columns=doms)
    counts = acc.groupby(["source", "target"]).size()
    low, high = (int(counts.min()), int(counts.max())) if len(counts) else (0, 0)
    seeds = f"{high} seed{'s' if high != 1 else ''}" if low == high else f"{low}–{high} seeds"
    annot = np.full(matrix.shape, "", dtype=object)
    for i in range(len(doms)):
        for j in range(len(doms)):
            v = matrix.iat[i, j]
            if np.isfinite(v):
                annot[i, j] = f"{v:.1f}"
    n = len(doms)
    fig, ax = _axes(ax, (1.15 * n + 2.6, 0.95 * n + 1.6))
    _heatmap(ax, matrix, annot, cmap=ACCURACY_CMAP, vmin=0.0, vmax=100.0, cbar_label=ACCURACY_LABEL)
    ax.set_title(f"{method}, {budget} target label{'s' if budget != 1 else ''}/class: target accuracy\n"
                 f"(mean over {seeds})")
    return fig


# ---------------------------------------------------------------------------------------------- scatter
def spearman(x, y) -> tuple[float, float, int]:
    """``(rho, p_value, n)`` of the Spearman rank correlation over the finite pairs (NaN when n < 3)."""
    from scipy.stats import spearmanr

    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    n = int(keep.sum())
    if n < 3 or np.ptp(x[keep]) == 0 or np.ptp(y[keep]) == 0:
        return float("nan"), float("nan"), n
    res = spearmanr(x[keep], y[keep])
    return float(res.statistic), float(res.pvalue), n


def _rho_text(rho: float, n: int) -> str:
    return f"ρ = {rho:+.2f}, n = {n}" if np.isfinite(rho) else f"ρ = n/a, n = {n}"


def distance_gain_scatter(table: pd.DataFrame, distance: str, *, gain: str = "gain", hue: str = "method",
                          label_points: bool | str | None = None, ax=None) -> Figure:
    """Gain vs scratch against one domain distance, one colour per ``hue`` (method), Spearman rho each.

    ``table`` has one row per pair (and method / budget): a ``distance`` column, a ``gain`` column (the
    negative-transfer table joined with ``analysis.distances.domain_distances`` per pair), optionally
    ``flag``, ``source``, ``target``. Flagged rows get a black ring. Spearman's rho (and n) of each group is
    in the legend, the pooled rho in the title. ``label_points``: ``True`` names every point
    "source→target", ``"flagged"`` only the flagged ones, ``False`` none (default: all when at most 8
    points, else the flagged ones).
    """
    if distance not in table.columns:
        raise ValueError(f"distance_gain_scatter: no '{distance}' column; "
                         f"the table has {list(table.columns)}")
    if gain not in table.columns:
        raise ValueError(f"distance_gain_scatter: no '{gain}' column; the table has {list(table.columns)}")
    data = table.assign(_gain=to_points(table[gain], _gain_reference(table)),
                        _dist=pd.to_numeric(table[distance], errors="coerce"))
    data = data[np.isfinite(data["_gain"]) & np.isfinite(data["_dist"])]
    fig, ax = _axes(ax, (6.4, 4.6))
    groups = list(data.groupby(hue, sort=False)) if hue in data.columns else [("all", data)]
    palette = _palette([g for g, _ in groups])
    if label_points is None:  # label the flagged points (all of them when there are only a few)
        label_points = True if len(data) <= 8 else "flagged"
    for name, grp in groups:
        rho, _, n = spearman(grp["_dist"], grp["_gain"])
        ax.scatter(grp["_dist"], grp["_gain"], s=36, color=palette[name], alpha=0.85, zorder=3,
                   label=f"{name} ({_rho_text(rho, n)})")
        if "flag" in grp.columns:
            hit = grp[[is_flagged(f) for f in grp["flag"]]]
            if len(hit):
                ax.scatter(hit["_dist"], hit["_gain"], s=130, facecolors="none", edgecolors="black",
                           linewidths=1.6, zorder=4, gid="nt-mark")
        if label_points and {"source", "target"} <= set(grp.columns):
            named = grp
            if label_points == "flagged":
                named = grp[[is_flagged(f) for f in grp["flag"]]] if "flag" in grp.columns else grp.iloc[0:0]
            for x, y, s, t in zip(named["_dist"], named["_gain"], named["source"], named["target"]):
                ax.annotate(f"{s}→{t}", (x, y), xytext=(4, 3), textcoords="offset points", fontsize=7,
                            color="0.3")
    if "flag" in data.columns and any(is_flagged(f) for f in data["flag"]):
        ax.scatter([], [], s=130, facecolors="none", edgecolors="black", linewidths=1.6,
                   label=f"{NT_MARK} flagged")
    ax.axhline(0.0, color="0.4", linewidth=1, linestyle="--", zorder=1)
    ax.ticklabel_format(axis="x", style="sci", scilimits=(-3, 4), useMathText=True)
    ax.set_xlabel(distance)
    ax.set_ylabel(GAIN_LABEL)
    rho, _, n = spearman(data["_dist"], data["_gain"])
    ax.set_title(f"gain vs {distance} (pooled {_rho_text(rho, n)})")
    if len(data):
        ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)
    return fig


#: Fixed colours for the registered methods, so a method looks the same in every figure.
METHOD_COLOURS = {"finetune": "#1f77b4", "dann": "#ff7f0e", "coral": "#2ca02c", "coral-closed": "#9467bd",
                  SCRATCH: "#262626"}


def _palette(names) -> dict:
    """Colour per name: registered methods keep theirs, other names take the unused tab10 colours in turn."""
    import seaborn as sns

    spare = [c for c in sns.color_palette("tab10").as_hex() if c not in METHOD_COLOURS.values()]
    out, k = {}, 0
    for name in dict.fromkeys(names):
        if str(name) in METHOD_COLOURS:
            out[name] = METHOD_COLOURS[str(name)]
        else:
            out[name] = spare[k % len(spare)]
            k += 1
    return out


# ---------------------------------------------------------------------------------------------- curves
def mean_ci(values, level: float = 0.95) -> tuple[float, float, float, int]:
    """``(mean, low, high, n)``: Student-t confidence interval of the mean over seeds (low = high if n=1)."""
    from scipy.stats import t as student_t

    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    n = len(v)
    if n == 0:
        return float("nan"), float("nan"), float("nan"), 0
    m = float(v.mean())
    if n == 1:
        return m, m, m, 1
    half = float(student_t.ppf(0.5 + level / 2, n - 1) * v.std(ddof=1) / np.sqrt(n))
    return m, m - half, m + half, n


def budget_curves(df: pd.DataFrame, source: str, target: str, *, methods: Sequence[str] | None = None,
                  ax=None) -> Figure:
    """Target accuracy against target labels per class for ``source → target``: every method and scratch.

    ``df`` is the per-cell results table. Each line is the mean over seeds with a shaded 95% CI (Student t
    over seeds); scratch is drawn dashed black. With one budget the points carry error bars only.
    """
    sel = ok_rows(_select(df, "budget_curves", source=source, target=target))
    if methods is not None:
        sel = sel[sel["method"].isin(list(methods))]
    fig, ax = _axes(ax, (6.4, 4.4))
    names = list(methods) if methods is not None else list(dict.fromkeys(sel["method"]))
    names = [m for m in names if m != SCRATCH] + ([SCRATCH] if SCRATCH in names else [])
    palette = _palette(names)
    budgets = sorted(sel["budget"].unique())
    span = (budgets[-1] - budgets[0]) if len(budgets) > 1 else 4.0  # one budget: offsets on a ±1 axis
    clipped = False
    for k, name in enumerate(names):
        dodge = 0.012 * span * (k - (len(names) - 1) / 2)  # keep overlapping error bars apart
        rows = []
        for b, grp in sel[sel["method"] == name].groupby("budget"):
            m, lo, hi, n = mean_ci(to_points(grp["accuracy"], sel["accuracy"]))
            clipped |= lo < 0 or hi > 100
            rows.append((b, m, max(lo, 0.0), min(hi, 100.0), n))  # accuracy lives in [0, 100]
        if not rows:
            continue
        b, m, lo, hi, n = map(np.asarray, zip(*rows))
        style = {"linestyle": "--", "marker": "s"} if name == SCRATCH else {"linestyle": "-", "marker": "o"}
        ax.errorbar(b + dodge, m, yerr=[m - lo, hi - m], color=palette[name], capsize=3, linewidth=1.8,
                    label=f"{name} (n={int(n.min())}–{int(n.max())} seeds)" if n.min() != n.max()
                    else f"{name} ({int(n.min())} seed{'s' if n.min() != 1 else ''})", **style)
        if len(b) > 1:
            ax.fill_between(b + dodge, lo, hi, color=palette[name], alpha=0.12, linewidth=0)
    ax.set_xticks(budgets)
    if len(budgets) == 1:
        ax.set_xlim(budgets[0] - 1, budgets[0] + 1)
    ax.set_xlabel(BUDGET_LABEL)
    ax.set_ylabel(ACCURACY_LABEL)
    ax.set_title(f"{source} → {target}: accuracy vs label budget\n(mean over seeds, 95% CI"
                 + (", clipped to [0, 100])" if clipped else ")"), fontsize=11)
    ax.grid(alpha=0.3)
    if names:
        ax.legend(fontsize=8, loc="best")
    return fig


_ID_COLUMNS = {"source", "target", "method", "method_name", "seed", "budget", "cell", "cell_id", "hash",
               "key", "compute_key", "status", "step", "steps", "epoch", "run"}


def _long_curves(curves) -> pd.DataFrame:
    """Curves as a long table ``[seed, step, metric, value]`` (from wide, long or a dict of lists)."""
    if isinstance(curves, dict):
        curves = pd.DataFrame({k: pd.Series(v) for k, v in curves.items()})
    frame = pd.DataFrame(curves).copy()
    if "step" not in frame.columns:
        frame = frame.reset_index(names="step") if frame.index.name is None else frame.reset_index()
        frame = frame.rename(columns={frame.columns[0]: "step"})
    if "seed" not in frame.columns:
        frame["seed"] = 0
    if {"curve", "value"} <= set(frame.columns) and "metric" not in frame.columns:
        frame = frame.rename(columns={"curve": "metric"})
    if {"metric", "value"} <= set(frame.columns):
        return frame[["seed", "step", "metric", "value"]]
    metrics = [c for c in frame.columns
               if c not in _ID_COLUMNS and pd.api.types.is_numeric_dtype(frame[c])]
    return frame.melt(id_vars=["seed", "step"], value_vars=metrics, var_name="metric", value_name="value")


def _curve_panel(name: str) -> str:
    low = str(name).lower()
    if "acc" in low:
        return "accuracy"
    if "loss" in low:
        return "loss"
    return "schedule"


_PANEL_TITLES = {"loss": ("losses", "loss (window mean)"), "accuracy": ("accuracies", "accuracy (%)"),
                 "schedule": ("schedules", "value")}


def training_curves(curves, *, title: str | None = None) -> Figure:
    """Training curves of one cell: losses, accuracies and schedules (lambda, lr…) against the step.

    ``curves`` is what ``analysis.load_curves`` returns for a cell (one or several seeds): long form with
    ``curve``/``value`` (or ``metric``/``value``) and ``step`` columns; a wide table with a ``step`` column
    and one numeric column per quantity, or a record's ``curves`` dict of lists, work too. Quantities named
    ``*acc*`` go to the accuracy panel (in %; DANN's ``disc_acc``, the domain discriminator's accuracy, with a
    dotted line at chance), ``*loss*`` to the loss panel, the rest to a schedule panel
    (left out, and named in the title, when every schedule is constant); each seed is a thin line, the mean
    over seeds a thick one.
    """
    long = _long_curves(curves)
    long = long.assign(value=pd.to_numeric(long["value"], errors="coerce")).dropna(subset=["value"])
    metrics = list(dict.fromkeys(long["metric"]))
    panels = [(p, [m for m in metrics if _curve_panel(m) == p]) for p in ("loss", "accuracy", "schedule")]
    panels = [(p, ms) for p, ms in panels if ms]
    constants = {}
    for name in dict(panels).get("schedule", []):
        values = long.loc[long["metric"] == name, "value"].to_numpy(dtype=float)
        if len(values) and np.ptp(values) == 0:
            constants[name] = values[0]
    if constants and len(constants) == len(dict(panels)["schedule"]) and len(panels) > 1:
        panels = [(p, ms) for p, ms in panels if p != "schedule"]  # a flat-line panel says nothing
        note = "constant: " + ", ".join(f"{k} = {v:g}" for k, v in constants.items())
        title = f"{title}\n({note})" if title else note
    fig = Figure(figsize=(4.6 * max(len(panels), 1) + 0.6, 3.9 + (0.3 if title and "\n" in title else 0)),
                 layout="constrained")
    if title:
        fig.suptitle(title)
    if not panels:
        ax = fig.add_subplot()
        ax.text(0.5, 0.5, "no training curves recorded", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    palette = _palette(metrics)
    n_seeds = long["seed"].nunique()
    for ax, (panel, names) in zip(axes, panels):
        main_ax, twin = ax, None
        for name in names:
            ax = main_ax
            if panel == "schedule" and name == "lr" and len(names) > 1:  # lr lives on its own scale
                twin = twin or main_ax.twinx()
                ax = twin
                ax.set_ylabel("learning rate (lr)")
            part = long[long["metric"] == name]
            if panel == "accuracy":
                part = part.assign(value=to_points(part["value"]))
            if n_seeds > 1:
                for _, seed_part in part.groupby("seed"):
                    ax.plot(seed_part["step"], seed_part["value"], color=palette[name], alpha=0.3,
                            linewidth=0.9)
            mean = part.groupby("step")["value"].mean()
            label = f"{name}" + (f" (mean of {n_seeds} seeds)" if n_seeds > 1 else "")
            if len(mean) > 1 and np.ptp(mean.to_numpy()) == 0:
                label = f"{name} = {mean.iloc[0]:g} (constant)"
            ax.plot(mean.index, mean.to_numpy(), color=palette[name], linewidth=2.0, marker=".",
                    linestyle="--" if ax is twin else "-", label=label)
        if panel == "accuracy" and "disc_acc" in names:  # DANN: a discriminator near 100% sends no gradient
            main_ax.axhline(50.0, color=palette["disc_acc"], linestyle=":", linewidth=1.0,
                            label="disc_acc at chance (50%): domains confused")
        if panel == "loss":
            values = long[long["metric"].isin(names)]["value"].to_numpy(dtype=float)
            if values.size and values.min() > 0 and values.max() / values.min() > 100:
                main_ax.set_yscale("log")  # losses of very different sizes (e.g. CORAL's next to CE)
        main_ax.set_xlabel("training step")
        main_ax.set_ylabel(_PANEL_TITLES[panel][1])
        main_ax.set_title(_PANEL_TITLES[panel][0])
        main_ax.grid(alpha=0.3)
        handles, labels = main_ax.get_legend_handles_labels()
        if twin is not None:
            more = twin.get_legend_handles_labels()
            handles, labels = handles + more[0], labels + more[1]
        main_ax.legend(handles, labels, fontsize=8, loc="best")
    return fig


# ---------------------------------------------------------------------------------------------- features
def _project(blocks: list[np.ndarray], how: str, seed: int) -> list[np.ndarray]:
    """Fit one 2-D projection on the stacked blocks; return each block's coordinates."""
    stacked = np.concatenate(blocks, axis=0)
    stacked = stacked - stacked.mean(axis=0, keepdims=True)
    if how == "pca":
        from sklearn.decomposition import PCA

        coords = PCA(n_components=2, random_state=seed).fit_transform(stacked)
    elif how == "tsne":
        from sklearn.manifold import TSNE

        perplexity = float(min(30.0, max(2.0, (len(stacked) - 1) / 3.0)))
        algorithm = "exact" if len(stacked) <= 300 else "barnes_hut"  # exact is the faster one when small
        coords = TSNE(n_components=2, init="pca", perplexity=perplexity, method=algorithm,
                      random_state=seed).fit_transform(stacked)
    else:
        raise ValueError(f"feature_projection: method must be 'pca' or 'tsne', got {how!r}")
    out, start = [], 0
    for b in blocks:
        out.append(coords[start:start + len(b)])
        start += len(b)
    return out


def _flat(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    x = np.asarray(x, dtype=float)
    return x.reshape(len(x), -1)


def feature_projection(Fs, Ft, Fs_after=None, Ft_after=None, *, ys=None, yt=None, method: str = "pca",
                       names: tuple[str, str] = ("source", "target"), titles: tuple[str, str] | None = None,
                       max_points: int = 600, seed: int = 0) -> Figure:
    """2-D projection of source and target features; a second panel for features after adaptation.

    ``Fs``/``Ft`` are ``(n, ...)`` feature arrays (flattened per sample), e.g. the backbone's output before
    adaptation; ``Fs_after``/``Ft_after`` the same samples through the adapted backbone. Each panel fits its
    own projection (``method="pca"`` or ``"tsne"``) on source and target together, so the panels show how
    far apart the two domains sit in each feature space. Source is drawn as circles, target as triangles;
    with labels ``ys``/``yt`` the colour is the class (aligned classes overlap), otherwise the domain.
    At most ``max_points`` per domain are drawn (a seeded subsample). t-SNE is slow on CPU (about a minute
    for 1,200 points on two cores); PCA is instant.
    """
    rng = np.random.default_rng(seed)
    panels = [(Fs, Ft)] + ([(Fs_after, Ft_after)] if Fs_after is not None and Ft_after is not None else [])
    if titles is None:
        titles = ("before adaptation", "after adaptation") if len(panels) == 2 else ("features", "")
    Xs, Xt = _flat(Fs), _flat(Ft)
    keep_s = np.sort(rng.choice(len(Xs), size=min(max_points, len(Xs)), replace=False))
    keep_t = np.sort(rng.choice(len(Xt), size=min(max_points, len(Xt)), replace=False))
    by_class = ys is not None and yt is not None
    if by_class:
        ys = np.asarray(ys)[keep_s]
        yt = np.asarray(yt)[keep_t]
        classes = sorted(set(ys.tolist()) | set(yt.tolist()))
        import seaborn as sns

        palette = sns.color_palette("tab10" if len(classes) <= 10 else "husl", len(classes))
        colours = dict(zip(classes, palette))
    fig = Figure(figsize=(5.0 * len(panels) + 0.8, 4.6), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    axis_name = "PC" if method == "pca" else "t-SNE"
    for ax, (a, b), title in zip(axes, panels, titles):
        ps, pt = _project([_flat(a)[keep_s], _flat(b)[keep_t]], method, seed)
        if by_class:
            ax.scatter(ps[:, 0], ps[:, 1], c=[colours[c] for c in ys], marker="o", s=16, alpha=0.55,
                       linewidths=0)
            ax.scatter(pt[:, 0], pt[:, 1], c=[colours[c] for c in yt], marker="^", s=22, alpha=0.75,
                       edgecolors="black", linewidths=0.3)
        else:
            ax.scatter(ps[:, 0], ps[:, 1], color="tab:blue", marker="o", s=16, alpha=0.5, linewidths=0)
            ax.scatter(pt[:, 0], pt[:, 1], color="tab:orange", marker="^", s=22, alpha=0.6, linewidths=0)
        ax.set_xlabel(f"{axis_name} 1")
        ax.set_ylabel(f"{axis_name} 2")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], marker="o", linestyle="", color="0.3" if by_class else "tab:blue",
                      label=f"{names[0]} (source)"),
               Line2D([], [], marker="^", linestyle="", color="0.3" if by_class else "tab:orange",
                      label=f"{names[1]} (target)")]
    if by_class:
        handles += [Patch(color=colours[c], label=f"class {c}") for c in classes]
    axes[-1].legend(handles=handles, fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.suptitle(f"{names[0]} → {names[1]}: 2-D {method.upper() if method == 'pca' else 't-SNE'} "
                 f"of features")
    return fig
