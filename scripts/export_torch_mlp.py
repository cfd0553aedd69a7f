#!/usr/bin/env python3
"""Export a PyTorch MLP in the MLP form of the model file (metadata ``widths``,
``activations``, ``final_activation``): ``nn.Linear`` layers with ``nn.Tanh`` or ``nn.Sigmoid``
after every Linear but the last. Same command line as ``scripts/export_torch.py``, which takes
any ``nn.Sequential`` of the supported modules (the ``layers`` form)::

    python scripts/export_torch_mlp.py --model model.pt --data data.pt --loss mse \\
        --out model.safetensors

or from Python: ``export_mlp(model, x, y, "mse", "model.safetensors")``.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_torch import export_mlp, main  # noqa: E402,F401

if __name__ == "__main__":
    main(export=export_mlp)
