"""`import convkernels` works as a user's first line: in a fresh interpreter, before torch is
imported (every other test imports torch first, which would hide a library that needs it loaded)."""
import subprocess
import sys


def test_import_in_a_fresh_interpreter_without_torch_imported_first():
    code = ("import convkernels; "
            "import torch; x = torch.randn(1, 2, 5, 5); w = torch.randn(3, 2, 3, 3); "
            "torch.testing.assert_close(convkernels.conv2d(x, w), torch.nn.functional.conv2d(x, w)); "
            "print(convkernels.__name__)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "convkernels"
