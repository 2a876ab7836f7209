"""``imagefolder``: image domains in the Office-31 / Office-Home / DomainNet layout.

``root/<domain>/<class>/<image>.{jpg,jpeg,png,bmp}`` — every sub-folder of ``data.path`` is a domain, every
sub-folder of a domain is a class (the class list is the union over domains, sorted). Images are decoded
with Pillow, converted to RGB (or ``grayscale: true``), resized to ``image_size`` (default 64; 224 for the
ImageNet ResNets) and kept as ``uint8`` arrays ``(n, C, H, W)`` — a quarter of float32's memory; the
training loop scales them to [0, 1]. ``max_per_class`` caps the images read per class (for quick looks).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..errors import DataError
from .base import Domain

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")


def load_imagefolder_domains(cfg: Mapping, base_dir: Path) -> dict[str, Domain]:
    from PIL import Image, UnidentifiedImageError

    root = Path(cfg["path"]).expanduser()
    root = root if root.is_absolute() else base_dir / root
    if not root.is_dir():
        raise DataError(f"{root}: image folder not found (data.path)")
    size = cfg.get("image_size", 64)
    if isinstance(size, bool) or not isinstance(size, int) or size < 4:
        raise DataError(f"config field 'data.image_size': expected an integer >= 4, got {size!r}")
    gray = bool(cfg.get("grayscale", False))
    cap = cfg.get("max_per_class")
    domain_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not domain_dirs:
        raise DataError(f"{root}: expected one sub-folder per domain (root/<domain>/<class>/*.jpg), found none")
    classes = sorted({c.name for d in domain_dirs for c in d.iterdir() if c.is_dir()})
    if not classes:
        raise DataError(f"{root}: expected class sub-folders inside each domain folder, found none")
    index = {c: i for i, c in enumerate(classes)}
    out = {}
    for ddir in domain_dirs:
        images, labels = [], []
        for cdir in sorted(p for p in ddir.iterdir() if p.is_dir()):
            files = sorted(p for p in cdir.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
            for f in files[:cap] if cap else files:
                try:
                    with Image.open(f) as im:
                        im = im.convert("L" if gray else "RGB").resize((size, size), Image.BILINEAR)
                        arr = np.asarray(im, dtype=np.uint8)
                except (UnidentifiedImageError, OSError) as err:
                    raise DataError(f"{f}: not a readable image ({err})") from None
                images.append(arr[None] if gray else arr.transpose(2, 0, 1))
                labels.append(index[cdir.name])
        if not images:
            raise DataError(f"{ddir}: domain folder holds no images ({', '.join(IMAGE_EXTENSIONS)})")
        out[ddir.name] = Domain(
            name=ddir.name, X=np.stack(images), y=np.array(labels, dtype=np.int64), kind="image",
            class_names=classes, description=f"image folder {ddir} at {size}px", family="imagefolder",
        )
    return out
