"""Per-example outcomes of a cell's final evaluation, stored compactly in its record.

Every finished record carries ``outcomes``: which target test samples were evaluated and what the model
predicted for each, so analyses can work at the level of test examples (exact McNemar-type tests between two
methods on the same test split, per-class breakdowns) instead of one accuracy per seed::

    "outcomes": {"encoding": "zlib+base64/int32-le", "n": 90, "given_test": false,
                 "test_index": "eJx...", "pred": "eJx...", "label": "eJx..."}

``test_index`` indexes the target domain's samples (``Domain.X``; ``Domain.X_test`` when ``given_test``),
in evaluation order; ``pred`` and ``label`` are the predicted and true class per test sample, aligned with
it. Each is a little-endian int32 array, zlib-compressed, then base64 text: a few hundred bytes for a test
split of a few hundred samples (a JSON list would be 3–5× larger). Records written before outcomes existed
simply lack the field; :func:`decode_outcomes` returns ``None`` for them.
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Mapping

import numpy as np

ENCODING = "zlib+base64/int32-le"
FIELDS = ("test_index", "pred", "label")


def _pack(values) -> str:
    arr = np.ascontiguousarray(np.asarray(values, dtype="<i4").ravel())
    return base64.b64encode(zlib.compress(arr.tobytes(), 9)).decode("ascii")


def _unpack(text: str) -> np.ndarray:
    return np.frombuffer(zlib.decompress(base64.b64decode(text)), dtype="<i4").astype(np.int64)


def encode_outcomes(test_index, pred, label, given_test: bool = False) -> dict:
    """The record's ``outcomes`` field for aligned ``test_index``, ``pred`` and ``label`` arrays."""
    arrays = {"test_index": np.asarray(test_index), "pred": np.asarray(pred), "label": np.asarray(label)}
    lengths = {k: len(v) for k, v in arrays.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"outcomes: test_index, pred and label must have one length, got {lengths}")
    return {"encoding": ENCODING, "n": lengths["pred"], "given_test": bool(given_test),
            **{k: _pack(v) for k, v in arrays.items()}}


def decode_outcomes(field: Mapping | None) -> dict | None:
    """``{"test_index", "pred", "label": int64 arrays, "given_test": bool}``, or ``None`` for a record
    without outcomes (written before they existed, or a failed cell)."""
    if not isinstance(field, Mapping) or not all(k in field for k in FIELDS):
        return None
    if field.get("encoding") != ENCODING:
        raise ValueError(f"outcomes: unknown encoding {field.get('encoding')!r} (expected {ENCODING!r})")
    out = {k: _unpack(field[k]) for k in FIELDS}
    if len({len(v) for v in out.values()}) != 1:
        raise ValueError("outcomes: test_index, pred and label decode to different lengths")
    out["given_test"] = bool(field.get("given_test", False))
    return out
