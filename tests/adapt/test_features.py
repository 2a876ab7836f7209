"""The frozen-prefix feature cache: identical results, content keys, corrupt entries, atomic writes."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import torch

from adapt import features
from adapt.cells import Cell
from adapt.domains import Domain, load_domains
from adapt.models import build_model
from adapt.train import run_cell

LITE0 = {"backbone": "efficientnet_lite0", "image_size": 32}
TRAIN = {"steps": 16, "batch_size": 16, "eval_every": 8, "device": "cpu", "lr": 0.01}


@pytest.fixture(autouse=True)
def fresh_stores(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_FEATURE_CACHE", str(tmp_path / "features"))
    monkeypatch.setattr(features, "_STORES", {})


@pytest.fixture(scope="module")
def digits():
    return load_domains({"kind": "mnist_uci", "names": ["uci", "mnist"], "max_per_class": 6})


def _frozen_backbone(k: int, seed: int = 0, **model):
    torch.manual_seed(seed)
    m = build_model({**LITE0, **model}, "image", (1, 28, 28), 10)
    m.freeze(f"first:{k}")
    m.train()
    return m.backbone


def _record(digits, params, cache, budget=3, seed=0, model=None, method="finetune"):
    cell = Cell("uci", "mnist", method, method, seed, budget, params, {**LITE0, **(model or {})},
                {**TRAIN, "feature_cache": cache}, {})
    rec = run_cell(cell, digits["uci"], digits["mnist"])
    assert rec["status"] == "ok", rec["reason"]
    rec.pop("wall_time")
    return json.loads(json.dumps(rec))


# ---------------------------------------------------------------------------------------------- identity
@pytest.mark.parametrize("params", [
    {"freeze": "backbone", "freeze_source": True},      # linear probe: the whole backbone from the cache
    {"freeze": "first:4", "freeze_source": True},       # partial: stem + 3 stages from the cache
    {"freeze": "first:6"},                              # source phase trains all, target phase freezes 6
])
def test_cached_and_uncached_training_give_identical_records(digits, params):
    off = _record(digits, params, cache=False)
    on = _record(digits, params, cache=True)
    store = features.store_for(True)
    assert store.stats["computed"] >= 1  # the cache was really used
    again = _record(digits, params, cache=True)
    assert on == off and again == off
    assert off["accuracy"] is not None and off["source_accuracy"] is not None


@pytest.mark.parametrize("model", [
    {"backbone": "resnet18", "pretrained": False, "image_size": 32},                     # all 5 blocks cached
    {"backbone": "resnet18", "pretrained": False, "image_size": 32, "head_hidden": [16]},  # + bottleneck
])
def test_resnet_probe_cached_equals_uncached(digits, model):
    cell = {"freeze": "backbone", "freeze_source": True}
    off = _record(digits, cell, cache=False, model=model)
    on = _record(digits, cell, cache=True, model=model)
    assert features.store_for(True).stats["computed"] == 2 and on == off


def test_the_cache_is_used_across_cells_and_runs(digits):
    probe = {"freeze": "backbone", "freeze_source": True}
    _record(digits, probe, cache=True, budget=3, seed=0)
    store = features.store_for(True)
    assert store.stats["computed"] == 2  # each domain once: uci (source) and mnist (target: train + test rows)
    _record(digits, probe, cache=True, budget=4, seed=1)  # another cell of the run: memory hits only (class 0 has 4)
    assert store.stats["computed"] == 2 and store.stats["memory_hits"] > 0
    features._STORES.clear()  # a new process / run: the disk entries are read back
    _record(digits, probe, cache=True, budget=3, seed=0)
    fresh = features.store_for(True)
    assert fresh.stats["computed"] == 0 and fresh.stats["disk_hits"] == 2


def test_a_prefix_trained_within_the_cell_is_not_written_to_disk(digits, tmp_path):
    _record(digits, {"freeze": "first:6"}, cache=True)  # source phase trains the prefix, target phase freezes it
    assert features.store_for(True).stats["computed"] >= 1
    assert not list((tmp_path / "features").rglob("*.feat"))


def test_no_cache_with_augmentation_or_when_off(digits):
    cell = Cell("uci", "mnist", "finetune", "finetune", 0, 3, {"freeze": "backbone", "freeze_source": True}, LITE0,
                {**TRAIN, "augment": True}, {})
    assert run_cell(cell, digits["uci"], digits["mnist"])["status"] == "ok"
    assert features.store_for(True).stats["computed"] == 0
    assert features.store_for(False) is None


# ---------------------------------------------------------------------------------------------- keys
def test_key_changes_with_weights_data_prefix_input_size_and_preprocessing_never_with_names():
    X = np.random.default_rng(0).random((6, 1, 28, 28), dtype=np.float32)
    backbone = _frozen_backbone(3)
    key = features.cache_key(backbone, 3, X)
    assert features.cache_key(backbone, 3, X.copy()) == key  # content, not object identity
    assert features.cache_key(backbone, 2, X) != key  # prefix
    assert features.cache_key(_frozen_backbone(3, image_size=48), 3, X) != key  # input size
    assert features.cache_key(backbone, 3, X, "meta") != key  # device type
    changed = X.copy()
    changed[4, 0, 10, 10] += 0.01
    assert features.cache_key(backbone, 3, changed) != key  # one pixel
    with torch.no_grad():
        backbone.net._blocks[4]._bn2.running_var.mul_(1.01)  # stage 3 (_blocks 3..4): after the first 3 blocks
    assert features.cache_key(backbone, 3, X) == key  # beyond the prefix: the prefix's output is unchanged
    with torch.no_grad():
        backbone.net._blocks[2]._depthwise_conv.weight[0, 0, 0, 0] += 1e-3  # stage 2: inside the prefix
    assert features.cache_key(backbone, 3, X) != key  # weights
    resnet = build_model({"backbone": "resnet18", "pretrained": False}, "image", (1, 28, 28), 10).backbone
    plain = features.cache_key(resnet, 2, X)
    resnet.normalize = True  # the same weights, another input scaling
    assert features.cache_key(resnet, 2, X) != plain
    # a domain's name is not part of the key: the same images under two names share one entry
    a = Domain("a", X, np.zeros(6, np.int64), kind="image")
    b = Domain("renamed", X.copy(), np.zeros(6, np.int64), kind="image")
    assert features.cache_key(backbone, 3, a.X) == features.cache_key(backbone, 3, b.X)


def test_a_changed_key_misses_the_cache_and_matches_a_direct_computation(tmp_path):
    store = features.FeatureStore(tmp_path / "c")
    X = np.random.default_rng(1).random((5, 1, 28, 28), dtype=np.float32)
    backbone = _frozen_backbone(3)
    first = store.prefix_features(backbone, 3, X)
    assert torch.equal(first, backbone.forward_prefix(torch.from_numpy(X), 3))
    store.prefix_features(backbone, 3, X)
    assert store.stats == {"memory_hits": 1, "disk_hits": 0, "computed": 1, "corrupt": 0}
    store.prefix_features(backbone, 2, X)  # prefix
    X2 = X.copy()
    X2[0, 0, 0, 0] = 0.5
    store.prefix_features(backbone, 3, X2)  # data
    store.prefix_features(_frozen_backbone(3, image_size=40), 3, X)  # input size
    with torch.no_grad():
        backbone.net._conv_stem.weight.mul_(1.001)  # weights
    changed = store.prefix_features(backbone, 3, X)
    assert store.stats["computed"] == 5 and not torch.equal(changed, first)


def test_prefix_needs_frozen_blocks(tmp_path):
    torch.manual_seed(0)
    model = build_model(LITE0, "image", (1, 28, 28), 10).train()
    with pytest.raises(RuntimeError, match="eval mode"):
        features.FeatureStore(tmp_path).prefix_features(model.backbone, 2, np.zeros((2, 1, 28, 28), np.float32))


# ---------------------------------------------------------------------------------------------- disk
def _entry(tmp_path):
    store = features.FeatureStore(tmp_path / "c")
    X = np.random.default_rng(2).random((4, 1, 28, 28), dtype=np.float32)
    backbone = _frozen_backbone(2)
    good = store.prefix_features(backbone, 2, X)
    key = features.cache_key(backbone, 2, X)
    return backbone, X, good, key, store.path(key)


@pytest.mark.parametrize("damage", ["truncate", "flip_payload", "garbage_header", "empty", "other_key"])
def test_a_corrupt_or_partial_entry_is_detected_and_recomputed(tmp_path, damage):
    backbone, X, good, key, path = _entry(tmp_path)
    blob = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(blob[: len(blob) - 100])  # a partial write
    elif damage == "flip_payload":
        path.write_bytes(blob[:-1] + bytes([blob[-1] ^ 0xFF]))
    elif damage == "garbage_header":
        path.write_bytes(features.MAGIC + b"{not json\n" + blob[len(features.MAGIC):])
    elif damage == "empty":
        path.write_bytes(b"")
    else:  # a valid entry of another key copied over this one
        other = features.FeatureStore(tmp_path / "d")
        other.prefix_features(backbone, 1, X)
        path.write_bytes(other.path(features.cache_key(backbone, 1, X)).read_bytes())
    store = features.FeatureStore(tmp_path / "c")  # a new process: nothing in memory
    with pytest.warns(UserWarning, match="unreadable"):
        again = store.prefix_features(backbone, 2, X)
    assert store.stats["corrupt"] == 1 and store.stats["computed"] == 1
    assert torch.equal(again, good)
    assert torch.equal(features.read_entry(path, key), good)  # rewritten whole


def test_concurrent_writers_never_expose_a_torn_entry(tmp_path):
    path = tmp_path / "ab" / "abkey.feat"
    feats = torch.arange(200_000, dtype=torch.float32).reshape(100, 2000)
    features.write_entry(path, "abkey", feats)
    errors, stop = [], threading.Event()

    def writer():
        for _ in range(15):
            features.write_entry(path, "abkey", feats)

    def reader():
        while not stop.is_set():
            try:
                assert torch.equal(features.read_entry(path, "abkey"), feats)
            except Exception as err:  # noqa: BLE001 — any failure is a torn read
                errors.append(err)

    threads = [threading.Thread(target=writer) for _ in range(3)]
    r = threading.Thread(target=reader)
    r.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    r.join()
    assert not errors
    assert [p.name for p in path.parent.iterdir()] == ["abkey.feat"]  # no temporary files left behind


def test_clear_cache_removes_entries_only(tmp_path):
    _, _, _, _, path = _entry(tmp_path)
    keep = tmp_path / "c" / "notes.txt"
    keep.write_text("mine")
    assert features.clear_cache(tmp_path / "c") == 1
    assert not path.exists() and keep.read_text() == "mine"
    assert features._main(["clear", str(tmp_path / "c")]) == 0
    assert features._main(["bogus"]) == 2
