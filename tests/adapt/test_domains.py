"""The domain layer: families, seeded splits and label budgets, user data files, errors."""

from __future__ import annotations

import bz2
import gzip

import numpy as np
import pytest
from scipy.io import savemat
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier

from adapt.domains import Domain, load_domains
from adapt.domains.digits import DIGITS_DOMAINS
from adapt.domains.shift import load_shift_domains, make_shift_domain
from adapt.errors import DataError


# ------------------------------------------------------------------------------------------- digits
def test_digits_family_has_documented_domains_disjoint_shards():
    domains = load_domains({"kind": "digits"})
    assert list(domains) == list(DIGITS_DOMAINS)
    assert {"original", "rotated"} <= set(domains) and len(domains) >= 5
    assert sum(len(d.X) for d in domains.values()) == 1797  # disjoint shards cover the dataset once
    for d in domains.values():
        assert d.kind == "image" and d.X.shape[1:] == (1, 8, 8) and d.X.dtype == np.float32
        assert d.n_classes == 10 and set(np.unique(d.y)) == set(range(10))
        assert 0.0 <= d.X.min() and d.X.max() <= 1.0


def test_digits_transforms_are_real_shifts():
    d = load_domains({"kind": "digits"})
    flat = {k: v.X.reshape(len(v.X), -1) for k, v in d.items()}
    clf = LogisticRegression(max_iter=2000).fit(flat["original"], d["original"].y)
    acc = {k: clf.score(flat[k], d[k].y) for k in d}
    assert acc["rotated"] < 0.4 and acc["inverted"] < 0.4  # strong shifts
    # inverted is exactly 1 - x of its own shard: pixel mean mirrors the original's
    assert abs(d["inverted"].X.mean() - (1 - d["original"].X.mean())) < 0.02


# ------------------------------------------------------------------------------------------- shift
def test_shift_family_ground_truth():
    fam = load_shift_domains({"n_samples": 800})
    base = fam["base"]
    clf = LogisticRegression(max_iter=2000).fit(base.X, base.y)
    assert clf.score(fam["null"].X, fam["null"].y) > 0.9            # same distribution
    assert clf.score(fam["covariate"].X, fam["covariate"].y) < 0.8   # covariate shift hurts
    assert clf.score(fam["concept"].X, fam["concept"].y) < 0.1       # contradicting labels
    counts = np.bincount(fam["label"].y)
    assert counts[0] > 5 * counts[-1]                                 # label shift: skewed priors
    # concept shift relabels, it does not move x: the same classifier fits after the k -> k+1 renaming
    relabelled = (clf.predict(fam["concept"].X) + 1) % 4
    assert (relabelled == fam["concept"].y).mean() > 0.9


def test_shift_severity_knob_is_monotone():
    base = make_shift_domain("a", n_samples=800)
    clf = LogisticRegression(max_iter=2000).fit(base.X, base.y)
    accs = [clf.score(make_shift_domain("t", covariate=s, n_samples=800).X,
                      make_shift_domain("t", covariate=s, n_samples=800).y) for s in (0.0, 0.5, 1.0)]
    assert accs[0] > accs[1] > accs[2]


@pytest.mark.parametrize("bad", [{"covariate": 2.0}, {"label": -0.1}, {"concept": "x"}])
def test_shift_rejects_bad_severity(bad):
    with pytest.raises(DataError, match="severity"):
        make_shift_domain("x", **bad)


def test_shift_rejects_unknown_key():
    with pytest.raises(DataError, match="data.shifts.a"):
        load_shift_domains({"shifts": {"a": {"rotation": 1}}})


# ------------------------------------------------------------------------------------------- splits
def _toy(name="toy", n=200, k=4):
    rng = np.random.default_rng(0)
    return Domain(name, rng.normal(size=(n, 3)).astype(np.float32), np.arange(n) % k)


def test_split_is_deterministic_disjoint_stratified():
    d = _toy()
    a, b = d.split(seed=3, test_fraction=0.25), d.split(seed=3, test_fraction=0.25)
    assert np.array_equal(a.train, b.train) and np.array_equal(a.test, b.test)
    assert not set(a.train) & set(a.test) and len(a.train) + len(a.test) == len(d.X)
    assert np.array_equal(np.bincount(d.y[a.test]), [12, 12, 12, 12])  # 25% of 50 per class, rounded
    c = d.split(seed=4, test_fraction=0.25)
    assert not np.array_equal(a.test, c.test)
    # independent of the process: the seed is a stable hash, not Python's salted hash()
    assert a.test[:5].tolist() == _toy().split(3, 0.25).test[:5].tolist()


def test_label_budget_sampler():
    d = _toy()
    split = d.split(seed=0)
    lab = d.labelled_subset(split, k=5, seed=0)
    assert np.array_equal(lab, d.labelled_subset(split, k=5, seed=0))
    assert not np.array_equal(lab, d.labelled_subset(split, k=5, seed=1))
    assert set(lab) <= set(split.train) and not set(lab) & set(split.test)
    assert np.array_equal(np.bincount(d.y[lab]), [5, 5, 5, 5])
    assert len(d.labelled_subset(split, k=0, seed=0)) == 0
    assert len(d.labelled_subset(split, k=1000, seed=0)) == len(split.train)  # capped at what exists
    with pytest.raises(DataError):
        d.labelled_subset(split, k=-1, seed=0)


def test_transductive_and_given_test_splits():
    d = _toy()
    t = d.split(seed=0, transductive=True)
    assert np.array_equal(t.train, t.test) and len(t.train) == len(d.X)
    g = Domain("g", d.X, d.y, X_test=d.X[:10], y_test=d.y[:10])
    s = g.split(seed=0)
    assert s.given_test and len(s.test) == 10 and len(s.train) == len(d.X)
    Xtr, ytr, Xte, yte = g.train_test(s)
    assert np.array_equal(Xte, d.X[:10])


# ------------------------------------------------------------------------------------------- arrays
OFFICE_COUNTS = {"amazon": 958, "caltech": 1123, "dslr": 157, "webcam": 295}
OFFICE_FILES = {"amazon": "amazon_SURF_L10.mat", "caltech": "Caltech10_SURF_L10.mat",
                "dslr": "dslr_SURF_L10.mat", "webcam": "webcam_SURF_L10.mat"}
# 1-NN, full source -> full target, l1 + per-domain z-score (shared/data/README.md)
PUBLISHED_1NN = {("amazon", "caltech"): 26.0, ("amazon", "dslr"): 25.5, ("amazon", "webcam"): 29.8,
                 ("caltech", "amazon"): 23.7, ("caltech", "dslr"): 25.5, ("caltech", "webcam"): 25.8,
                 ("dslr", "amazon"): 28.5, ("dslr", "caltech"): 26.3, ("dslr", "webcam"): 63.4,
                 ("webcam", "amazon"): 23.0, ("webcam", "caltech"): 19.9, ("webcam", "dslr"): 59.2}


def test_office_caltech_surf_counts_and_published_1nn(shared_data):
    domains = load_domains({"kind": "arrays", "path": str(shared_data / "office_caltech10_surf"),
                            "files": OFFICE_FILES, "x_key": "fts", "y_key": "labels",
                            "preprocess": ["l1", "zscore"]})
    assert {k: len(v.X) for k, v in domains.items()} == OFFICE_COUNTS
    assert all(d.input_shape == (800,) and d.n_classes == 10 for d in domains.values())
    ours = {}
    for (s, t), published in PUBLISHED_1NN.items():
        nn = KNeighborsClassifier(n_neighbors=1).fit(domains[s].X, domains[s].y)
        ours[(s, t)] = 100 * nn.score(domains[t].X, domains[t].y)
        assert ours[(s, t)] == pytest.approx(published, abs=0.05), (s, t)
    assert np.mean(list(ours.values())) == pytest.approx(31.4, abs=0.05)


def test_office_caltech_discovery_names_the_side_files_it_cannot_read(shared_data):
    """Auto-discovery never drops a file silently: the *_imgs.mat side files lack the feature arrays, so the
    folder is refused naming every one of them; data.files picks the feature files."""
    folder = str(shared_data / "office_caltech10_surf")
    with pytest.raises(DataError, match="auto-discovery found file") as info:
        load_domains({"kind": "arrays", "path": folder, "x_key": "fts", "y_key": "labels"})
    for side in ("Caltech10_SURF_L10_imgs.mat", "amazon_SURF_L10_imgs.mat", "dslr_SURF_L10_imgs.mat",
                 "webcam_SURF_L10_imgs.mat"):
        assert side in str(info.value)
    assert "data.files" in str(info.value)
    domains = load_domains({"kind": "arrays", "path": folder, "x_key": "fts", "y_key": "labels",
                            "files": {k: v for k, v in OFFICE_FILES.items()}})
    assert sorted(domains) == sorted(OFFICE_FILES)


def test_mnist_usps_shared_files(shared_data):
    domains = load_domains({"kind": "arrays", "path": str(shared_data / "mnist_usps"),
                            "x_key": "fts", "y_key": "labels"})
    assert len(domains["MNIST"].X) == 2000 and len(domains["USPS"].X) == 1800
    assert domains["USPS"].class_names == [str(i) for i in range(1, 11)]  # label = digit + 1
    assert np.array_equal(np.bincount(domains["USPS"].y)[:3], [352, 241, 165])


def _write_formats(tmp_path, rng):
    X = {d: rng.normal(size=(40, 5)) for d in ("a", "b", "c", "d")}
    y = {d: np.arange(40) % 4 for d in X}
    np.savez(tmp_path / "a.npz", X=X["a"], y=y["a"])
    savemat(tmp_path / "b.mat", {"fts": X["b"], "labels": y["b"][:, None] + 1 - 1})
    import pandas as pd

    frame = pd.DataFrame(X["c"], columns=[f"f{i}" for i in range(5)]).assign(label=y["c"])
    frame.to_csv(tmp_path / "c.csv", index=False)
    from sklearn.datasets import dump_svmlight_file

    dump_svmlight_file(X["d"][:30], y["d"][:30], str(tmp_path / "d_train.svmlight"))
    dump_svmlight_file(X["d"][30:], y["d"][30:], str(tmp_path / "d_test.svmlight"))
    return X, y


def test_arrays_reads_every_format_and_train_test_pairs(tmp_path):
    X, y = _write_formats(tmp_path, np.random.default_rng(0))
    domains = load_domains({"kind": "arrays", "path": str(tmp_path)})
    assert sorted(domains) == ["a", "b", "c", "d"]
    for name in "abc":
        np.testing.assert_allclose(domains[name].X, X[name], rtol=1e-6)
        assert np.array_equal(domains[name].y, y[name])
    d = domains["d"]
    assert len(d.X) == 30 and len(d.X_test) == 10 and d.split(seed=0).given_test
    np.testing.assert_allclose(d.X_test, X["d"][30:], rtol=1e-5, atol=1e-6)


def test_arrays_preprocessing_formulas(tmp_path):
    rng = np.random.default_rng(1)
    A, B = rng.random((30, 4)) * 5, rng.random((20, 4))
    np.savez(tmp_path / "s.npz", X=A, y=np.arange(30) % 2)
    np.savez(tmp_path / "t.npz", X=B, y=np.arange(20) % 2)
    doms = load_domains({"kind": "arrays", "path": str(tmp_path), "preprocess": ["l1", "zscore"]})
    expect = A / A.sum(1, keepdims=True)
    expect = (expect - expect.mean(0)) / expect.std(0)
    np.testing.assert_allclose(doms["s"].X, expect, rtol=1e-5, atol=1e-5)
    pooled = load_domains({"kind": "arrays", "path": str(tmp_path), "preprocess": ["standardize"]})
    both = np.concatenate([A, B])
    np.testing.assert_allclose(pooled["t"].X, (B - both.mean(0)) / both.std(0), rtol=1e-5, atol=1e-5)


def test_arrays_parquet_and_files_mapping(tmp_path):
    import pandas as pd

    rng = np.random.default_rng(2)
    for name in ("one", "two"):
        pd.DataFrame(rng.normal(size=(12, 3)), columns=list("xyz")).assign(cls=["u", "v", "w"] * 4) \
            .to_parquet(tmp_path / f"{name}.parquet")
    doms = load_domains({"kind": "arrays", "path": str(tmp_path), "label_column": "cls",
                         "files": {"src": "one.parquet", "tgt": {"train": "two.parquet", "test": "one.parquet"}}})
    assert doms["src"].class_names == ["u", "v", "w"] and np.array_equal(doms["src"].y[:3], [0, 1, 2])
    assert doms["tgt"].X_test is not None


@pytest.mark.parametrize(
    "setup, cfg_extra, message",
    [
        (lambda p: None, {"files": {"a": "nope.npz"}}, "nope.npz: data file not found"),
        (lambda p: np.savez(p / "a.npz", X=np.ones((4, 2)), y=np.zeros(4)), {"x_key": "fts"}, "no variable 'fts'"),
        (lambda p: (np.savez(p / "a.npz", X=np.ones((4, 2)), y=np.zeros(4)),
                    np.savez(p / "b.npz", X=np.ones((4, 3)), y=np.zeros(4))), {}, "different feature counts"),
        (lambda p: (np.savez(p / "a.npz", X=np.ones((4, 2)), y=np.zeros(4)),
                    np.savez(p / "b.npz", X=np.ones((4, 2)), y=np.full(4, 7))), {}, "labels do not match"),
        (lambda p: np.savez(p / "a.npz", X=np.full((4, 2), np.nan), y=np.zeros(4)), {}, "NaN"),
        (lambda p: np.savez(p / "a.npz", X=np.ones((4, 2)), y=np.zeros(3)), {}, "one label per sample"),
        (lambda p: (p / "a.csv").write_text("f,label\nx,1\n"), {}, "'f' is not numeric"),
        (lambda p: (p / "a.csv").write_text("f,g\n1,1\n"), {}, "no label column 'label'"),
        (lambda p: (p / "a.npz").write_bytes(b"garbage"), {}, "a.npz: could not read"),
        (lambda p: np.savez(p / "a_train.npz", X=np.ones((4, 2)), y=np.zeros(4)), {}, "no matching _test"),
    ],
)
def test_arrays_bad_input_is_one_clear_line(tmp_path, setup, cfg_extra, message):
    setup(tmp_path)
    with pytest.raises(DataError, match=message) as info:
        load_domains({"kind": "arrays", "path": str(tmp_path), **cfg_extra})
    assert "\n" not in str(info.value)


def test_missing_folder_and_unknown_family(tmp_path):
    with pytest.raises(DataError, match="data folder not found"):
        load_domains({"kind": "arrays", "path": str(tmp_path / "nope")})
    with pytest.raises(DataError, match="unknown family 'foo'"):
        load_domains({"kind": "foo"})


# ------------------------------------------------------------------------------------------- images, digit files, text
def test_imagefolder_layout(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for dom in ("photo", "sketch"):
        for cls in ("cat", "dog"):
            (tmp_path / dom / cls).mkdir(parents=True)
            for i in range(3):
                Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(tmp_path / dom / cls / f"{i}.png")
    (tmp_path / "sketch" / "cow").mkdir()
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(tmp_path / "sketch" / "cow" / "0.jpg")
    # Class folders that differ between domains are refused, naming what each domain lacks...
    with pytest.raises(DataError, match=r"'photo' lacks \['cow'\].*data.classes: intersection"):
        load_domains({"kind": "imagefolder", "path": str(tmp_path), "image_size": 16})
    # ...unless the config states a policy: union keeps every class, intersection only the shared ones.
    doms = load_domains({"kind": "imagefolder", "path": str(tmp_path), "image_size": 16, "classes": "union"})
    assert sorted(doms) == ["photo", "sketch"]
    assert doms["photo"].X.shape == (6, 3, 16, 16) and doms["photo"].X.dtype == np.uint8
    assert doms["sketch"].class_names == ["cat", "cow", "dog"] and len(doms["sketch"].X) == 7
    doms = load_domains({"kind": "imagefolder", "path": str(tmp_path), "image_size": 16,
                         "classes": "intersection"})
    assert doms["sketch"].class_names == ["cat", "dog"] and len(doms["sketch"].X) == 6
    assert sorted(set(doms["sketch"].y.tolist())) == [0, 1]
    assert doms["sketch"].fingerprint() != doms["photo"].fingerprint()
    (tmp_path / "photo" / "cat" / "bad.jpg").write_bytes(b"not an image")
    with pytest.raises(DataError, match="bad.jpg: not a readable image"):
        load_domains({"kind": "imagefolder", "path": str(tmp_path), "classes": "union"})


def _idx(arr: np.ndarray) -> bytes:
    head = bytes([0, 0, 8, arr.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in arr.shape)
    return head + arr.astype(np.uint8).tobytes()


def test_digit_files_mnist_usps_svhn_offline(tmp_path):
    rng = np.random.default_rng(0)
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    imgs = rng.integers(0, 256, (12, 28, 28))
    for part, n in (("train", 12), ("t10k", 6)):
        (raw / f"{part}-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx(imgs[:n])))
        (raw / f"{part}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx(np.arange(n) % 10)))
    (tmp_path / "USPS").mkdir()
    for fname, n in (("usps.bz2", 10), ("usps.t.bz2", 5)):
        lines = [f"{i % 10 + 1} " + " ".join(f"{j + 1}:{-1 + 2 * (j == i):.1f}" for j in range(256)) for i in range(n)]
        (tmp_path / "USPS" / fname).write_bytes(bz2.compress("\n".join(lines).encode()))
    (tmp_path / "SVHN").mkdir()
    for fname, n in (("train_32x32.mat", 7), ("test_32x32.mat", 3)):
        savemat(tmp_path / "SVHN" / fname, {"X": rng.integers(0, 256, (32, 32, 3, n)).astype(np.uint8),
                                              "y": (np.arange(n) % 10 + 1)[:, None]})
    # The tiny files hold 6-10 digits each (SVHN's train file: 0-6), so the class policy must be stated.
    doms = load_domains({"kind": "torchvision", "path": str(tmp_path), "names": ["mnist", "usps", "svhn"],
                         "image_size": 16, "classes": "union"})
    assert doms["mnist"].X.shape == (12, 1, 16, 16) and len(doms["mnist"].X_test) == 6
    np.testing.assert_allclose(doms["mnist"].X.mean(), (imgs / 255).mean(), atol=0.02)
    assert doms["usps"].y.tolist() == list(range(10)) and doms["usps"].X.max() <= 1.0
    assert doms["svhn"].y[:3].tolist() == [1, 2, 3] and doms["svhn"].X.shape[1] == 1
    with pytest.raises(DataError, match="download: true"):
        load_domains({"kind": "torchvision", "path": str(tmp_path / "empty"), "names": ["mnist"]})


def test_hf_local_csv_text_domains(tmp_path):
    import pandas as pd

    rows = [("great product", "pos", "books"), ("awful", "neg", "books"), ("love it", "pos", "dvd"),
            ("broken", "neg", "dvd"), ("fine", "pos", "dvd")]
    pd.DataFrame(rows, columns=["text", "label", "domain"]).to_csv(tmp_path / "reviews.csv", index=False)
    doms = load_domains({"kind": "hf", "path": str(tmp_path / "reviews.csv")})
    assert sorted(doms) == ["books", "dvd"] and doms["dvd"].kind == "text"
    assert doms["books"].X.tolist() == ["great product", "awful"] and doms["books"].class_names == ["neg", "pos"]
    with pytest.raises(DataError, match="no column 'sentence'"):
        load_domains({"kind": "hf", "path": str(tmp_path / "reviews.csv"), "text_column": "sentence"})


# ------------------------------------------------------------------------------------------- pytorch-adapt
def test_pytorch_adapt_imports_beside_torch():
    import torch
    from pytorch_adapt.adapters import DANN  # noqa: F401  (the benchmark compares against these)
    from pytorch_adapt.hooks import DANNHook  # noqa: F401
    from pytorch_adapt.layers import CORALLoss

    x, y = torch.randn(16, 4), torch.randn(20, 4)
    assert torch.isfinite(CORALLoss()(x, y))
    assert torch.__version__.startswith("2.13")
    assert torch.nn.functional.relu(torch.tensor([-1.0, 2.0])).tolist() == [0.0, 2.0]  # torch still works
