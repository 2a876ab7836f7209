"""The settings one cell trains with where its config leaves them out (the trainer and the config loader read
them here, and nowhere else)."""

from __future__ import annotations

from typing import Any

DATA_DEFAULTS: dict[str, Any] = {"kind": "digits", "test_fraction": 0.3, "transductive": False}
MODEL_DEFAULTS: dict[str, Any] = {"backbone": "mlp", "hidden": [128], "dropout": 0.0, "pretrained": True}
TRAIN_DEFAULTS: dict[str, Any] = {
    "steps": 300,
    "batch_size": 64,
    "lr": 1e-3,
    "weight_decay": 5e-4,
    "optimizer": "adam",
    "eval_every": 50,
    "selection": "last",
    "lr_schedule": "constant",
    "augment": False,
    "amp": True,
    "device": "auto",
}
