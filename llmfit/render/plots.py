"""Charts for design docs (`--plot FILE.svg|png`), drawn with matplotlib on its Agg (file-only) backend.

A renderer never computes: every figure here was computed by the engine (the CLI layer calls it over a
set of contexts or methods, llmfit/cli/plot_data.py) and arrives as plain data. matplotlib is imported
only inside `save_chart`, when a chart is asked for: no command pays for it otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmfit.errors import SpecError

FORMATS = (".svg", ".png")
GIB = 2**30


@dataclass(frozen=True)
class Stack:
    """One stacked bar: (label, bytes) segments, e.g. the memory of one GPU by term."""

    label: str
    segments: list[tuple[str, int]]
    limit_bytes: int | None = None  # device memory, drawn as a line


@dataclass(frozen=True)
class Curve:
    """A line: y against x, with the axis it belongs to (0 left, 1 right)."""

    label: str
    x: list[float]
    y: list[float]
    axis: int = 0
    style: str = "-o"


@dataclass(frozen=True)
class Point:
    label: str
    x: float
    y: float
    marked: bool = False  # on the Pareto front


@dataclass(frozen=True)
class Panel:
    """One plot: stacked bars, or curves against a shared x axis, or labelled points."""

    title: str
    x_label: str = ""
    y_label: str = ""
    y2_label: str = ""
    stacks: list[Stack] = field(default_factory=list)
    curves: list[Curve] = field(default_factory=list)
    points: list[Point] = field(default_factory=list)
    log_x: bool = False
    front_label: str = "Pareto front"


@dataclass(frozen=True)
class Chart:
    title: str
    panels: list[Panel]
    caption: str = ""


def check_path(path: Path) -> Path:
    """--plot takes a .svg or .png file name in an existing folder (checked before any work)."""
    if path.suffix.lower() not in FORMATS:
        raise SpecError(f"--plot {path}: the file name must end in .svg or .png")
    folder = path.expanduser().parent
    if not folder.is_dir():
        raise SpecError(f"--plot {path}: no folder {folder}")
    if path.is_dir():
        raise SpecError(f"--plot {path}: is a folder")
    return path.expanduser()


def _stacks(ax: Any, panel: Panel) -> None:
    labels = [s.label for s in panel.stacks]
    names: list[str] = []
    for stack in panel.stacks:
        names += [name for name, _ in stack.segments if name not in names]
    colours = ["#4c72b0", "#c44e52", "#55a868", "#8172b2", "#ccb974", "#64b5cd", "#937860", "#dddddd"]
    bottoms = [0.0] * len(panel.stacks)
    for index, name in enumerate(names):
        values = [dict(s.segments).get(name, 0) / GIB for s in panel.stacks]
        colour = "#dddddd" if name.startswith("free") else colours[index % (len(colours) - 1)]
        ax.bar(labels, values, bottom=bottoms, label=name, color=colour, edgecolor="white", linewidth=0.5)
        bottoms = [b + v for b, v in zip(bottoms, values, strict=True)]
    limits = {s.limit_bytes for s in panel.stacks if s.limit_bytes}
    for limit in limits:
        ax.axhline(limit / GIB, color="black", linestyle="--", linewidth=1, label=f"device {limit / GIB:,.1f} GiB")
    ax.set_ylabel(panel.y_label or "GiB per GPU")
    ax.legend(fontsize=8, loc="best")
    if len(labels) > 4:
        ax.tick_params(axis="x", labelrotation=45)


def _curves(ax: Any, panel: Panel) -> None:
    axes = [ax]
    if any(c.axis == 1 for c in panel.curves):
        axes.append(ax.twinx())
        axes[1].set_ylabel(panel.y2_label)
    colours = ["#4c72b0", "#c44e52", "#55a868", "#8172b2", "#ccb974", "#64b5cd", "#937860"]
    handles = []
    for index, curve in enumerate(panel.curves):
        (line,) = axes[curve.axis].plot(curve.x, curve.y, curve.style, label=curve.label,
                                        color=colours[index % len(colours)], markersize=4)
        handles.append(line)
    if panel.log_x:
        ax.set_xscale("log", base=2)
    ax.set_xlabel(panel.x_label)
    ax.set_ylabel(panel.y_label)
    ax.legend(handles=handles, fontsize=8, loc="best")
    ax.grid(True, alpha=0.3)


def _points(ax: Any, panel: Panel) -> None:
    other = [p for p in panel.points if not p.marked]
    front = sorted((p for p in panel.points if p.marked), key=lambda p: p.x)
    if other:
        ax.scatter([p.x for p in other], [p.y for p in other], color="#999999", s=18, label="other deployments")
    if front:
        ax.plot([p.x for p in front], [p.y for p in front], "-o", color="#c44e52", label=panel.front_label,
                markersize=5, drawstyle="steps-post")
        for p in front:
            ax.annotate(p.label, (p.x, p.y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xlabel(panel.x_label)
    ax.set_ylabel(panel.y_label)
    ax.legend(fontsize=8, loc="best")
    ax.grid(True, alpha=0.3)


def save_chart(chart: Chart, path: Path) -> Path:
    """Draw the chart into path (.svg or .png); returns the path."""
    import matplotlib

    matplotlib.use("Agg")  # file output only: no display, no GUI toolkit
    import matplotlib.pyplot as plt

    # SVG text stays text (searchable, editable in a doc, smaller) instead of glyph outlines.
    matplotlib.rcParams["svg.fonttype"] = "none"
    matplotlib.rcParams["svg.hashsalt"] = "llmfit"  # stable element ids: the same figures, the same file

    path = check_path(path)
    count = len(chart.panels)
    fig, axes = plt.subplots(1, count, figsize=(6.4 * count, 4.8), squeeze=False)
    try:
        for ax, panel in zip(axes[0], chart.panels, strict=True):
            ax.set_title(panel.title, fontsize=10)
            if panel.stacks:
                _stacks(ax, panel)
            elif panel.points:
                _points(ax, panel)
            else:
                _curves(ax, panel)
        fig.suptitle(chart.title, fontsize=11)
        if chart.caption:
            fig.text(0.01, 0.01, chart.caption, fontsize=7, color="#555555")
        fig.tight_layout(rect=(0, 0.03, 1, 0.95))
        kind = path.suffix.lower().lstrip(".")
        # No date in the metadata: the same figures give the same file (a diff in a docs repo is real).
        metadata = {"Date": None} if kind == "svg" else {"Software": "llmfit"}
        fig.savefig(path, format=kind, dpi=120, metadata=metadata)
    finally:
        plt.close(fig)
    return path
