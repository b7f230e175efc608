"""The charts: ratios.png (ours/torch time per case, log scale) and roofline.png (achieved FLOP/s
against arithmetic intensity, ours and torch, under the roofs measured in the same run)."""
import math

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import NullFormatter  # noqa: E402

from bench.measure import DIRECTIONS  # noqa: E402

COLOURS = dict(zip(DIRECTIONS, ("tab:blue", "tab:orange", "tab:green")))


def ratio_chart(path, rows):
    """Horizontal bars, one group per case and one panel per dtype and layout."""
    panels = list(dict.fromkeys((r["dtype"], r["layout"]) for r in rows))
    cases = list(dict.fromkeys((r["suite"], r["case"]) for r in rows))
    fig, axes = plt.subplots(1, len(panels), sharey=True, squeeze=False,
                             figsize=(5 * len(panels) + 3, 1 + 0.3 * len(cases) * len(DIRECTIONS) ** 0.5))
    height = 0.8 / len(DIRECTIONS)
    for ax, (dtype, layout) in zip(axes[0], panels):
        for j, direction in enumerate(DIRECTIONS):
            ratios = {(r["suite"], r["case"]): r["ratio"] for r in rows
                      if (r["dtype"], r["layout"], r["direction"]) == (dtype, layout, direction)}
            ys = [i + (j - 1) * height for i, case in enumerate(cases) if case in ratios]
            # Bars grow from 1.0: leftwards where ours is faster, rightwards where slower.
            ax.barh(ys, [ratios[c] - 1 for c in cases if c in ratios], height, left=1.0,
                    color=COLOURS[direction], label=direction)
        ax.axvline(1.0, color="black", linewidth=1)
        ax.set_xscale("log")
        _power_of_two_ticks(ax, [r["ratio"] for r in rows])
        ax.set_title(f"{dtype}, {layout}")
        ax.set_xlabel("ours / torch time (left of 1: ours faster)")
    axes[0][0].set_yticks(range(len(cases)), [f"{suite}: {case}" for suite, case in cases], fontsize=7)
    axes[0][0].invert_yaxis()
    fig.legend(*axes[0][0].get_legend_handles_labels(), loc="upper center", ncols=len(DIRECTIONS), fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.4 / fig.get_figheight()))
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _power_of_two_ticks(ax, ratios):
    """Ticks at 1/4, 1/2, 1, 2, 4 ... over the ratios' range, labelled as plain numbers."""
    low = math.floor(math.log2(min(min(ratios), 1)))
    high = math.ceil(math.log2(max(max(ratios), 1)))
    ticks = [2.0 ** e for e in range(low, high + 1)]
    ax.set_xlim(ticks[0] / 1.2, ticks[-1] * 1.2)
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.xaxis.set_minor_formatter(NullFormatter())


def roofline_chart(path, rows, peaks, device_name):
    """One panel per dtype: the roof min(peak FLOP/s, intensity x copy bandwidth), and a point per
    case and direction for ours (filled) and torch (hollow)."""
    dtypes = list(dict.fromkeys(r["dtype"] for r in rows))
    fig, axes = plt.subplots(1, len(dtypes), squeeze=False, figsize=(6 * len(dtypes), 5))
    for ax, dtype in zip(axes[0], dtypes):
        members = [r for r in rows if r["dtype"] == dtype]
        peak = peaks.flops[dtype]
        intensities = [r["intensity"] for r in members]
        lo, hi = min(intensities) / 2, max(intensities) * 2
        ridge = peak / peaks.bandwidth
        xs = sorted({lo, hi, min(max(ridge, lo), hi)})
        ax.plot(xs, [min(peak, x * peaks.bandwidth) for x in xs], color="black",
                label=f"roof: {peak / 1e9:.0f} GFLOP/s, {peaks.bandwidth / 1e9:.0f} GB/s")
        for direction in DIRECTIONS:
            for side, face in (("ours", COLOURS[direction]), ("torch", "none")):
                points = [r for r in members if r["direction"] == direction]
                ax.scatter([r["intensity"] for r in points], [r[f"{side}_gflops"] * 1e9 for r in points],
                           edgecolors=COLOURS[direction], facecolors=face, s=24, label=f"{side} {direction}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("arithmetic intensity (FLOP / minimum byte)")
        ax.set_ylabel("achieved FLOP/s")
        ax.set_title(f"{device_name}, {dtype}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
