#!/usr/bin/env python3
"""A development check against LeRobot itself (never in CI): builds an ACT policy with LeRobot's
own modeling code (random weights, no pretrained backbone) and exports its chunk prediction with
export_lerobot.py's exporter, ONNX Runtime checked against PyTorch. Usage: check_lerobot.py OUT.
Run with LeRobot 0.4 importable (e.g. PYTHONPATH=<lerobot checkout>/src).
"""
import subprocess
import sys
from pathlib import Path

import torch

# The local mirror's torchvision is a CUDA build whose detection ops do not register against CPU
# torch; ACT's ResNet needs none of them, so their registration failures are let through here.
_register_fake = torch.library.register_fake


def _tolerant(*a, **k):
    deco = _register_fake(*a, **k)

    def wrap(fn):
        try:
            return deco(fn)
        except RuntimeError:
            return fn

    return wrap


torch.library.register_fake = _tolerant

from lerobot.configs.types import FeatureType, PolicyFeature  # noqa: E402
from lerobot.policies.act.configuration_act import ACTConfig  # noqa: E402
from lerobot.policies.act.modeling_act import ACTPolicy  # noqa: E402


def main(out: Path) -> int:
    cfg = ACTConfig(
        input_features={"observation.state": PolicyFeature(FeatureType.STATE, (3,)), "observation.images.top": PolicyFeature(FeatureType.VISUAL, (3, 96, 128))},
        output_features={"action": PolicyFeature(FeatureType.ACTION, (3,))},
        chunk_size=20,
        n_action_steps=20,
        pretrained_backbone_weights=None,
        device="cpu",
    )
    torch.manual_seed(0)
    policy = ACTPolicy(cfg)
    s3 = {"mean": torch.tensor([0.1, -0.2, 0.3]), "std": torch.tensor([0.5, 0.25, 2.0]), "min": torch.tensor([-1.0, -1.0, -1.0]), "max": torch.tensor([1.0, 1.0, 1.0])}
    img = {"mean": torch.full((3, 1, 1), 0.45), "std": torch.full((3, 1, 1), 0.225), "min": torch.zeros(3, 1, 1), "max": torch.ones(3, 1, 1)}
    # Saving the config goes through draccus, which fails here on dict fields (seen with the
    # mirror's packages); the export itself needs only the policy object.
    sys.path.insert(0, str(Path(__file__).parent))
    from export_lerobot import ChunkModule, export_module

    g = torch.Generator().manual_seed(0)
    inputs = {"observation.state": torch.randn(1, 3, generator=g), "observation.images.top": torch.randn(1, 3, 96, 128, generator=g)}
    check = export_module(ChunkModule(lambda batch: policy.predict_action_chunk(batch), list(inputs), policy), inputs, out / "export")
    print(check)
    return 0 if check["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
