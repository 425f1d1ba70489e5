#!/usr/bin/env python3
"""What can be checked without LeRobot installed: the export path itself (tracing, ONNX Runtime
against PyTorch, the reference file) on two small networks shaped as LeRobot's, an ACT-like one
(state and a camera in, a chunk out) and a diffusion-like one (its sampler's loop unrolled, the
starting noise an input). Usage: selftest.py OUT_DIR; prints one JSON line; exits 1 on a mismatch.
"""
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from export_lerobot import ChunkModule, export_module  # noqa: E402

JOINTS, HORIZON, SIZE = 3, 20, 16


class ActLike(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 8, 3, stride=2)
        self.state = torch.nn.Linear(JOINTS, 32)
        self.head = torch.nn.Linear(32 + 8, HORIZON * JOINTS)

    def forward(self, batch):
        img = self.conv(batch["observation.images.top"]).mean(dim=(2, 3))
        h = torch.cat([torch.relu(self.state(batch["observation.state"])), img], dim=1)
        return self.head(h).view(1, HORIZON, JOINTS)


class DiffusionLike(torch.nn.Module):
    """Ten denoising steps from the input noise, conditioned on the state."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.eps = torch.nn.Linear(JOINTS * 2 + 1, JOINTS)

    def forward(self, batch):
        x = batch["noise"]
        cond = batch["observation.state"].unsqueeze(1).expand(-1, HORIZON, -1)
        for t in range(10, 0, -1):
            tt = torch.full((1, HORIZON, 1), t / 10.0)
            x = x - 0.1 * self.eps(torch.cat([x, cond, tt], dim=-1))
        return x


def main(out: Path) -> int:
    g = torch.Generator().manual_seed(0)
    act_in = {"observation.state": torch.randn(1, JOINTS, generator=g), "observation.images.top": torch.randn(1, 3, SIZE, SIZE, generator=g)}
    act = export_module(ChunkModule(ActLike(), list(act_in)), act_in, out / "act")
    dif_in = {"observation.state": torch.randn(1, JOINTS, generator=g), "noise": torch.randn(1, HORIZON, JOINTS, generator=g)}
    dif = export_module(ChunkModule(DiffusionLike(), list(dif_in)), dif_in, out / "diffusion")
    print(json.dumps({"act": act, "diffusion": dif}))
    return 0 if act["ok"] and dif["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
