"""The benchmark harness runs end to end (a smoke test: it checks that it ran and wrote its files,
not that anything was fast)."""
import csv
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_quick_bench_writes_its_tables(tmp_path):
    result = subprocess.run([sys.executable, "-m", "bench", "--quick", "--output", str(tmp_path)],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "geometric mean ours/torch" in result.stdout
    rows = list(csv.DictReader(open(tmp_path / "results.csv")))
    assert {r["direction"] for r in rows} == {"forward", "grad_input", "grad_weight"}
    assert all(float(r["ours_s"]) > 0 and float(r["torch_s"]) > 0 for r in rows)
    # Float32 results agree with the float64 reference.
    assert all(float(r["ours_rel_error"]) < 1e-4 for r in rows)
    assert (tmp_path / "results.md").read_text().startswith("# convkernels vs torch")
