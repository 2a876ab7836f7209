"""Shared test setup: offline Hugging Face, the shared benchmark data folder, a CUDA marker."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
# frozen-prefix features (adapt.features) go to a temporary folder, never the user's ~/.cache; one folder for
# every session (entries are keyed by content and written atomically, so sharing it is safe and leaves no litter)
os.environ.setdefault("TRANSFERLAB_FEATURE_CACHE", str(Path(tempfile.gettempdir()) / "transferlab-test-features"))

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("TRANSFERLAB_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (real benchmarks, never committed); tests needing it skip where it is absent."""
    if not (SHARED_DATA / "office_caltech10_surf").is_dir():
        pytest.skip(f"shared benchmark data not found at {SHARED_DATA} (set TRANSFERLAB_SHARED_DATA)")
    return SHARED_DATA


TINY_SHIFTS = {"a": {}, "b": {"covariate": 0.5}, "c": {"label": 0.5}}


def write_tiny_config(folder: Path, name: str = "tiny", **over) -> Path:
    """A seconds-long matrix config (3 small shift domains, finetune + scratch) written as YAML into folder."""
    import yaml

    cfg = {
        "name": name,
        "data": {"kind": "shift", "n_samples": 90, "n_features": 6, "n_classes": 3, "shifts": TINY_SHIFTS},
        "methods": ["finetune", "scratch"],
        "budgets": [0, 2],
        "seeds": 2,
        "model": {"hidden": [8]},
        "train": {"steps": 20, "batch_size": 16, "eval_every": 10},
    }
    cfg.update(over)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


class PrefersEarly:
    """A stand-in label-free validator whose score falls at every eval point: it prefers the earliest
    checkpoint it is offered (``monkeypatch.setattr(adapt.train, "Selector", PrefersEarly)``)."""

    def __init__(self, rule):
        self.calls = 0

    def score(self, logits):
        self.calls += 1
        return -float(self.calls)


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """Tests run small models and many small matrices: on 2 cores (and a busy CI box) torch's thread hand-offs
    cost more than they save — measured 3–10× slower with 2 threads than with 1 under load."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
