"""Benchmark figures stay readable at the edges: zero-height bars, one epoch, long titles."""

from __future__ import annotations

import io

import matplotlib.colors
import numpy as np
import pytest
from helpers import tiny_dataset_dict

import benchmark.figures as figures
from benchmark.grid import Cell, RunOutcome


@pytest.fixture
def drawn(monkeypatch):
    """The figures the drawing functions close, kept open for inspection (rendered first)."""
    kept = []
    close = figures.plt.close

    def keep(fig):
        fig.canvas.draw()
        kept.append(fig)

    monkeypatch.setattr(figures.plt, "close", keep)
    yield kept
    for fig in kept:
        close(fig)


def row(label: str, model: str, iou: float, ci: list) -> dict:
    return {"training_dataset": label, "split": "60/40", "augment": True, "model": model, "iou_mean": iou,
            "iou_ci": ci, "ct_fraction": None}


def test_iou_bar_labels_sit_above_the_error_bars_in_black_even_at_zero(drawn) -> None:
    summary = [row("X-rays only", "unet", 0.0, [0.0, 0.0]), row("X-rays only", "mask_rcnn", 1.0, [0.9, 1.0]),
               row("Mixed", "unet", 0.4, [0.3, 0.55]), row("Mixed", "mask_rcnn", 0.2, [None, None])]
    figures.draw_iou_bars(io.BytesIO(), summary)
    (fig,) = drawn
    ax = fig.axes[0]
    labels = {text.get_text(): text for text in ax.texts}
    assert sorted(labels) == ["0.00", "0.20", "0.40", "1.00"]
    for text, top in ((labels["0.00"], 0.0), (labels["1.00"], 1.0), (labels["0.40"], 0.55), (labels["0.20"], 0.2)):
        assert matplotlib.colors.to_rgb(text.get_color()) == (0.0, 0.0, 0.0)
        assert text.xy[1] == pytest.approx(top)  # anchored on the upper CI bound, drawn above it
        assert text.get_va() == "bottom"
        box = text.get_window_extent()
        assert ax.get_window_extent().contains(box.x0, box.y1)  # inside the axes, not cut off
    legend_box = ax.get_legend().get_window_extent()
    assert legend_box.y0 >= ax.get_window_extent().y1 - 1  # the legend hides no bar


def test_loss_curves_of_one_epoch_show_a_single_integer_tick(drawn) -> None:
    runs = [{"training_dataset": "Mixed", "split": "60/40", "augment": True, "model": "unet", "seed": 0,
             "train_loss": [1.7]}]
    figures.draw_loss_curves(io.BytesIO(), runs)
    (fig,) = drawn
    ax = fig.axes[0]
    visible = [tick for tick in ax.get_xticks() if ax.get_xlim()[0] <= tick <= ax.get_xlim()[1]]
    assert visible == [1.0]


def test_overlay_title_fits_a_figure_of_one_model(drawn) -> None:
    data = tiny_dataset_dict()
    cell = Cell("Mixed (5/6 of the training CXRs replaced by CT projections of annotated chest CTs)", "mixed",
                "60/40", True, data)
    per_image = [{"has_lesion": True, "iou": 0.5} for _ in range(len(data["test"]))]
    areas = {k: np.zeros((64, 64), dtype=bool) for k in range(len(data["test"]))}
    figures.draw_overlays(io.BytesIO(), cell, [RunOutcome({"model": "unet", "per_image": per_image}, areas)])
    (fig,) = drawn
    title = fig._suptitle
    box, page = title.get_window_extent(), fig.bbox
    assert page.x0 <= box.x0 and box.x1 <= page.x1
    assert "green: ground truth" in title.get_text() and "CT projections" in title.get_text()


def test_loss_axis_is_logarithmic_only_when_the_losses_differ_in_scale(drawn) -> None:
    def loss_run(model: str, losses: list[float]) -> dict:
        return {"training_dataset": "Mixed", "split": "60/40", "augment": True, "model": model, "seed": 0,
                "train_loss": losses}

    figures.draw_loss_curves(io.BytesIO(), [loss_run("unet", [1.7, 1.3, 1.0])])
    figures.draw_loss_curves(io.BytesIO(), [loss_run("unet", [1.7, 1.3, 1.0]), loss_run("mask_rcnn", [11.0, 6.0, 4.0])])
    close_scales, far_scales = drawn
    assert close_scales.axes[0].get_yscale() == "linear"
    assert far_scales.axes[0].get_yscale() == "log"
    labels = [t.get_text() for t in far_scales.axes[0].get_yticklabels(minor=True) if t.get_text()]
    assert labels and set(labels) <= {"0.2", "0.5", "2", "5", "20", "50"}
