"""``coral-closed``: CORAL (Sun, Feng & Saenko, "Return of Frustratingly Easy Domain Adaptation", AAAI 2016).

Re-colour the source representation with :func:`~adapt.losses.coral_transform`
(``D_S (C_S + εI)^{-1/2} (C_T + εI)^{1/2}``, ``eps`` = 1 as the paper; C_T from the unlabelled target pool),
then fit a classifier on the transformed source (+ labelled target, untransformed):

- ``on: input`` — on the raw (flattened) inputs; the configured model is then trained on them by the shared
  loop with the same ``train.steps`` (use ``model: {backbone: mlp, hidden: []}`` for the paper's linear
  classifier). ``on: features`` — on the frozen backbone's *pretrained* features; only the linear head is
  trained. ``auto`` (default): ``features`` when the backbone carries pretrained weights
  (``model_info.pretrained``), else ``input`` — frozen random features are no representation to align.
  An explicit ``on: features`` on a backbone without pretrained weights is refused (``ValueError``).
- ``classifier: head`` (default) trains as above; ``svm`` fits scikit-learn's ``SVC(kernel="linear")`` —
  libsvm, one-vs-one, as the official CORAL code (``libsvmtrain … -t 4``, a precomputed linear kernel) — and
  ``logreg`` a ``LogisticRegression``, for reproducing the paper; the loop does not run then (the record says
  ``converged: true``, a closed-form fit). ``C``: a number, or ``cv`` (default): chosen by stratified 2-fold
  cross-validation on the training samples only (re-coloured source + labelled target) over ``C_GRID`` =
  1e-3 … 1e4, as the official code does (``-v 2``). Test (target) samples are not transformed and are read
  once, to score the fitted classifier.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..losses import coral_transform
from ..outcomes import encode_outcomes
from .base import Method, Phase, choice, number

C_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1e3, 1e4)


def c_value(name: str, v) -> float | str:
    """``cv`` or a positive number."""
    if v == "cv":
        return v
    return number(0.0, low_open=True)(name, v)


def as_float_array(X: np.ndarray) -> np.ndarray:
    """float32; uint8 images scaled to [0, 1] as the loop scales them."""
    X = np.asarray(X)
    return X.astype(np.float32) / 255.0 if X.dtype == np.uint8 else X.astype(np.float32)


class CORALClosed(Method):
    name = "coral-closed"
    aligns = True
    exports_model = False  # its network reads re-coloured inputs or features, not the domain's inputs
    PARAMS = {
        "on": ("auto", choice("auto", "input", "features")),
        "eps": (1.0, number(0.0, low_open=True)),
        "classifier": ("head", choice("head", "svm", "logreg")),
        "C": ("cv", c_value),
    }

    def phases(self, steps: int, budget: int, train_cfg: dict) -> list[Phase]:
        return [Phase("joint", steps, source=True, target_labelled=budget > 0)]

    def transform(self, xs: np.ndarray, xt: np.ndarray) -> np.ndarray:
        """Re-coloured source ``(n_s, d)`` from flattened source ``xs`` and unlabelled target ``xt``."""
        return coral_transform(xs, xt, self.params["eps"]).astype(np.float32)

    def representation(self, pretrained: bool) -> str:
        """``input`` or ``features`` for a backbone with (``pretrained``) or without pretrained weights."""
        on = self.params["on"]
        if on == "auto":
            return "features" if pretrained else "input"
        if on == "features" and not pretrained:
            raise ValueError("coral-closed on: features needs a backbone with pretrained weights; this one is "
                             "randomly initialised (use on: input, or give model.weights)")
        return on

    @classmethod
    def fit_cell(cls, run) -> dict:
        problem = run.problem
        method = cls(run.params, 0, problem.n_classes)
        base = run.initial_model()
        rep = method.representation(bool(base.info.get("pretrained")))
        info: dict = {"coral_on": rep}
        if rep == "input":
            if problem.kind == "text":
                raise ValueError("coral-closed on: input cannot read text; use on: features with a pretrained "
                                 "hf backbone")
            xs = as_float_array(problem.Xs).reshape(len(problem.Xs), -1)
            xt = as_float_array(problem.X_unl).reshape(len(problem.X_unl), -1)
            new = replace(problem, Xs=method.transform(xs, xt).reshape((-1, *problem.input_shape)),
                          X_lab=as_float_array(problem.X_lab), X_unl=as_float_array(problem.X_unl),
                          X_test=as_float_array(problem.X_test), origins=None)  # derived: no feature cache
            model_cfg = run.model_cfg
        else:
            info["model_info"] = base.info
            feats = {k: run.features(base, getattr(problem, k)) for k in ("Xs", "X_lab", "X_unl", "X_test")}
            new = replace(problem, kind="vector", input_shape=(base.feature_dim,),
                          Xs=method.transform(feats["Xs"], feats["X_unl"]), X_lab=feats["X_lab"],
                          X_unl=feats["X_unl"], X_test=feats["X_test"], origins=None)
            model_cfg = {"backbone": "mlp", "hidden": []}
        if run.params["classifier"] != "head":
            return {**info, **fit_sklearn(new, run.params), "selection": "none (closed-form fit)",
                    "selected_step": None}
        out = super().fit_cell(run.with_problem(new, model_cfg))
        out.setdefault("model_info", {})
        return {**out, **info}


def fit_sklearn(problem, params: dict) -> dict:
    """A linear SVM (libsvm, one-vs-one) or logistic regression on the (re-coloured) source + labelled target.

    ``C: cv`` is chosen by 2-fold CV on those training samples only; the test split is read once, after.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.svm import SVC

    d = int(np.prod(problem.Xs.shape[1:]))
    X = np.concatenate([problem.Xs.reshape(-1, d), np.asarray(problem.X_lab, dtype=np.float32).reshape(-1, d)])
    y = np.concatenate([problem.ys, problem.y_lab]).astype(np.int64)

    def make(c: float):
        if params["classifier"] == "svm":
            return SVC(kernel="linear", C=c)
        return LogisticRegression(C=c, max_iter=5000)

    c = params["C"]
    cv_scores = None
    if c == "cv":
        folds = StratifiedKFold(2, shuffle=True, random_state=0)
        cv_scores = [float(cross_val_score(make(g), X, y, cv=folds).mean()) for g in C_GRID]
        c = C_GRID[int(np.argmax(cv_scores))]
    clf = make(c).fit(X, y)
    pred = clf.predict(problem.X_test.reshape(-1, d))
    acc = float((pred == problem.y_test).mean())
    src = float((clf.predict(X[: len(problem.Xs)]) == problem.ys).mean())
    outcomes = ({"outcomes": encode_outcomes(problem.test_index, pred, problem.y_test, problem.given_test)}
                if problem.test_index is not None and len(problem.test_index) == len(pred) else {})
    return {"accuracy": acc, "source_accuracy": src, "steps": 0, "status": "ok", "reason": None, "curves": {},
            "converged": True, "convergence_reason": None, "convergence": {}, **outcomes,
            "classifier": {"name": params["classifier"], "C": c, "cv_scores": cv_scores}}
