"""Malformed configs: one 'transferlab: error: ...' line naming the field, exit code 2, no traceback."""

from __future__ import annotations

import os
from pathlib import Path
import subprocess
import sys

import pytest
import yaml

import transferlab.executors
from transferlab.cli import main

SHIFT = {"kind": "shift", "n_samples": 40, "n_features": 4, "n_classes": 2,
         "shifts": {"a": {}, "b": {"label": 0.5}}}
BASE = {"name": "bad", "data": SHIFT, "methods": ["finetune"], "budgets": [0], "seeds": 1,
        "train": {"steps": 5}}


def variant(**changes):
    cfg = {k: (dict(v) if isinstance(v, dict) else v) for k, v in BASE.items()}
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        node = cfg
        for p in parents:
            node = node[p]
        if value is DELETE:
            node.pop(leaf, None)
        else:
            node[leaf] = value
    return yaml.safe_dump(cfg)


DELETE = object()

# (id, YAML text or None for "no file", text the one-line message must contain)
CASES = [
    ("unknown-method", variant(methods=["finetune", "mixup"]), "methods[1]"),
    ("negative-budget", variant(budgets=[0, -1]), "budgets"),
    ("budget-not-int", variant(budgets=["five"]), "budgets"),
    ("empty-pairs", variant(pairs=[]), "pairs"),
    ("pair-not-a-pair", variant(pairs=[["a"]]), "pairs[0]"),
    ("pair-names-domain-not-in-domains", variant(domains=["a", "b"], pairs=[["a", "zebra"]]), "pairs"),
    ("pair-names-domain-not-in-data", variant(pairs=[["a", "zebra"]]), "pairs"),
    ("domains-subset-unknown", variant(domains=["a", "zebra"]), "domains"),
    ("domains-not-a-list", variant(domains="a"), "domains"),
    ("seeds-zero", variant(seeds=0), "seeds"),
    ("seeds-wrong-type", variant(seeds="three"), "seeds"),
    ("seeds-duplicate", variant(seeds=[1, 1]), "seeds"),
    ("unknown-top-level-key", variant(epochs=3), "epochs"),
    ("malformed-yaml", "name: bad\nmethods: [finetune\n", "malformed YAML"),
    ("not-a-mapping", "- just\n- a list\n", "mapping"),
    ("empty-file", "", "empty"),
    ("missing-name", variant(name=DELETE), "name"),
    ("name-with-slash", variant(name="a/b"), "name"),
    ("data-path-missing", variant(data={"kind": "arrays", "path": "no/such/folder"}), "no/such/folder"),
    ("data-path-absent", variant(data={"kind": "arrays"}), "data.path"),
    ("unknown-data-kind", variant(data={"kind": "imagenet"}), "data.kind"),
    ("unknown-data-key", variant(data__colour="red"), "data.colour"),
    ("bare-null-domain-name", "name: x\ndata: {kind: shift, shifts: {base: {}, null: {}}}\nmethods: [finetune]\n",
     "data.shifts"),
    ("bad-preprocess-step", variant(data={"kind": "arrays", "path": ".", "preprocess": ["l1", "pca"]}),
     "data.preprocess"),
    ("bad-test-fraction", variant(data__test_fraction=1.5), "data.test_fraction"),
    ("bad-shift-spec", variant(data__shifts={"a": {"rotation": 1}}), "data.shifts.a"),
    ("digits-unknown-domain", variant(data={"kind": "digits", "names": ["original", "sideways"]}),
     "sideways"),
    ("transductive-with-budget", variant(data__transductive=True, budgets=[0, 5]), "data.transductive"),
    ("duplicate-method-label", variant(methods=["finetune", {"name": "dann", "label": "finetune"}]),
     "methods"),
    ("scratch-without-budget", variant(methods=["scratch"], budgets=[0]), "methods"),
    ("bad-backbone", variant(model={"backbone": "vgg99"}), "model.backbone"),
    ("hidden-not-list", variant(model={"hidden": 128}), "model.hidden"),
    ("dropout-out-of-range", variant(model={"dropout": 1.5}), "model.dropout"),
    ("lr-negative", variant(train__lr=-0.1), "train.lr"),
    ("steps-zero", variant(train__steps=0), "train.steps"),
    ("batch-size-type", variant(train__batch_size="big"), "train.batch_size"),
    ("unknown-train-key", variant(train__epochs=3), "train.epochs"),
    ("bad-optimizer", variant(train__optimizer="lbfgs"), "train.optimizer"),
    ("bad-device", variant(train__device="tpu"), "train.device"),
    ("missing-file", None, "not found"),
    # train keys are validated like method parameters (issue 12)
    ("lr-schedule-typo", variant(train__lr_schedule="cosin"), "train.lr_schedule"),
    ("source-fraction-above-1", variant(train__source_fraction=1.5), "train.source_fraction"),
    ("source-fraction-negative", variant(train__source_fraction=-0.1), "train.source_fraction"),
    ("grad-clip-not-a-number", variant(train__grad_clip="big"), "train.grad_clip"),
    ("momentum-negative", variant(train__momentum=-0.5), "train.momentum"),
    ("eval-every-zero", variant(train__eval_every=0), "train.eval_every"),
    ("flip-not-bool", variant(train__flip="yes"), "train.flip"),
    ("key-read-nowhere", variant(train__patience=5), "train.patience"),
    ("unknown-optimizer-name", variant(train__optimizer="rmsprop"), "train.optimizer"),
    ("bad-budget-policy", variant(budget_policy="shrink"), "budget_policy"),
    ("bad-class-policy", variant(data__classes="some"), "data.classes"),
    ("key-not-for-kind", variant(data__image_size=32), "data.image_size"),
    ("key-not-for-backbone", variant(model={"backbone": "mlp", "channels": [8]}), "model.channels"),
    ("duplicate-key", "name: bad\nseeds: 1\nseeds: 2\n", "'seeds' appears twice"),
]


@pytest.fixture
def no_training(monkeypatch):
    """A case that wrongly passes validation must not start a matrix."""

    def refuse(*args, **kwargs):
        raise AssertionError("a malformed config reached the executor")

    monkeypatch.setattr(transferlab.executors.LocalExecutor, "run", refuse)


@pytest.mark.parametrize("text,needle", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_config_is_one_line_exit_2(tmp_path, capsys, no_training, text, needle):
    path = tmp_path / "cfg.yaml"
    if text is not None:
        path.write_text(text)
    rc = main(["run", str(path), "--out", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert rc == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("transferlab: error: ")
    assert needle in lines[0], lines[0]
    assert "Traceback" not in out + err
    assert not (tmp_path / "out" / "cells").exists() or not any((tmp_path / "out" / "cells").iterdir())


def test_at_least_twenty_kinds():
    assert len(CASES) >= 20


def test_not_utf8_file(tmp_path, capsys):
    path = tmp_path / "cfg.yaml"
    path.write_bytes(b"name: \xff\xfe\n")
    assert main(["run", str(path)]) == 2
    assert capsys.readouterr().err.startswith("transferlab: error: ")


def test_config_path_is_a_folder(tmp_path, capsys):
    assert main(["run", str(tmp_path)]) == 2
    assert "not found" in capsys.readouterr().err


def _cli(*args, cwd):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "transferlab", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=120)


def test_subprocess_errors_have_no_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(variant(methods=["mixup"]))
    proc = _cli("run", str(bad), cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert proc.stderr.startswith("transferlab: error: ") and "methods[0]" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


@pytest.mark.parametrize("args", [
    [], ["run"], ["run", "x.yaml", "--workers", "0"], ["run", "x.yaml", "--executor", "slurm"],
    ["frobnicate"], ["run", "x.yaml", "--gpus-per-cell", "-1"], ["run", "x.yaml", "--threads", "x"]])
def test_argument_errors_exit_2(args, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err


def test_status_and_report_on_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["status", str(tmp_path)]) == 2
    assert "not a run folder" in capsys.readouterr().err
    assert main(["status", str(tmp_path / "nope")]) == 2
    assert "no such run folder" in capsys.readouterr().err
    assert main(["report", str(tmp_path)]) == 2
    assert "not a run folder" in capsys.readouterr().err


def test_unreadable_config_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    from transferlab.cli import main

    path = tmp_path / "c.yaml"
    path.write_text("name: x\n")
    real = Path.read_text

    def denied(self, *args, **kwargs):  # as root chmod 0 still reads: make the read itself fail
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", denied)
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "cannot read the config file (Permission denied)" in err and str(path) in err
