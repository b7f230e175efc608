"""Tile tables: which block tile the CUDA implicit GEMMs launch, per problem, and a tuner that
times the candidates on the GPU at hand.

The channels_last implicit GEMMs (forward, input gradient, weight gradient) choose a block tile
per problem, by default with a heuristic of padding (csrc/cuda/nhwc_igemm/tile_choice.cuh). A tile
table overrides it: {key: tile}, a key naming a problem as the kernel sees it (GEMM, dtype, math,
geometry) and a tile its block's rows and columns ("128x64")::

    table, report = convkernels.tiles.tune(lambda: convkernels.conv2d(x, w, padding=1))
    convkernels.tiles.save(table, "h200.json")
    convkernels.tiles.load("h200.json")      # or CONVKERNELS_TILE_TABLE=h200.json at import

A key the table lacks, or a tile its launch site cannot take there (a table tuned on another GPU),
leaves the heuristic's choice. The table is process-wide; convkernels.simt.tiles is the emulator's.
``python -m bench --tune FILE`` tunes the bench's suites.
"""
import contextlib
import dataclasses
import json
import warnings

import torch
from torch.utils.benchmark import Timer

FORMAT = "convkernels tile table"
VERSION = 1


@dataclasses.dataclass(frozen=True)
class Choice:
    """A launch site's choice: the problem's key, the tiles it can launch (largest first) and the
    one it launched."""
    key: str
    candidates: tuple
    chosen: str


@dataclasses.dataclass(frozen=True)
class Tuned:
    """A tuned choice: the heuristic's tile, the fastest, each candidate's seconds, and the
    candidates rejected, with why: a result that differed from the heuristic's beyond rounding, or
    a launch that raised."""
    key: str
    heuristic: str
    best: str
    seconds: dict
    rejected: dict

    @property
    def speedup(self):
        """The heuristic tile's time over the best one's (1.0: the heuristic was right)."""
        if self.heuristic not in self.seconds:  # rejected
            return float("nan")
        return self.seconds[self.heuristic] / self.seconds[self.best]


def benchmark_timer(fn, min_run_time=0.05):
    """Median seconds of a call of ``fn``, by torch.utils.benchmark (blocks of calls, synchronised on
    CUDA; the calls that size the blocks, which are not timed, warm up)."""
    return Timer(stmt="fn()", globals={"fn": fn}).blocked_autorange(min_run_time=min_run_time).median


def _tensors(result):
    if isinstance(result, torch.Tensor):
        return [result]
    if isinstance(result, (tuple, list)):
        return [t for t in result if isinstance(t, torch.Tensor)]
    return []


def _relative_difference(result, reference):
    """max |result - reference| / max |reference| over the tensors of both (0.0 where none)."""
    worst = 0.0
    for actual, expected in zip(_tensors(result), _tensors(reference), strict=True):
        scale = expected.double().abs().max().item() if expected.numel() else 0.0
        difference = (actual.double() - expected.double()).abs().max().item() if expected.numel() else 0.0
        worst = max(worst, difference / (scale or 1.0))
    return worst


def _tolerance(result):
    """How far two tiles' results may lie apart, relative to the largest value: they differ in their
    summation order only (float32 accumulators, split differently), so by a unit or two of a half
    type's rounding, and in float32 by up to some tens of float32's units on very deep sums (a
    weight gradient's); a wrong tile differs by far more."""
    dtypes = [t.dtype for t in _tensors(result) if t.is_floating_point()]
    return max([4 * torch.finfo(d).eps for d in dtypes] + [1e-5])


class TileTables:
    """The tile table of one library's CUDA kernels (torch.ops.convkernels or convkernels_simt)."""

    def __init__(self, ops):
        self._ops = ops

    def table(self):
        """The table in use: {key: tile}."""
        keys, tiles = self._ops.tile_table()
        return dict(zip(keys, tiles))

    def set_table(self, table):
        """Replaces the table with ``table`` ({key: tile}, both str); returns the previous one."""
        if not isinstance(table, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in table.items()):
            raise TypeError(f"a tile table is a dict of str keys to str tiles, but got {table!r:.200}")
        keys, tiles = self._ops.exchange_tile_table(list(table), list(table.values()))
        return dict(zip(keys, tiles))

    @contextlib.contextmanager
    def using(self, table):
        """Runs the enclosed code with ``table`` in use, then restores the previous one."""
        previous = self.set_table(table)
        try:
            yield
        finally:
            self.set_table(previous)

    def choices(self, fn):
        """Calls ``fn()``; returns (its result, the Choices its launches made: each key once, in order)."""
        self._ops.record_tile_choices(True)
        try:
            result = fn()
        finally:
            keys, candidates, chosen = self._ops.record_tile_choices(False)
        return result, [Choice(k, tuple(c.split(",")), t) for k, c, t in zip(keys, candidates, chosen)]

    def tune(self, fn, timer=benchmark_timer, progress=None):
        """Times ``fn`` (a zero-argument callable that launches convolutions, returning a tensor or
        a tuple of them, which are checked; anything else is not) with each candidate tile of each
        choice its launches make, one choice at a time with the others at the heuristic's tile, and
        returns (table, [Tuned]): the table names the fastest tile of every choice with more than
        one candidate. A candidate whose result differs from the heuristic's by more than rounding,
        or whose launch raises a RuntimeError, is rejected (and reported), never timed.
        ``timer(fn)`` returns seconds; ``progress(text)``, if given, is called before each choice.
        The table in use is restored afterwards."""
        with self.using({}):
            reference, choices = self.choices(fn)
            tolerance = _tolerance(reference)
            table, report = {}, []
            for choice in (c for c in choices if len(c.candidates) > 1):
                if progress is not None:
                    progress(f"{choice.key}: {', '.join(choice.candidates)}")
                seconds, rejected = {}, {}
                for tile in choice.candidates:
                    with self.using({choice.key: tile}):
                        try:
                            difference = _relative_difference(fn(), reference)
                        except RuntimeError as error:  # e.g. more shared memory than this GPU has
                            rejected[tile] = f"raised {str(error).splitlines()[0]}"
                            continue
                        if not difference <= tolerance:
                            rejected[tile] = f"differs by {difference:.1e} of the largest value"
                            continue
                        seconds[tile] = timer(fn)
                if seconds:
                    table[choice.key] = min(seconds, key=seconds.get)
                    report.append(Tuned(choice.key, choice.chosen, table[choice.key], seconds, rejected))
        return table, report

    def save(self, table, path, device=None):
        """Writes ``table`` to ``path`` as JSON, with the device it was tuned on (default: the
        current CUDA device's name) and torch's version."""
        if device is None and torch.cuda.is_available():
            device = torch.cuda.get_device_name()
        document = {"format": FORMAT, "version": VERSION, "device": device, "torch": torch.__version__,
                    "tiles": dict(sorted(table.items()))}
        with open(path, "w") as f:
            json.dump(document, f, indent=1)
            f.write("\n")

    def load(self, path):
        """Reads a table that ``save`` wrote and puts it in use; returns the previous one. Warns
        where it was tuned on another GPU than the current one."""
        with open(path) as f:
            try:
                document = json.load(f)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}: not a tile table ({error})") from None
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise ValueError(f"{path}: not a tile table (no \"format\": \"{FORMAT}\")")
        if document.get("version") != VERSION:
            raise ValueError(f"{path}: tile table version {document.get('version')!r}, "
                             f"this convkernels reads {VERSION}")
        tuned_on = document.get("device")
        if tuned_on and torch.cuda.is_available() and tuned_on != torch.cuda.get_device_name():
            warnings.warn(f"{path} was tuned on {tuned_on}, not on this {torch.cuda.get_device_name()}: its tiles "
                          "are correct here but may not be the fastest")
        return self.set_table(document.get("tiles", {}))


_default = TileTables(torch.ops.convkernels)
table = _default.table
set_table = _default.set_table
using = _default.using
choices = _default.choices
tune = _default.tune
save = _default.save
load = _default.load

__all__ = ["Choice", "Tuned", "TileTables", "benchmark_timer", "table", "set_table", "using", "choices",
           "tune", "save", "load"]
