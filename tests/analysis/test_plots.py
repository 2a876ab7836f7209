"""analysis.plots: every function returns a Figure with labelled axes, domain names as ticks, a colour scale
centred at zero gain and visible negative-transfer marks (checked on the artists, not by eye)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from analysis import plots

DOMAINS = ["original", "rotated", "inverted"]


def results_frame(methods=("finetune", "dann", "scratch"), budgets=(0, 5), seeds=3,
                  failed=()) -> pd.DataFrame:
    """Per-cell results like ``analysis.load_results``: accuracies as fractions, ``status`` ok/failed."""
    rng = np.random.default_rng(0)
    rows = []
    for s in DOMAINS:
        for t in DOMAINS:
            if s == t:
                continue
            for m in methods:
                for b in budgets:
                    if m == "scratch" and b == 0:
                        continue
                    for seed in range(seeds):
                        acc = 0.6 + 0.04 * b + rng.normal(0, 0.02)
                        if (s, t) == ("rotated", "original") and m != "scratch":
                            acc -= 0.35
                        bad = (s, t, m) in failed
                        rows.append({"source": s, "target": t, "method": m, "seed": seed, "budget": b,
                                     "accuracy": None if bad else float(np.clip(acc, 0, 1)),
                                     "status": "failed" if bad else "ok", "n_classes": 10})
    return pd.DataFrame(rows)


def nt_frame() -> pd.DataFrame:
    """A negative-transfer table (gains as fractions) with one flagged cell per method."""
    rows = []
    for s in DOMAINS:
        for t in DOMAINS:
            if s == t:
                continue
            for m in ("finetune", "dann"):
                bad = (s, t) == ("rotated", "original")
                gain = -0.3 if bad else 0.05 + 0.01 * len(s)
                rows.append({"source": s, "target": t, "method": m, "budget": 5, "gain": gain,
                             "ci_low": gain - 0.05, "ci_high": gain + 0.05, "p_value": 0.001 if bad else 0.2,
                             "q_value": 0.004 if bad else 0.3, "flag": "negative" if bad else "inconclusive",
                             "n_seeds": 3, "mean_accuracy": 0.5 + gain, "mean_scratch": 0.5,
                             "baseline": "scratch"})
    return pd.DataFrame(rows)


def colorbar_axes(fig: Figure):
    return [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]


def main_axes(fig: Figure):
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]


def tick_texts(labels) -> list[str]:
    return [t.get_text() for t in labels]


# ---------------------------------------------------------------------------------------------- heatmaps
def test_gain_heatmap_axes_norm_and_nt_marks():
    fig = plots.gain_heatmap(nt_frame(), "dann", 5, domains=DOMAINS)
    assert isinstance(fig, Figure)
    (ax,) = main_axes(fig)
    assert ax.get_xlabel() == "target domain" and ax.get_ylabel() == "source domain"
    assert tick_texts(ax.get_xticklabels()) == DOMAINS
    assert tick_texts(ax.get_yticklabels()) == DOMAINS
    assert "dann" in ax.get_title() and "gain vs scratch" in ax.get_title()

    mesh = ax.collections[0]
    assert isinstance(mesh.norm, TwoSlopeNorm)
    assert mesh.norm.vcenter == 0.0
    assert mesh.norm.vmin == -mesh.norm.vmax  # symmetric: equal colour steps for gains and losses
    assert mesh.norm.vmin <= -30.0 + 1e-9  # the -0.3 gain is drawn as -30 accuracy points
    (cax,) = colorbar_axes(fig)
    assert cax.get_ylabel() == plots.GAIN_LABEL == "gain vs scratch (accuracy points)"

    texts = tick_texts(ax.texts)
    assert "-30.0\nNT" in texts  # rotated -> original: value and mark
    assert sum(plots.NT_MARK in t for t in texts) == 1
    boxes = [p for p in ax.patches if isinstance(p, Rectangle) and p.get_gid() == "nt-mark"]
    assert len(boxes) == 1
    # The box sits on row "rotated" (1), column "original" (0).
    assert boxes[0].get_xy() == pytest.approx((0.04, 1.04))
    assert boxes[0].get_hatch()
    assert texts.count("—") == 3  # the diagonal


def test_gain_heatmap_centred_even_when_all_gains_positive():
    nt = nt_frame()
    nt["gain"] = nt["gain"].abs()
    nt["flag"] = "positive"
    fig = plots.gain_heatmap(nt, "finetune", 5)
    mesh = main_axes(fig)[0].collections[0]
    assert mesh.norm.vcenter == 0.0 and mesh.norm.vmin < 0 < mesh.norm.vmax
    assert not any(plots.NT_MARK in t.get_text() for t in main_axes(fig)[0].texts)


def test_gain_heatmap_marks_unconverged_cells_without_a_box():
    nt = nt_frame()
    nt["flag"] = "inconclusive"
    nt.loc[(nt["source"] == "rotated") & (nt["target"] == "original"), "flag"] = "unconverged"
    fig = plots.gain_heatmap(nt, "finetune", 5)
    ax = main_axes(fig)[0]
    marked = [t.get_text() for t in ax.texts if t.get_text().endswith(plots.UNCONVERGED_MARK)]
    assert len(marked) == 1 and not any(plots.NT_MARK in t.get_text() for t in ax.texts)
    assert not [p for p in ax.patches if p.get_gid() == "nt-mark"]
    assert "1 not tested" in ax.get_title()


def test_gain_heatmap_missing_pair_shows_na_and_chance_baseline_is_named():
    nt = nt_frame()
    nt = nt[~((nt["source"] == "original") & (nt["target"] == "inverted"))].copy()
    nt["baseline"] = "chance"
    fig = plots.gain_heatmap(nt, "dann", 5, domains=DOMAINS)
    ax = main_axes(fig)[0]
    assert "n/a" in tick_texts(ax.texts)
    assert colorbar_axes(fig)[0].get_ylabel() == "gain vs chance (accuracy points)"


def test_gain_heatmap_unknown_method_says_what_exists():
    with pytest.raises(ValueError, match="coral"):
        plots.gain_heatmap(nt_frame(), "coral", 5)


def test_accuracy_heatmap_means_failed_cells_and_labels():
    df = results_frame(failed={("original", "rotated", "finetune")})
    fig = plots.accuracy_heatmap(df, "finetune", 5, domains=DOMAINS)
    ax = main_axes(fig)[0]
    assert ax.get_xlabel() == "target domain" and ax.get_ylabel() == "source domain"
    assert tick_texts(ax.get_xticklabels()) == DOMAINS
    assert colorbar_axes(fig)[0].get_ylabel() == plots.ACCURACY_LABEL
    mesh = ax.collections[0]
    assert (mesh.norm.vmin, mesh.norm.vmax) == (0.0, 100.0)
    texts = tick_texts(ax.texts)
    assert "n/a" in texts  # every seed of original -> rotated failed
    ok = df[(df.source == "rotated") & (df.target == "inverted") & (df.method == "finetune")
            & (df.budget == 5)]
    assert f"{100 * ok['accuracy'].mean():.1f}" in texts


# ---------------------------------------------------------------------------------------------- scatter
def test_distance_gain_scatter_spearman_and_flag_rings():
    from scipy.stats import spearmanr

    nt = nt_frame()
    nt["mmd2"] = [0.1 * i for i in range(len(nt))]
    fig = plots.distance_gain_scatter(nt, "mmd2")
    (ax,) = fig.axes
    assert ax.get_xlabel() == "mmd2" and ax.get_ylabel() == plots.GAIN_LABEL
    rho = spearmanr(nt["mmd2"], nt["gain"]).statistic
    assert f"ρ = {rho:+.2f}, n = {len(nt)}" in ax.get_title()
    legend = tick_texts(ax.get_legend().get_texts())
    assert any(t.startswith("dann (ρ = ") for t in legend)
    assert any(t.startswith("finetune (ρ") for t in legend)
    assert f"{plots.NT_MARK} flagged" in legend
    rings = [c for c in ax.collections if c.get_gid() == "nt-mark"]
    assert sum(len(c.get_offsets()) for c in rings) == 2  # one flagged row per method
    assert [t.get_text() for t in ax.texts] == ["rotated→original"] * 2  # the flagged ones


def test_distance_gain_scatter_too_few_points_says_na():
    nt = nt_frame().head(2).assign(coral=[1.0, 2.0])
    fig = plots.distance_gain_scatter(nt, "coral")
    assert "n/a" in fig.axes[0].get_title()
    with pytest.raises(ValueError, match="no 'otdd' column"):
        plots.distance_gain_scatter(nt, "otdd")


# ---------------------------------------------------------------------------------------------- curves
def test_budget_curves_every_method_with_ci():
    df = results_frame()
    fig = plots.budget_curves(df, "rotated", "original")
    (ax,) = fig.axes
    assert ax.get_xlabel() == plots.BUDGET_LABEL and ax.get_ylabel() == plots.ACCURACY_LABEL
    assert list(ax.get_xticks()) == [0, 5]
    assert "rotated → original" in ax.get_title()
    legend = tick_texts(ax.get_legend().get_texts())
    assert [t.split(" ")[0] for t in legend] == ["finetune", "dann", "scratch"]
    # finetune at budget 5: mean of its three seeds in points, inside its CI band.
    sel = df[(df.source == "rotated") & (df.target == "original") & (df.method == "finetune")
             & (df.budget == 5)]
    mean = 100 * sel["accuracy"].mean()
    line = ax.get_lines()[0]
    assert line.get_ydata()[-1] == pytest.approx(mean)


def test_budget_curves_single_budget_and_mean_ci():
    df = results_frame(methods=("finetune",), budgets=(3,))
    fig = plots.budget_curves(df, "original", "rotated")
    assert list(fig.axes[0].get_xticks()) == [3]
    m, lo, hi, n = plots.mean_ci([0.5, 0.6, 0.7])
    assert (m, n) == (pytest.approx(0.6), 3)
    assert hi - m == pytest.approx(4.302652729911275 * 0.1 / np.sqrt(3))  # t_{0.975, 2}
    assert plots.mean_ci([0.4])[1:3] == (0.4, 0.4)


def curves_long(seeds=2) -> pd.DataFrame:
    """Curves in ``analysis.load_curves`` form."""
    rows = []
    for seed in range(seeds):
        for step in (25, 50, 75, 100):
            for curve, value in (("loss_cls", 2.0 / step * 25 + 0.1 * seed), ("loss_domain", 0.69),
                                 ("target_labelled_acc", step / 120), ("lambda", step / 100), ("lr", 1e-3)):
                rows.append({"cell_id": f"k{seed}", "source": "rotated", "target": "original",
                             "method": "dann", "seed": seed, "budget": 5, "curve": curve, "step": step,
                             "value": value})
    return pd.DataFrame(rows)


def test_training_curves_panels_from_load_curves_frame():
    fig = plots.training_curves(curves_long(), title="rotated → original, dann")
    axes = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in axes] == ["losses", "accuracies", "schedules"]
    assert all(ax.get_xlabel() == "training step" for ax in axes)
    assert axes[1].get_ylabel() == "accuracy (%)"
    assert max(axes[1].get_lines()[-1].get_ydata()) == pytest.approx(100 / 1.2)
    legend = tick_texts(axes[0].get_legend().get_texts())
    assert legend == ["loss_cls (mean of 2 seeds)", "loss_domain = 0.69 (constant)"]
    assert fig.get_suptitle() == "rotated → original, dann"


def test_training_curves_dict_and_empty():
    fig = plots.training_curves({"step": [1, 2, 3], "loss_cls": [1.0, 0.5, 0.2]})
    assert fig.axes[0].get_title() == "losses"
    empty = plots.training_curves(curves_long().iloc[0:0])
    assert "no training curves" in empty.axes[0].texts[0].get_text()


# ---------------------------------------------------------------------------------------------- features
@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_feature_projection_before_after(method):
    rng = np.random.default_rng(0)
    ys, yt = rng.integers(0, 3, 60), rng.integers(0, 3, 50)
    Fs = rng.normal(size=(60, 8)) + ys[:, None]
    Ft = rng.normal(size=(50, 8)) + 4.0
    fig = plots.feature_projection(Fs, Ft, Fs, Ft - 4.0, ys=ys, yt=yt, method=method,
                                   names=("rotated", "original"))
    axes = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in axes] == ["before adaptation", "after adaptation"]
    prefix = "PC" if method == "pca" else "t-SNE"
    assert axes[0].get_xlabel() == f"{prefix} 1" and axes[0].get_ylabel() == f"{prefix} 2"
    legend = tick_texts(axes[-1].get_legend().get_texts())
    assert "rotated (source)" in legend and "original (target)" in legend and "class 2" in legend
    assert len(axes[0].collections[0].get_offsets()) == 60


def test_feature_projection_single_panel_accepts_images():
    rng = np.random.default_rng(1)
    fig = plots.feature_projection(rng.random((20, 1, 4, 4)), rng.random((30, 1, 4, 4)))
    assert len([ax for ax in fig.axes if ax.get_xlabel()]) == 1


def test_is_flagged_reads_the_analysis_flags():
    assert plots.is_flagged("negative") and plots.is_flagged("harm") and plots.is_flagged(True)
    for value in ("positive", "help", "inconclusive", "", None, float("nan"), False):
        assert not plots.is_flagged(value)


def test_to_points_scales_fractions_only():
    assert plots.to_points([0.5, 0.25]) == pytest.approx([50.0, 25.0])
    assert plots.to_points([55.0, 80.0]) == pytest.approx([55.0, 80.0])
    assert plots.to_points([-0.1], reference=[0.4, 0.9]) == pytest.approx([-10.0])


def test_gain_heatmaps_can_share_one_colour_scale():
    nt = nt_frame()
    limit = plots.gain_limit(nt)
    assert limit == pytest.approx(30.0)
    fig = Figure(layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, method in zip(axes, ("finetune", "dann")):
        plots.gain_heatmap(nt, method, 5, limit=50.0, ax=ax)
    norms = [ax.collections[0].norm for ax in axes]
    assert all((n.vmin, n.vcenter, n.vmax) == (-50.0, 0.0, 50.0) for n in norms)
    assert len(colorbar_axes(fig)) == 2


def test_training_curves_constant_schedules_go_to_the_title():
    curves = curves_long()
    curves = curves[curves["curve"] != "lambda"]  # only lr left, and it is constant
    fig = plots.training_curves(curves, title="cell")
    assert [ax.get_title() for ax in fig.axes] == ["losses", "accuracies"]
    assert fig.get_suptitle() == "cell\n(constant: lr = 0.001)"
