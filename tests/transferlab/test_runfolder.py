"""A run folder tells the truth: data identity, one question per folder, bad input caught before training.

Every refusal here is checked the same way: exit code 2, one ``transferlab: error:`` line naming the culprit,
no traceback, and the run folder byte-for-byte as it was (every file, run.json included).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import REPO
from transferlab.cli import main

INLINE = ["--workers", "1", "--threads", "1", "--progress", "none"]


# ---------------------------------------------------------------------------------------------- helpers
def blobs(rng, n_per_class=(10, 10, 10), d=4, shift=0.0):
    """Three well-separated Gaussian classes in ``d`` dimensions (labels 0..K-1)."""
    X = np.concatenate([rng.normal(size=(n, d)) + 4 * k + shift for k, n in enumerate(n_per_class)])
    y = np.concatenate([np.full(n, k) for k, n in enumerate(n_per_class)])
    return X, y


def write_arrays(folder: Path, seed: int = 0, **per_domain) -> Path:
    """``folder/data/{a,b}.npz`` (or the domains given as name=(X, y))."""
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    domains = per_domain or {"a": blobs(rng), "b": blobs(rng, shift=0.5)}
    for name, (X, y) in domains.items():
        np.savez(data / f"{name}.npz", X=X, y=y)
    return data


def write_config(folder: Path, name: str = "rf", text: str | None = None, **over) -> Path:
    cfg = {"name": name, "data": {"kind": "arrays", "path": "data"}, "methods": ["finetune"], "budgets": [0],
           "seeds": 1, "model": {"hidden": [8]}, "train": {"steps": 6, "batch_size": 8, "eval_every": 3}}
    if "backbone" in over.get("model", {}):  # another backbone: its own keys only
        cfg["model"] = {}
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    path = folder / f"{name}.yaml"
    path.write_text(text if text is not None else yaml.safe_dump(cfg, sort_keys=False))
    return path


def run(args, capsys) -> tuple[int, str, str]:
    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (names and bytes): 'untouched' means equal snapshots."""
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_refused(rc: int, err: str, *needles: str) -> str:
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("transferlab: error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished 2-cell run (a→b, b→a, finetune, seed 0) on arrays data, copied fresh for each test."""
    root = tmp_path_factory.mktemp("finished")
    write_arrays(root)
    cfg = write_config(root)
    assert main(["run", str(cfg), "--out", str(root / "out"), *INLINE]) == 0
    return root


@pytest.fixture
def workdir(finished_run, tmp_path):
    """``(folder, config, out)``: a copy of the finished run, its data and config."""
    dst = tmp_path / "w"
    shutil.copytree(finished_run, dst)
    info = json.loads((dst / "out" / "run.json").read_text())  # the copy's run names the copy's config
    info["config_path"] = str(dst / "rf.yaml")
    (dst / "out" / "run.json").write_text(json.dumps(info))
    return dst, dst / "rf.yaml", dst / "out"


# ---------------------------------------------------------------------------------------------- identity
def test_changed_data_is_refused_and_supersede_makes_new_cells(workdir, capsys):
    folder, cfg, out = workdir
    before = snapshot(out)
    info = json.loads((out / "run.json").read_text())
    assert set(info["fingerprints"]) == {"a", "b"}
    records = [json.loads(p.read_text()) for p in (out / "cells").glob("*.json")]
    assert {r["data_fingerprints"]["target"] for r in records} == set(info["fingerprints"].values())

    rng = np.random.default_rng(99)  # same shapes and labels, noise for features: only the content differs
    X, y = blobs(rng, shift=0.5)
    np.savez(folder / "data" / "b.npz", X=rng.normal(size=X.shape), y=y)
    rc, _, err = run(["run", str(cfg), "--out", str(out), *INLINE], capsys)
    assert_refused(rc, err, str(out), "data fingerprint of domain 'b'", "--out", "--supersede")
    assert snapshot(out) == before
    # reading the finished run against the changed files is refused too (explanations, report distances)
    rc, _, err = run(["explain", str(out)], capsys)
    assert_refused(rc, err, "data changed on disk since the run", "'b'")
    from transferlab.distances import ensure_run_distances, run_domains

    with pytest.raises(Exception, match="fingerprint of domain"):
        run_domains(json.loads((out / "run.json").read_text()), out)
    assert "fingerprint of domain" in ensure_run_distances(out)   # said in one line; nothing written
    assert snapshot(out) == before

    rc, stdout, _ = run(["run", str(cfg), "--out", str(out), "--supersede", *INLINE], capsys)
    assert rc == 0
    assert "2 computed now" in stdout and "0 already done" in stdout  # new data, new cells: nothing reused
    after = snapshot(out)
    for name, blob in before.items():
        if name.startswith("cells/"):
            assert after[name] == blob  # the old question's records are kept byte for byte...
    info = json.loads((out / "run.json").read_text())
    assert info["history"][-1]["change"] == "superseded"
    assert info["history"][-1]["fingerprints"]["b"] != info["fingerprints"]["b"]
    with pytest.warns(UserWarning, match="2 record"):
        from analysis import load_results

        frame = load_results(out)
    assert len(frame) == 2 and frame.attrs["other_records"] == 2  # ...but not reported as the new ones
    assert set(frame["cell_id"]) == {c["key"] for c in info["cells"]}
    assert len(load_results(out, cells="all")) == 4
    from analysis import load_curves, load_outcomes

    current = {c["key"] for c in info["cells"]}
    assert set(load_curves(out)["cell_id"]) == current  # curves and outcomes: the current question's only
    assert set(load_outcomes(out)["cell_id"]) == current
    rc, stdout, _ = run(["status", str(out)], capsys)
    assert rc == 0 and "2 record(s) in cells/ belong to cells not in the current config" in stdout
    assert "history: 1 earlier config(s) of this folder; the last was superseded" in stdout


def test_fingerprint_is_content_not_name_and_sees_one_value():
    from adapt.domains import Domain

    X = np.arange(12, dtype=np.float32).reshape(6, 2)
    y = np.array([0, 1, 0, 1, 0, 1])
    a = Domain("a", X, y)
    assert Domain("other", X.copy(), y.copy()).fingerprint() == a.fingerprint()
    X2 = X.copy()
    X2[3, 1] += 1e-3
    assert Domain("a", X2, y).fingerprint() != a.fingerprint()
    assert Domain("a", X, y[::-1].copy()).fingerprint() != a.fingerprint()
    texts = Domain("t", np.array(["ab", "c"], dtype=object), np.array([0, 1]), kind="text")
    split = Domain("t", np.array(["a", "bc"], dtype=object), np.array([0, 1]), kind="text")
    assert texts.fingerprint() != split.fingerprint()


@pytest.mark.parametrize("change,named", [
    ({"train": {"steps": 7}}, "train.steps (6 → 7)"),
    ({"model": {"hidden": [16]}}, "model.hidden"),
    ({"data": {"test_fraction": 0.4}}, "data.test_fraction"),
    ({"methods": [{"name": "finetune", "freeze": "backbone"}]}, "methods[finetune] parameters"),
])
def test_a_config_that_changes_what_cells_mean_is_refused(workdir, capsys, change, named):
    folder, _, out = workdir
    before = snapshot(out)
    other = write_config(folder, name="changed", **change)
    rc, _, err = run(["run", str(other), "--out", str(out), *INLINE], capsys)
    assert_refused(rc, err, "different question", named, "--supersede")
    assert snapshot(out) == before


def test_a_speed_only_setting_is_not_a_new_question(workdir, capsys):
    folder, _, out = workdir
    before = snapshot(out)
    cfg = write_config(folder, name="cache", train={"feature_cache": "memory"})
    rc, stdout, _ = run(["run", str(cfg), "--out", str(out), *INLINE], capsys)
    assert rc == 0 and "2 already done" in stdout and "0 computed now" in stdout
    assert {k: v for k, v in snapshot(out).items() if k.startswith("cells/")} == \
        {k: v for k, v in before.items() if k.startswith("cells/")}


def test_moved_data_with_the_same_content_is_the_same_run(workdir, capsys):
    folder, _, out = workdir
    before = snapshot(out)
    shutil.copytree(folder / "data", folder / "elsewhere")
    cfg = write_config(folder, name="moved", data={"path": str((folder / "elsewhere").resolve())})
    rc, stdout, _ = run(["run", str(cfg), "--out", str(out), *INLINE], capsys)
    assert rc == 0 and "2 already done" in stdout and "0 computed now" in stdout
    after = snapshot(out)
    assert all(after[k] == v for k, v in before.items() if k.startswith("cells/"))


def test_adding_seeds_extends_the_run_and_reuses_finished_cells(workdir, capsys):
    folder, _, out = workdir
    before = snapshot(out)
    old_cells = {k: v for k, v in before.items() if k.startswith("cells/")}
    more = write_config(folder, name="more", seeds=2, methods=["finetune", "scratch"], budgets=[0, 2])
    rc, stdout, _ = run(["run", str(more), "--out", str(out), *INLINE], capsys)
    assert rc == 0
    # 2 pairs × (finetune at budgets 0, 2 + scratch at 2) × 2 seeds = 12 cells; the 2 finished ones are kept
    assert "12 cells:" in stdout and "2 already done" in stdout and "10 computed now" in stdout
    after = snapshot(out)
    for name, blob in old_cells.items():
        assert after[name] == blob
    info = json.loads((out / "run.json").read_text())
    assert len(info["cells"]) == 12 and info["history"][-1]["cells"] == 2
    assert info["history"][-1]["change"] == "cells added or removed"
    from analysis import load_results

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every record is the current config's: no warning
        frame = load_results(out)
    assert len(frame) == 12 and frame.attrs["other_records"] == 0


# ---------------------------------------------------------------------------------------------- pre-flight
def _image_folder(root: Path, classes_by_domain: dict[str, list[str]], n: int = 3) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for dom, classes in classes_by_domain.items():
        for cls in classes:
            (root / "images" / dom / cls).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(
                    root / "images" / dom / cls / f"{i}.png")
    return root / "images"


def _csv(folder: Path, name: str, text: str) -> None:
    (folder / "data").mkdir(exist_ok=True)
    (folder / "data" / f"{name}.csv").write_text(text)


def _good_csv(n_per_class: int = 4) -> str:
    rows = [f"{k + 0.1 * i},{-k},{k}" for k in range(2) for i in range(n_per_class)]
    return "f0,f1,label\n" + "\n".join(rows) + "\n"


def _new_data(folder: Path) -> Path:
    data = folder / "data"
    shutil.rmtree(data)
    data.mkdir()
    return data


def case_cnn_on_vectors(folder):
    return write_config(folder, name="c", model={"backbone": "cnn"}), ["model.backbone", "'cnn'", "vector"]


def case_hf_on_vectors(folder):
    return write_config(folder, name="c", model={"backbone": "hf"}), ["model.backbone", "'hf'", "vector"]


def case_mlp_on_text(folder):
    (folder / "reviews.csv").write_text("text,label,domain\n" + "\n".join(
        f"{w} item {i},{i % 2},{d}" for d in ("books", "dvd") for i, w in enumerate(["good", "bad"] * 3)) + "\n")
    cfg = write_config(folder, name="c", data={"kind": "hf", "path": "reviews.csv"})
    return cfg, ["model.backbone", "'mlp'", "text", "hf"]


def case_missing_weights(folder):
    _image_folder(folder, {"p": ["x", "y"], "q": ["x", "y"]})
    cfg = write_config(folder, name="c", data={"kind": "imagefolder", "path": "images", "image_size": 8},
                       model={"backbone": "resnet18", "weights": "no_such_weights.pth"})
    return cfg, ["model.weights", "no_such_weights.pth"]


def case_label_spaces_differ(folder):
    rng = np.random.default_rng(1)
    X, y = blobs(rng, (10, 10))
    write_arrays(_new_data(folder).parent, a=blobs(rng), b=(X, y))
    return write_config(folder, name="c"), ["'b' lacks ['2']", "data.classes: intersection"]


def case_image_class_folders_differ(folder):
    _image_folder(folder, {"p": ["cat", "dog"], "q": ["cat", "cow"]})
    cfg = write_config(folder, name="c", data={"kind": "imagefolder", "path": "images", "image_size": 8})
    return cfg, ["'p' lacks ['cow']", "'q' lacks ['dog']"]


def case_class_too_small_for_split(folder):
    rng = np.random.default_rng(2)
    write_arrays(_new_data(folder).parent, a=blobs(rng), b=blobs(rng, (10, 10, 1)))
    return write_config(folder, name="c"), ["domain 'b'", "'2': 1", "at least 2 per class"]


def case_zero_features(folder):
    _new_data(folder)
    np.savez(folder / "data" / "a.npz", X=np.zeros((6, 0)), y=np.array([0, 1] * 3))
    np.savez(folder / "data" / "b.npz", X=np.zeros((6, 0)), y=np.array([0, 1] * 3))
    return write_config(folder, name="c"), ["a.npz", "no feature columns"]


def case_only_a_label_column(folder):
    _new_data(folder)
    _csv(folder, "a", "label\n0\n1\n0\n1\n")
    _csv(folder, "b", _good_csv())
    return write_config(folder, name="c"), ["a.csv", "only the label column 'label'"]


def case_budget_above_labels(folder):
    return write_config(folder, name="c", budgets=[9]), ["'budgets'", "budget 9", "has 7", "budget_policy: cap"]


def case_duplicate_yaml_key(folder):
    text = "name: c\ndata: {kind: arrays, path: data}\nseeds: 1\nmethods: [finetune]\nseeds: 2\n"
    return write_config(folder, name="c", text=text), ["c.yaml", "'seeds' appears twice", "lines 3 and 5"]


def case_empty_label_in_text_table(folder):
    (folder / "reviews.csv").write_text("text,label,domain\nfine,1,books\nmeh,,books\nok,0,dvd\nbad,1,dvd\n")
    cfg = write_config(folder, name="c", data={"kind": "hf", "path": "reviews.csv"}, model={"backbone": "hf"})
    return cfg, ["reviews.csv", "column 'label' (data.label_column) is empty in data row(s) 2"]


def case_key_not_for_backbone(folder):
    cfg = write_config(folder, name="c", model={"backbone": "resnet18", "hidden": [64]})
    return cfg, ["model.hidden", "does not apply to backbone 'resnet18'", "head_hidden"]


def case_key_not_for_kind(folder):
    return write_config(folder, name="c", data={"image_size": 32}), ["data.image_size", "does not apply",
                                                                      "'arrays'"]


def case_auto_discovery_skips_a_file(folder):
    np.savez(folder / "data" / "c_meta.npz", paths=np.array(["x.jpg", "y.jpg"]))
    return write_config(folder, name="c"), ["auto-discovery", "c_meta.npz", "data.files"]


def case_npz_beside_csv(folder):
    _csv(folder, "a", _good_csv())
    return write_config(folder, name="c"), ["a.csv and a.npz", "domain 'a'"]


def case_one_class_domain(folder):
    rng = np.random.default_rng(3)
    X, _ = blobs(rng)
    write_arrays(_new_data(folder).parent, a=(X, np.zeros(len(X), dtype=int)), b=(X, np.zeros(len(X), dtype=int)))
    return write_config(folder, name="c"), ["domain 'a'", "one class ('0')", "at least two classes"]


def case_one_sample_domain(folder):
    _new_data(folder)
    _csv(folder, "a", _good_csv())
    _csv(folder, "b", "f0,f1,label\n1.0,2.0,1\n")
    return write_config(folder, name="c"), ["domain 'b'", "one class", "1 sample"]


def case_header_only_csv(folder):
    _new_data(folder)
    _csv(folder, "a", _good_csv())
    _csv(folder, "b", "f0,f1,label\n")
    return write_config(folder, name="c"), ["b.csv", "header but no rows"]


def case_empty_label_cell(folder):
    _new_data(folder)
    _csv(folder, "a", _good_csv())
    _csv(folder, "b", "f0,f1,label\n1,2,0\n3,4,\n5,6,1\n")
    return write_config(folder, name="c"), ["b.csv", "label column 'label' is empty on line(s) 3"]


PREFLIGHT = [case_cnn_on_vectors, case_hf_on_vectors, case_mlp_on_text, case_missing_weights,
             case_label_spaces_differ, case_image_class_folders_differ, case_class_too_small_for_split,
             case_zero_features, case_only_a_label_column, case_budget_above_labels, case_duplicate_yaml_key,
             case_key_not_for_kind, case_key_not_for_backbone, case_auto_discovery_skips_a_file, case_npz_beside_csv, case_one_class_domain,
             case_one_sample_domain, case_header_only_csv, case_empty_label_cell, case_empty_label_in_text_table]


@pytest.fixture
def no_training(monkeypatch):
    """A case that wrongly passes the checks must not train a cell."""
    import transferlab.executors

    def refuse(*args, **kwargs):
        raise AssertionError("bad input reached the executor")

    monkeypatch.setattr(transferlab.executors.LocalExecutor, "run", refuse)


@pytest.mark.parametrize("case", PREFLIGHT, ids=[c.__name__.removeprefix("case_") for c in PREFLIGHT])
def test_bad_input_is_one_line_exit_2_before_training_folder_untouched(workdir, capsys, no_training, case):
    folder, _, out = workdir
    before = snapshot(out)
    cfg, needles = case(folder)
    rc, _, err = run(["run", str(cfg), "--out", str(out), *INLINE], capsys)
    assert_refused(rc, err, *needles)
    assert snapshot(out) == before
    # a fresh --out is not even created
    rc, _, err = run(["run", str(cfg), "--out", str(folder / "fresh"), *INLINE], capsys)
    assert_refused(rc, err, *needles)
    assert not (folder / "fresh").exists()


def test_debug_flag_shows_the_traceback_behind_the_line(workdir, capsys):
    folder, _, out = workdir
    cfg, _ = case_cnn_on_vectors(folder)
    rc, _, err = run(["run", str(cfg), "--out", str(out), "--debug"], capsys)
    assert rc == 2 and "Traceback" in err and err.strip().splitlines()[-1].startswith("transferlab: error:")


def test_budget_policy_cap_records_the_real_label_count(workdir, capsys):
    folder, _, _ = workdir
    # b has 10 samples per class; the split holds out 3, so the training pool has 7 per class (21 in all)
    cfg = write_config(folder, name="cap", budgets=[9], budget_policy="cap")
    out = folder / "capped"
    rc, _, err = run(["run", str(cfg), "--out", str(out), *INLINE], capsys)
    assert rc == 0, err
    records = [json.loads(p.read_text()) for p in (out / "cells").glob("*.json")]
    assert len(records) == 2 and {r["budget"] for r in records} == {9}
    assert {r["target_labels"] for r in records} == {21}
    from adapt.domains import load_domains

    b = load_domains({"kind": "arrays", "path": str(folder / "data")})["b"]
    assert len(b.labelled_subset(b.split(0, 0.3), 9, 0)) == 21  # the count the trainer's budget draw gives


def test_class_policy_intersection_runs_on_the_shared_classes(workdir, capsys):
    folder, _, _ = workdir
    case_label_spaces_differ(folder)
    cfg = write_config(folder, name="inter", data={"classes": "intersection"})
    out = folder / "inter_out"
    rc, _, err = run(["run", str(cfg), "--out", str(out), *INLINE], capsys)
    assert rc == 0, err
    info = json.loads((out / "run.json").read_text())
    assert {d["n_classes"] for d in info["domain_info"].values()} == {2}


# ---------------------------------------------------------------------------------------------- tracebacks
def test_unwritable_output_folder_is_one_line(workdir, capsys, monkeypatch):
    folder, cfg, _ = workdir
    locked = folder / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    if os.geteuid() == 0:  # root writes anywhere: make the folder refuse writes the way a non-root user sees it
        import tempfile

        real = tempfile.mkstemp

        def refuse(*args, dir=None, **kwargs):
            if dir is not None and Path(dir).resolve().is_relative_to(locked.resolve()):
                raise PermissionError(13, "Permission denied")
            return real(*args, dir=dir, **kwargs)

        monkeypatch.setattr(tempfile, "mkstemp", refuse)
    rc, _, err = run(["run", str(cfg), "--out", str(locked), *INLINE], capsys)
    assert_refused(rc, err, str(locked), "cannot write", "Permission denied")
    assert snapshot(locked) == {}


def test_status_into_a_closed_pipe_ends_quietly(finished_run):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    # `true` exits without reading: every write of status meets a closed pipe (what `| head` does to long output)
    proc = subprocess.run(f"{sys.executable} -m transferlab status {finished_run / 'out'} | true",
                          shell=True, capture_output=True, text=True, env=env, timeout=120)
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr
    assert proc.stderr == ""


def test_python_dash_m_transferlab_runs_the_cli():
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "transferlab", "run", "--help"], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 0 and "--supersede" in proc.stdout


def test_a_worker_whose_data_changed_after_planning_fails_the_cell_instead_of_recording(tmp_path, monkeypatch):
    """Pool workers load the data files themselves: arrays that are not the planned ones fail the cell."""
    import transferlab.executors as ex
    from transferlab.config import load_config
    from transferlab.plan import plan_matrix

    write_arrays(tmp_path)
    plan = plan_matrix(load_config(write_config(tmp_path)))
    cell = plan.cells[0]
    write_arrays(tmp_path, seed=5)  # the files change after planning, before the worker reads them
    monkeypatch.setattr(ex, "_WORKER_STATE", {"data_cfg": plan.config.data, "base_dir": str(tmp_path),
                                              "domains": None})
    out = ex._pool_task(cell, "cpu")
    assert out["status"] == "failed" and "changed on disk since the run was planned" in out["reason"]
    assert f"domain '{cell.source}'" in out["reason"]


def test_a_folder_from_before_fingerprints_is_rerun_not_reused(workdir, capsys):
    """Records keyed without fingerprints (record version 1) are never taken for the current cells."""
    folder, cfg, out = workdir
    info = json.loads((out / "run.json").read_text())
    del info["fingerprints"]
    (out / "run.json").write_text(json.dumps(info))
    for path in (out / "cells").glob("*.json"):  # an old record: another key, no fingerprints
        rec = json.loads(path.read_text())
        rec.pop("data_fingerprints")
        rec["key"], rec["compute_key"] = "0ld" + rec["key"][3:], "0ld" + rec["compute_key"][3:]
        (out / "cells" / path.name).unlink()
        (out / "cells" / f"{rec['key']}.json").write_text(json.dumps(rec))
    old = {k: v for k, v in snapshot(out).items() if k.startswith("cells/")}
    rc, stdout, err = run(["run", str(cfg), "--out", str(out), *INLINE], capsys)
    assert rc == 0 and "2 computed now" in stdout and "0 already done" in stdout
    assert "older transferlab (no data fingerprints)" in err
    after = snapshot(out)
    assert all(after[k] == v for k, v in old.items())
    from analysis import load_results

    with pytest.warns(UserWarning, match="2 record"):
        assert len(load_results(out)) == 2


def test_adding_a_domain_to_a_family_list_extends_the_run(tmp_path, capsys):
    """`data.shifts` (or `names`) lists the domains; adding one is a new question for its own cells only."""
    def config(shifts: dict) -> Path:
        cfg = {"name": "fam", "data": {"kind": "shift", "n_samples": 60, "n_features": 4, "n_classes": 2,
                                       "shifts": shifts},
               "methods": ["finetune"], "budgets": [0], "seeds": 1, "model": {"hidden": [4]},
               "train": {"steps": 6, "batch_size": 8, "eval_every": 3}}
        return write_config(tmp_path, name="fam", text=yaml.safe_dump(cfg))

    shifts = {"a": {}, "b": {"covariate": 0.5}}
    out = tmp_path / "out"
    assert run(["run", str(config(shifts)), "--out", str(out), *INLINE], capsys)[0] == 0
    before = snapshot(out / "cells")
    rc, stdout, err = run(["run", str(config({**shifts, "c": {"label": 0.5}})), "--out", str(out), *INLINE], capsys)
    assert rc == 0, err
    # 6 ordered pairs of 3 domains × finetune at budget 0 × 1 seed; the 2 pairs of a and b are kept as they were
    assert "6 cells:" in stdout and "2 already done" in stdout and "4 computed now" in stdout
    after = snapshot(out / "cells")
    assert all(after[name] == blob for name, blob in before.items())
