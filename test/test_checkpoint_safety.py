"""Checkpoints load only as tensors: safetensors or weights_only torch pickles."""

from __future__ import annotations

import argparse
import os
import pickle

import pytest

torch = pytest.importorskip("torch")

from posecrafter_ros.models.checkpoint import (  # noqa: E402
    CheckpointError,
    load_exact,
    read_state_dict,
    select_prefix,
    unwrap_state_dict,
)


class Payload:
    """Unpickling this would run a shell command: the loader must refuse it."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def tiny_module():
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))


def test_pickle_payload_is_refused_and_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.ckpt"
    with open(path, "wb") as f:
        pickle.dump({"state_dict": {"w": torch.zeros(1)}, "extra": Payload(marker)}, f)
    with pytest.raises(CheckpointError, match="weights_only"):
        read_state_dict(path)
    assert not marker.exists()
    torch.save({"model": tiny_module().state_dict(), "hook": Payload(marker)}, path)
    with pytest.raises(CheckpointError):
        read_state_dict(path)
    assert not marker.exists()


def test_official_wrappers_are_stripped(tmp_path):
    sd = tiny_module().state_dict()
    for name, obj in {
        "lightning.ckpt": {"state_dict": sd, "epoch": 3, "global_step": 10},
        "deepspeed.ckpt": {"module": sd},
        "dust3r.pth": {
            "args": argparse.Namespace(model="AsymmetricCroCo3DStereo(...)"),
            "model": sd,
        },
    }.items():
        torch.save(obj, tmp_path / name)
        loaded = read_state_dict(tmp_path / name)
        assert set(loaded) == set(sd)
        assert all(torch.equal(loaded[k], sd[k]) for k in sd)


def test_safetensors_and_bf16_copies_load_into_fp32(tmp_path):
    from safetensors.torch import save_file

    module = tiny_module()
    save_file(
        {k: v.to(torch.bfloat16).contiguous() for k, v in module.state_dict().items()},
        str(tmp_path / "m.safetensors"),
    )
    target = tiny_module()
    load_exact(target, read_state_dict(tmp_path / "m.safetensors"), "tiny")
    for k, v in target.state_dict().items():
        assert v.dtype == torch.float32
        assert torch.allclose(v, module.state_dict()[k], atol=1e-2)


def test_missing_unexpected_and_misshapen_keys_are_named(tmp_path):
    sd = tiny_module().state_dict()
    broken = dict(sd)
    del broken["0.bias"]
    broken["3.weight"] = torch.zeros(1)
    broken["2.weight"] = torch.zeros(5, 5)
    with pytest.raises(CheckpointError) as info:
        load_exact(tiny_module(), broken, "tiny model")
    text = str(info.value)
    assert "0.bias" in text and "3.weight" in text and "2.weight" in text and "tiny model" in text


def test_missing_truncated_and_foreign_files(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        read_state_dict(tmp_path / "absent.ckpt")
    path = tmp_path / "cut.safetensors"
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(100)}, str(path))
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(CheckpointError, match="cannot read"):
        read_state_dict(path)
    cut = tmp_path / "cut.ckpt"
    torch.save({"state_dict": tiny_module().state_dict()}, cut)
    cut.write_bytes(cut.read_bytes()[:-200])
    with pytest.raises(CheckpointError):
        read_state_dict(cut)
    with pytest.raises(CheckpointError, match="no state dict"):
        unwrap_state_dict({"epoch": 1, "optimizer": {"lr": 0.1}})


def test_select_prefix():
    sd = {"model.diffusion_model.a": torch.zeros(1), "first_stage_model.b": torch.zeros(1)}
    assert list(select_prefix(sd, "model.diffusion_model.")) == ["a"]
