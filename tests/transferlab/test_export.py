"""Models out: train.save_models keeps each cell's weights; adapt.load_model and `transferlab export` give them
back; the exported TorchScript reproduces the record's accuracy on the target's test split from loader inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

import adapt
from adapt.domains import load_domains
from transferlab.cli import main


def _image_folder(root):
    """Two domains of uint8 RGB images (the imagefolder loader keeps them uint8): class = a colour stripe."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for d, shift in (("left", 0), ("right", 3)):
        for c in range(3):
            folder = root / d / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(14):
                img = rng.integers(0, 90, (8, 8, 3)).astype(np.uint8)
                img[:, (2 * c + shift) % 8, c] = 230
                Image.fromarray(img).save(folder / f"{i}.png")


def _config(tmp_path, name, save):
    cfg = {"name": name, "data": {"kind": "imagefolder", "path": str(tmp_path / "imgs"), "image_size": 8},
           "methods": ["finetune", "dann", "scratch", "coral-closed"], "budgets": [2], "seeds": [0],
           "pairs": [["left", "right"]],
           "model": {"backbone": "cnn", "channels": [4], "hidden": [16], "dropout": 0.5},
           "train": {"steps": 30, "batch_size": 16, "eval_every": 10, **({"save_models": True} if save else {})}}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _records(run_dir):
    return {r["method"]: r for r in (json.loads(p.read_text()) for p in (run_dir / "cells").glob("*.json"))}


def test_exported_torchscript_reproduces_the_records_accuracy(tmp_path, capsys):
    _image_folder(tmp_path / "imgs")
    out = tmp_path / "run"
    assert main(["run", str(_config(tmp_path, "imgs", True)), "--out", str(out), "--workers", "1",
                 "--progress", "none"]) == 0
    records = _records(out)
    target = load_domains({"kind": "imagefolder", "path": str(tmp_path / "imgs"), "image_size": 8})["right"]
    assert target.X.dtype == np.uint8
    split = target.split(0, 0.3)
    _, _, X_test, y_test = target.train_test(split)
    for method in ("finetune", "dann", "scratch"):
        rec = records[method]
        assert rec["weights"] == f"{rec['key']}.pt"
        state = torch.load(out / "cells" / rec["weights"], weights_only=True)
        assert all(isinstance(v, torch.Tensor) for v in state.values())

        model_file = tmp_path / f"{method}.pt"
        assert main(["export", str(out), "--cell", rec["key"][:8], "--out", str(model_file)]) == 0
        scripted = torch.jit.load(str(model_file))
        logits = scripted(torch.from_numpy(X_test))  # uint8, exactly as the loader gives it
        assert logits.shape == (len(y_test), target.n_classes)
        accuracy = float((logits.argmax(1).numpy() == y_test).mean())
        assert accuracy == rec["accuracy"]
        # the same network as adapt.load_model on the loop's input (uint8 / 255), deterministic (eval mode)
        net = adapt.load_model(out, rec["key"])
        assert not net.training
        with torch.no_grad():
            expected = net(torch.from_numpy(X_test).float() / 255.0)
        assert torch.allclose(logits, expected, atol=1e-5)
        assert torch.equal(scripted(torch.from_numpy(X_test)), logits)
    assert records["coral-closed"]["weights"] is None  # its network reads re-coloured inputs: nothing to ship
    assert main(["export", str(out), "--cell", records["coral-closed"]["key"], "--out", str(tmp_path / "c.pt")]) == 2
    assert "no saved model" in capsys.readouterr().err

    # save_models keeps the weights and nothing else: same keys, same records without it
    plain = tmp_path / "plain"
    assert main(["run", str(_config(tmp_path, "imgs", False)), "--out", str(plain), "--workers", "1",
                 "--progress", "none"]) == 0
    again = _records(plain)
    for method, rec in records.items():
        assert again[method]["key"] == rec["key"]
        assert again[method]["accuracy"] == rec["accuracy"]
        assert "weights" not in again[method]
    assert not list((plain / "cells").glob("*.pt"))
    capsys.readouterr()
    assert main(["export", str(plain), "--cell", rec["key"], "--out", str(tmp_path / "x.pt")]) == 2
    assert "rerun with train.save_models: true" in capsys.readouterr().err

    # turning save_models on in that folder is the same question; the cells lacking weights train again
    assert main(["run", str(_config(tmp_path, "imgs", True)), "--out", str(plain), "--workers", "1",
                 "--progress", "none"]) == 0
    assert {r["key"]: r["accuracy"] for r in _records(plain).values()} == \
        {r["key"]: r["accuracy"] for r in records.values()}
    assert len(list((plain / "cells").glob("*.pt"))) == 3


def test_export_errors_are_one_line(tmp_path, capsys):
    assert main(["export", str(tmp_path), "--cell", "abc", "--out", str(tmp_path / "m.pt")]) == 2
    assert "not a run folder" in capsys.readouterr().err
    (tmp_path / "cells").mkdir()
    assert main(["export", str(tmp_path), "--cell", "abc", "--out", str(tmp_path / "m.pt")]) == 2
    assert "no record" in capsys.readouterr().err


@pytest.mark.skipif(__import__("importlib").util.find_spec("onnx") is not None, reason="onnx is installed")
def test_onnx_without_the_package_says_so(tmp_path, capsys):
    assert main(["export", str(tmp_path), "--cell", "k", "--out", str(tmp_path / "m.onnx"), "--format", "onnx"]) == 2
    assert "needs the onnx package" in capsys.readouterr().err
