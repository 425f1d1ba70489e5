#!/usr/bin/env python3
"""Export a LeRobot policy's chunk prediction to ONNX for reflex, and check it against PyTorch.

Runs where the training code is installed (LeRobot 0.4, torch, onnx, onnxruntime):

    python tools/export/export_lerobot.py CHECKPOINT/pretrained_model --out export/

writes export/model.onnx (inputs named as LeRobot names the features: observation.state,
observation.images.<camera>, and `noise` for diffusion; output `action`, normalized, a whole
chunk), export/reference.safetensors (seeded reference inputs and PyTorch's outputs on them) and
export/check.json (the largest difference between ONNX Runtime and PyTorch). It exits 1 when
they disagree beyond --tolerance. Then, on any machine:

    reflex policy import CHECKPOINT/pretrained_model --onnx export/model.onnx --out BUNDLE \\
        --dataset-info DATASET/meta/info.json

The network takes and gives normalized tensors: normalization stays in reflex (policy.json's
statistics), as LeRobot 0.4 keeps it in its processor pipelines, outside the model.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

SUPPORTED = ("act", "diffusion")


class ChunkModule(torch.nn.Module):
    """A policy's chunk prediction as a plain module: tensors in (in `names` order), chunk out."""

    def __init__(self, predict, names: list[str], owner: torch.nn.Module | None = None):
        super().__init__()
        self.predict = predict
        self.names = names
        # The policy whose method `predict` calls: a submodule, so its weights are parameters of
        # the exported graph rather than constants captured by a closure.
        self.owner = owner

    def forward(self, *tensors):
        return self.predict(dict(zip(self.names, tensors)))


def export_module(module: torch.nn.Module, inputs: dict[str, torch.Tensor], out: Path, opset: int = 17, tolerance: float = 1e-4) -> dict:
    """Exports `module` (called with the tensors of `inputs`, in order) to out/model.onnx with
    those input names and one output `action`; runs ONNX Runtime and PyTorch on `inputs` and
    writes out/reference.safetensors and out/check.json. Returns the check."""
    import onnxruntime as ort
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    names = list(inputs)
    args = tuple(inputs[n] for n in names)
    module.eval()
    with torch.no_grad():
        expected = module(*args)
    model = out / "model.onnx"
    # The legacy (TorchScript) exporter: it traces, so a sampler's loop is unrolled into the graph
    # and its noise is an input; batch 1 fixed, as reflex runs it.
    torch.onnx.export(module, args, str(model), input_names=names, output_names=["action"], opset_version=opset, dynamo=False)
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    got = session.run(["action"], {n: inputs[n].numpy() for n in names})[0]
    diff = float((torch.from_numpy(got) - expected).abs().max())
    scale = float(expected.abs().max()) or 1.0
    check = {
        "inputs": {n: list(inputs[n].shape) for n in names},
        "action": list(expected.shape),
        "max_abs_diff": diff,
        "max_rel_diff": diff / scale,
        "tolerance": tolerance,
        "ok": diff / scale <= tolerance,
    }
    save_file({**{f"input.{n}": inputs[n].contiguous() for n in names}, "output.action": expected.contiguous()}, str(out / "reference.safetensors"))
    (out / "check.json").write_text(json.dumps(check, indent=2) + "\n")
    return check


def reference_inputs(config: dict, seed: int) -> dict[str, torch.Tensor]:
    """Seeded inputs shaped as the checkpoint's features (normalized-scale values), batch 1."""
    g = torch.Generator().manual_seed(seed)
    inputs: dict[str, torch.Tensor] = {}
    for name, f in config["input_features"].items():
        shape = list(f["shape"])
        if f["type"] == "VISUAL":
            size = config.get("resize_imgs_with_padding") or config.get("resize_shape")
            if size:
                shape = [shape[0], *size]
        inputs[name] = torch.randn([1, *shape], generator=g)
    return inputs


def lerobot_module(checkpoint: Path, config: dict, inputs: dict[str, torch.Tensor], seed: int) -> torch.nn.Module:
    from lerobot.policies.factory import get_policy_class

    policy = get_policy_class(config["type"]).from_pretrained(str(checkpoint))
    policy.eval()
    images = [k for k, f in config["input_features"].items() if f["type"] == "VISUAL"]
    if config["type"] == "act":
        names = list(inputs)
        return ChunkModule(lambda batch: policy.predict_action_chunk(batch), names, policy)
    if config["type"] == "diffusion":
        # The sampler's starting noise is an input (`noise`), so reflex feeds it from its seeded
        # generator; the observation is repeated over n_obs_steps (reflex sends the newest one).
        n_obs = int(config.get("n_obs_steps", 1))
        horizon = int(config["horizon"])
        action_dim = int(config["output_features"]["action"]["shape"][0])
        inputs["noise"] = torch.randn([1, horizon, action_dim], generator=torch.Generator().manual_seed(seed + 1))
        names = list(inputs)

        def predict(batch: dict[str, torch.Tensor]) -> torch.Tensor:
            obs = {k: v.unsqueeze(1).expand(-1, n_obs, *v.shape[1:]) for k, v in batch.items() if k != "noise"}
            if images:
                obs["observation.images"] = torch.stack([obs[k] for k in images], dim=-4)
            return policy.diffusion.generate_actions(obs, noise=batch["noise"])

        return ChunkModule(predict, names, policy)
    raise SystemExit(f"policy type {config['type']}: this exporter does {', '.join(SUPPORTED)} (SmolVLA and the pi0 family are not done yet)")


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", type=Path, help="the pretrained_model/ directory of a LeRobot training run")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tolerance", type=float, default=1e-4, help="largest ONNX-vs-PyTorch difference accepted, relative to the largest action")
    a = p.parse_args(argv)
    config = json.loads((a.checkpoint / "config.json").read_text())
    inputs = reference_inputs(config, a.seed)
    module = lerobot_module(a.checkpoint, config, inputs, a.seed)
    check = export_module(module, inputs, a.out, a.opset, a.tolerance)
    print(json.dumps(check))
    return 0 if check["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
