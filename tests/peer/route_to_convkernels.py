"""pytest plugin for `make peer-test`: PyTorch's own tests, with torch.nn.functional.conv2d and
conv_transpose2d routed to convkernels.

A plugin (-p) loads before pytest imports the test modules, and so before torch's OpInfo and
ModuleInfo databases, which keep the function objects they find when imported. nn.Conv2d and
nn.ConvTranspose2d look F.conv2d / F.conv_transpose2d up at each call.
"""
import torch.nn.functional as F

import convkernels

F.conv2d = convkernels.conv2d
F.conv_transpose2d = convkernels.conv_transpose2d
