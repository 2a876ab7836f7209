"""``coral-closed``: CORAL (Sun, Feng & Saenko, "Return of Frustratingly Easy Domain Adaptation", AAAI 2016).

Re-colour the source representation with :func:`~adapt.losses.coral_transform`
(``D_S (C_S + εI)^{-1/2} (C_T + εI)^{1/2}``, ``eps`` = 1 as the paper; C_T from the unlabelled target pool),
then fit a classifier on the transformed source (+ labelled target, untransformed):

- ``on: input`` — on the raw (flattened) inputs; the configured model is then trained on them by the shared
  loop with the same ``train.steps`` (use ``model: {backbone: mlp, hidden: []}`` for the paper's linear
  classifier). ``on: features`` — on the frozen backbone's features (pretrained when the backbone has
  weights); only the linear head is trained. ``auto`` (default): ``input`` for ``mlp``, else ``features``.
- ``classifier: head`` (default) trains as above; ``svm`` fits scikit-learn's ``SVC(kernel="linear")`` —
  libsvm, one-vs-one, as the official CORAL code (``libsvmtrain … -t 4``, a precomputed linear kernel) — and
  ``logreg`` a ``LogisticRegression``, for reproducing the paper; the loop does not run then. ``C``: a number,
  or ``cv`` (default): chosen by stratified 2-fold cross-validation on the training samples over
  ``C_GRID`` = 1e-3 … 1e4, as the official code does (``-v 2``). Test (target) samples are not transformed.
"""

from __future__ import annotations

import numpy as np

from ..losses import coral_transform
from .base import Method, Phase, choice, number

C_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1e3, 1e4)


def c_value(name: str, v) -> float | str:
    """``cv`` or a positive number."""
    if v == "cv":
        return v
    return number(0.0, low_open=True)(name, v)


class CORALClosed(Method):
    name = "coral-closed"
    PARAMS = {
        "on": ("auto", choice("auto", "input", "features")),
        "eps": (1.0, number(0.0, low_open=True)),
        "classifier": ("head", choice("head", "svm", "logreg")),
        "C": ("cv", c_value),
    }
    closed_form = True

    def phases(self, steps: int, budget: int, train_cfg: dict) -> list[Phase]:
        return [Phase("joint", steps, source=True, target_labelled=budget > 0)]

    def transform(self, xs: np.ndarray, xt: np.ndarray) -> np.ndarray:
        """Re-coloured source ``(n_s, d)`` from flattened source ``xs`` and unlabelled target ``xt``."""
        return coral_transform(xs, xt, self.params["eps"]).astype(np.float32)

    def representation(self, backbone_name: str) -> str:
        if self.params["on"] != "auto":
            return self.params["on"]
        return "input" if backbone_name == "mlp" else "features"
