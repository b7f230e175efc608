"""The benchmark harness runs end to end (a smoke test: it checks that it ran and wrote its files,
not that anything was fast)."""
import csv
import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def run_bench(*args):
    result = subprocess.run([sys.executable, "-m", "bench", *args], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_quick_bench_writes_its_tables_and_charts(tmp_path):
    stdout = run_bench("--quick", "--e2e", "--output", str(tmp_path))
    assert "geometric mean ours/torch" in stdout
    assert "targets" in stdout
    rows = list(csv.DictReader(open(tmp_path / "results.csv")))
    assert {r["direction"] for r in rows} == {"forward", "grad_input", "grad_weight"}
    assert all(float(r["ours_s"]) > 0 and float(r["torch_s"]) > 0 for r in rows)
    assert all(r["source"] and r["device"] and r["torch_version"] for r in rows)
    # Float32 results agree with the float64 reference.
    assert all(float(r["ours_rel_error"]) < 1e-4 for r in rows)
    markdown = (tmp_path / "results.md").read_text()
    assert markdown.startswith("# convkernels vs torch")
    lines = markdown.splitlines()
    for i, line in enumerate(lines[:-1]):   # every table's separator has one cell per header cell
        if line.startswith("|") and lines[i + 1].startswith("|---"):
            assert line.count("|") == lines[i + 1].count("|"), line
    for chart in ("ratios.png", "roofline.png"):
        assert (tmp_path / chart).read_bytes().startswith(b"\x89PNG")
    models = list(csv.DictReader(open(tmp_path / "e2e.csv")))
    assert {r["model"] for r in models} == {"resnet18", "resnet50", "mobilenet_v2"}
    assert all(float(r["ours_s"]) > 0 for r in models)


def test_list_names_every_suite_and_each_case_source():
    stdout = run_bench("--list")
    for suite in ("seed", "resnet50", "mobilenet_v2", "shufflenet_v2", "convnext_tiny", "deeplabv3",
                  "replknet31b", "unet_decoder"):
        assert f"\n{suite}: " in f"\n{stdout}"
    assert "torchvision resnet50 224x224: layer1.0.conv2" in stdout
    assert "RepLKNet-31B 224x224: stage 1 block 1 large kernel" in stdout


def test_suites_record_real_shapes_once_each():
    import torch
    import torch.nn.functional as F
    import torchvision

    from bench.suites import NAMES, suite

    for name in NAMES:
        workloads = suite(name)
        assert len({w.shape_key for w in workloads}) == len(workloads), name
        for w in workloads:  # the workload's own shape arithmetic agrees with torch's
            x = torch.empty(2, *w.input_shape, device="meta")
            weight = torch.empty(w.weight_shape, device="meta")
            if w.transposed:
                y = F.conv_transpose2d(x, weight, None, w.stride, w.padding, w.output_padding, w.groups, w.dilation)
            else:
                y = F.conv2d(x, weight, None, w.stride, w.padding, w.dilation, w.groups)
            assert y.shape[1:] == w.output_shape(), (name, w)
    # Every convolution of the model is one layer of one case.
    with torch.device("meta"):
        model = torchvision.models.resnet50()
    convolutions = sum(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    assert sum(len(w.sources) for w in suite("resnet50")) == convolutions


def test_ncu_report_tables_a_visit_s_metrics():
    """bench.ncu_report on the Nsight Compute log of the first H200 visit: a row per kernel launch,
    each placed in the case of bench/ncu_cases.py that launched it."""
    from bench.ncu_report import table

    rows = table(ROOT / "bench/results/gpu-h200-2026-12-04/ncu.csv").splitlines()[2:]
    assert len(rows) == 36
    first, last = rows[0].split(" | "), rows[-1].split(" | ")
    assert first[:3] == ["| dense 3x3 64->64 @56 float32", "general_fprop 128x64x8", "104.8"]
    assert last[:2] == ["| depthwise 31x31 128 @32 bfloat16", "depthwise_wgrad"]


def test_simt_model_quick_prints_its_labelled_table():
    stdout = run_bench("--simt-model", "--quick")
    assert stdout.startswith("SIMT model (emulator counters, not a timing)")
    assert "| case | layout | pass | kernels | sectors/req | wavefronts/req | bank conflicts | FMA/shared B | model floor (ns) |" in stdout
    rows = [line.split(" | ") for line in stdout.splitlines() if line.startswith("| depthwise 3x3")]
    assert [(r[1], r[2]) for r in rows] == [("NCHW", "fprop"), ("NCHW", "dgrad"), ("NCHW", "wgrad")]
    assert all(float(r[-1].rstrip(" |")) >= 1 for r in rows)  # no kernel beats its shape's floor


def test_tune_writes_a_tile_table(tmp_path):
    """On the CPU no launch chooses among tiles (the table is the CUDA implicit GEMMs'): the table
    is empty, and says so."""
    path = tmp_path / "table.json"
    stdout = run_bench("--tune", str(path), "--quick", "--device", "cpu")
    assert "holds an empty table" in stdout
    document = json.loads(path.read_text())
    assert document["format"] == "convkernels tile table" and document["tiles"] == {}
