"""The tile table (convkernels.tiles, csrc/tile_table.h): the channels_last implicit GEMMs launch the
tile it names for a problem, any of their candidates gives torch's result, a name the launch site
cannot take leaves the heuristic's choice, the tuner keeps the fastest correct tile, and a table
survives a round trip through its file and the environment variable. Run by the SIMT emulator,
whose kernel names say which tile launched."""
import json
import os
import re
import subprocess
import sys

import pytest
import torch

from conv_reference import ConvCase, assert_matches_torch, tf32_allowed
from convkernels.tiles import benchmark_timer

simt = pytest.importorskip("convkernels.simt", reason="convkernels._simt was not built (no CUDA headers)")
tiles = simt.tiles

# 72 outputs of 32 channels on 36 pixels: each of the conv GEMM's tiles (128x128, 128x64, 64x64)
# and of the weight gradient's (64 or 128 outputs by 64 or 128 columns of 288) covers it.
CASE = ConvCase(False, (1, 32, 6, 6), (72, 32, 3, 3), kwargs=dict(padding=1))


def launched_tiles(kernels, gemm):
    """The block tiles ("128x64") of the `gemm` kernels ("conv" or "wgrad") among the launched ones."""
    shapes = {
        "conv": [(r"channels_last_igemm_kernel<\w+, TileShape<(\d+), (\d+),", lambda m, n: (m, n)),
                 (r"channels_last_igemm_kernel<\w+, WarpgroupTileShape<(\d+), (\d+),", lambda w, n: (64 * w, n)),
                 (r"channels_last_tma_igemm_kernel<\w+, TmaTileShape<(\d+), \d+>", lambda n: (128, n))],
        "wgrad": [(r"channels_last_wgrad_kernel<\w+, WgradTile<\w+, (\d+), (\d+),", lambda m, n: (m, n)),
                  (r"channels_last_wgrad_kernel<\w+, WarpgroupWgradTile<\w+, (\d+), (\d+)>", lambda n, w: (64 * w, n))],
    }[gemm]
    found = set()
    for name in kernels:
        for pattern, block in shapes:
            if match := re.match(pattern, name):
                found.add("{}x{}".format(*block(*map(int, match.groups()))))
    return found


def operands(dtype=torch.bfloat16, case=CASE):
    x = torch.randn(case.input_shape).to(dtype).contiguous(memory_format=torch.channels_last)
    w = torch.randn(case.weight_shape).to(dtype).contiguous(memory_format=torch.channels_last)
    return x, w


def forward(x, w, case=CASE):
    return lambda: case.ours(simt)(x, w, **case.kwargs)


def weight_gradient(x, w, case=CASE):
    w = w.detach().requires_grad_()
    y = case.ours(simt)(x, w, **case.kwargs)
    dy = torch.randn_like(y)
    return lambda: torch.autograd.grad(y, w, dy, retain_graph=True)[0]


def only_choice(fn, gemm):
    _, choices = tiles.choices(fn)
    (choice,) = [c for c in choices if c.key.startswith(f"{gemm} GEMM")]
    return choice


# (arch, dtype, gemm, the site's candidates, largest first); float32 in IEEE (TF32 off).
SITES = [
    ("sm_80", torch.bfloat16, "conv", ("128x128", "128x64", "64x64")),
    ("sm_80", torch.float64, "conv", ("128x64", "64x64")),
    ("sm_90a", torch.bfloat16, "conv", ("128x256", "128x128", "128x64")),  # TMA and wgmma
    ("sm_80", torch.bfloat16, "wgrad", ("128x128", "64x128", "128x64", "64x64")),
    ("sm_80", torch.float32, "wgrad", ("128x128", "64x128", "128x64", "64x64")),  # on CUDA cores
    ("sm_90a", torch.float16, "wgrad", ("128x128", "64x128", "128x64", "64x64")),  # wgmma
]


@pytest.mark.parametrize("arch,dtype,gemm,candidates", SITES, ids=[f"{a}-{d}-{g}".replace("torch.", "")
                                                                  for a, d, g, _ in SITES])
def test_each_candidate_tile_launches_when_named_and_matches_torch(arch, dtype, gemm, candidates):
    with simt.arch(arch), tf32_allowed(False):
        x, w = operands(dtype)
        fn = (forward if gemm == "conv" else weight_gradient)(x, w)
        choice = only_choice(fn, gemm)
        assert choice.candidates == candidates
        assert choice.chosen in candidates
        with simt.counters() as launched:
            fn()
        assert launched_tiles(launched, gemm) == {choice.chosen}, "the heuristic's tile, with no table"
        for tile in candidates:
            with tiles.using({choice.key: tile}):
                with simt.counters() as launched:
                    fn()
                assert launched_tiles(launched, gemm) == {tile}
                assert_matches_torch(simt, CASE, dtype=dtype, memory_format=torch.channels_last)


def test_keys_name_the_problem_and_dgrad_phases_apart():
    x, w = operands()
    fn = forward(x, w)
    first, again = tiles.choices(fn)[1], tiles.choices(fn)[1]
    assert first == again  # the key depends on the problem, not on the values
    (choice,) = first
    assert choice.key.startswith("conv GEMM, BFloat16 on mma.sync: N=1 in=6x6x32 out=6x6x72 filter=3x3 stride=1x1")
    # A stride-2 dgrad is one GEMM per stride phase, each its own key.
    strided = ConvCase(False, (1, 32, 8, 8), (72, 32, 3, 3), kwargs=dict(stride=2, padding=1))
    x, w = operands(case=strided)
    x.requires_grad_()
    y = strided.ours(simt)(x, w, **strided.kwargs)
    _, choices = tiles.choices(lambda: torch.autograd.grad(y, x, torch.randn_like(y)))
    assert len({c.key for c in choices if c.key.startswith("conv GEMM")}) == 4


def test_a_tile_the_site_cannot_launch_leaves_the_heuristic():
    x, w = operands()
    fn = forward(x, w)
    choice = only_choice(fn, "conv")
    for tile in ("128x256", "banana"):  # a TMA tile on sm_80's mma.sync; not a tile at all
        with tiles.using({choice.key: tile}):
            with simt.counters() as launched:
                fn()
        assert launched_tiles(launched, "conv") == {choice.chosen}


def test_using_restores_the_table_and_set_table_checks_types():
    tiles.set_table({"a": "64x64"})
    try:
        with tiles.using({"b": "128x64"}):
            assert tiles.table() == {"b": "128x64"}
        assert tiles.table() == {"a": "64x64"}
    finally:
        assert tiles.set_table({}) == {"a": "64x64"}
    for bad in ({"a": 64}, [("a", "64x64")], {1: "64x64"}):
        with pytest.raises(TypeError, match="tile table"):
            tiles.set_table(bad)
    assert tiles.table() == {}


def test_tune_keeps_the_fastest_tile_and_restores_the_table():
    x, w = operands()
    fn = forward(x, w)
    key = only_choice(fn, "conv").key
    seconds = {"128x128": 3e-3, "128x64": 1e-3, "64x64": 2e-3}
    timed = []

    def timer(f):  # a stand-in for a GPU's: the time of the tile the table names
        timed.append(tiles.table()[key])
        return seconds[timed[-1]]

    progress = []
    with tiles.using({"elsewhere": "64x64"}):
        table, (tuned,) = tiles.tune(fn, timer=timer, progress=progress.append)
        assert tiles.table() == {"elsewhere": "64x64"}
    assert progress == [f"{key}: 128x128, 128x64, 64x64"]
    assert table == {key: "128x64"}
    assert sorted(timed) == sorted(seconds)
    assert tuned.best == "128x64" and tuned.seconds == seconds and not tuned.rejected
    assert tuned.heuristic == "64x64"  # 36 x 72: padded to 64 x 128 by 64x64, to 128 x 128 by the others
    assert tuned.speedup == pytest.approx(2.0)


def test_tune_rejects_a_tile_whose_result_differs():
    x, w = operands()
    conv = forward(x, w)
    key = only_choice(conv, "conv").key

    def fn():  # as if the 128x128 tile were broken: 5% off
        y = conv()
        return y * 1.05 if tiles.table().get(key) == "128x128" else y

    table, (tuned,) = tiles.tune(fn, timer=lambda f: {"128x128": 1e-3}.get(tiles.table()[key], 2e-3))
    why = tuned.rejected["128x128"]
    assert why.startswith("differs by ") and 0.04 < float(why.split()[2]) < 0.06, why
    assert set(tuned.seconds) == {"128x64", "64x64"} and table[key] in tuned.seconds


def test_tune_rejects_a_tile_whose_launch_raises():
    x, w = operands()
    conv = forward(x, w)
    key = only_choice(conv, "conv").key

    def fn():  # as if the 128x128 tile needed more shared memory than the GPU has
        if tiles.table().get(key) == "128x128":
            raise RuntimeError("CUDA error: invalid argument\nmore lines")
        return conv()

    table, (tuned,) = tiles.tune(fn, timer=lambda f: 1e-3)
    assert tuned.rejected == {"128x128": "raised CUDA error: invalid argument"}
    assert set(tuned.seconds) == {"128x64", "64x64"}


def test_tune_with_the_benchmark_timer():
    x, w = operands()
    table, (tuned,) = tiles.tune(forward(x, w), timer=lambda f: benchmark_timer(f, min_run_time=0.01))
    assert set(tuned.seconds) == {"128x128", "128x64", "64x64"}
    assert all(s > 0 for s in tuned.seconds.values())
    assert table[tuned.key] == min(tuned.seconds, key=tuned.seconds.get)


def test_save_and_load(tmp_path):
    path = tmp_path / "table.json"
    tiles.save({"k1": "128x64", "k0": "64x64"}, path, device="a GPU")
    document = json.loads(path.read_text())
    assert document["tiles"] == {"k0": "64x64", "k1": "128x64"} and document["device"] == "a GPU"
    assert tiles.load(path) == {}
    try:
        assert tiles.table() == {"k0": "64x64", "k1": "128x64"}
    finally:
        tiles.set_table({})
    path.write_text(json.dumps({**document, "version": 99}))
    with pytest.raises(ValueError, match="version 99"):
        tiles.load(path)
    path.write_text("{")
    with pytest.raises(ValueError, match="not a tile table"):
        tiles.load(path)
    path.write_text("{}")
    with pytest.raises(ValueError, match="not a tile table"):
        tiles.load(path)
    assert tiles.table() == {}


def test_load_warns_of_a_table_tuned_on_another_gpu(tmp_path, monkeypatch):
    path = tmp_path / "table.json"
    tiles.save({"k": "64x64"}, path, device="NVIDIA H200")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *args: "NVIDIA A100")
    try:
        with pytest.warns(UserWarning, match="tuned on NVIDIA H200, not on this NVIDIA A100"):
            tiles.load(path)
    finally:
        tiles.set_table({})


def test_the_environment_variable_loads_a_table_at_import(tmp_path):
    path = tmp_path / "table.json"
    tiles.save({"conv GEMM, a problem": "64x64"}, path, device=None)
    code = "import convkernels; print(convkernels.tiles.table())"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "CONVKERNELS_TILE_TABLE": str(path)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "{'conv GEMM, a problem': '64x64'}"


def test_the_bench_tunes_every_direction_of_a_workload():
    """bench/tune.py's tune_case on the emulator's kernels (the same code as on a GPU but for the
    library): a strided 3x3 in bfloat16, channels_last, with a timer that favours 64x64: the
    forward, the input gradient's four stride phases and the weight gradient each get a row and an
    entry, and the table names the favoured tile."""
    from bench.tune import tune_case
    from bench.workloads import conv

    workload = conv("strided 3x3", "a test", 32, 7, 72, 3, stride=2, padding=1)

    def timer(fn):
        return 1e-3 if "64x64" in tiles.table().values() else 2e-3

    table, rows = tune_case(workload, torch.bfloat16, "channels_last", 1, "cpu", False, timer,
                            library=(torch.ops.convkernels_simt, tiles))
    assert [r["direction"] for r in rows] == ["forward"] + ["grad_input"] * 4 + ["grad_weight"]
    assert len(table) == 6 and set(table.values()) == {"64x64"}
    assert all(r["best"] == "64x64" and r["speedup"] == (1.0 if r["heuristic"] == "64x64" else 2.0) for r in rows)
