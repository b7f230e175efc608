"""The speed targets the harness reports against, and the one mapping of a case to its category.

A target is checked on the geometric mean, over the cases of its category in this run (every
suite and layout), of each direction and dtype separately. The harness prints PASS or FAIL beside
each and asserts nothing.
"""
from dataclasses import dataclass

from bench.measure import geomean


def category(workload):
    """The target category of a workload: by family, and for depthwise by kernel size."""
    family = workload.family()
    if family == "depthwise":
        size = max(workload.kernel)
        return ("depthwise <=7x7" if size <= 7 else
                "depthwise >=13x13" if size >= 13 else "depthwise 8x8-12x12")
    return "dense" if family == "pointwise" else family


@dataclass(frozen=True)
class Target:
    device: str                 # "cpu" or "cuda"
    categories: tuple
    max_ratio: float            # ours / torch time
    dtypes: tuple = ()          # () for every dtype
    min_bandwidth: float = 0.0  # fraction of the measured copy bandwidth ours must reach
    note: str = ""

    def applies(self, device, cat, dtype):
        return device == self.device and cat in self.categories and (not self.dtypes or dtype in self.dtypes)

    def describe(self):
        text = f"ratio <= {self.max_ratio:.2f}"
        if self.min_bandwidth:
            text += f", >= {self.min_bandwidth:.0%} of copy bandwidth"
        return text + (f" ({self.note})" if self.note else "")


TARGETS = [
    # CPU, float32, against torch's own path (oneDNN where it has one).
    Target("cpu", ("depthwise <=7x7", "depthwise 8x8-12x12", "depthwise >=13x13", "transposed"), 1.0,
           ("float32",)),
    Target("cpu", ("dense", "grouped"), 1.4, ("float32",)),
    # CUDA (H200), against cuDNN with benchmark=True.
    Target("cuda", ("depthwise <=7x7",), 0.67, min_bandwidth=0.7),
    Target("cuda", ("depthwise >=13x13",), 0.33),
    Target("cuda", ("dense",), 1.25, ("float32",), note="TF32 off"),
    Target("cuda", ("grouped",), 0.67),
]


@dataclass(frozen=True)
class Verdict:
    """A target's check: geometric means over the ``cases`` of one category, direction and dtype."""
    target: Target
    category: str
    direction: str
    dtype: str
    ratio: float
    bandwidth_fraction: float
    cases: int

    @property
    def passed(self):
        return self.ratio <= self.target.max_ratio and self.bandwidth_fraction >= self.target.min_bandwidth


def check(rows, device):
    """A Verdict for every target, category, direction and dtype with cases in ``rows``."""
    groups = {}
    for r in rows:
        for target in TARGETS:
            if target.applies(device, r["category"], r["dtype"]):
                groups.setdefault((target, r["category"], r["direction"], r["dtype"]), []).append(r)
    return [Verdict(*key, geomean([r["ratio"] for r in members]),
                    geomean([r["ours_bandwidth_fraction"] for r in members]), len(members))
            for key, members in groups.items()]
