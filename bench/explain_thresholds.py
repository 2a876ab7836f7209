"""The measurements behind ``analysis.explain.THRESHOLDS``: every ordered pair of a ``shift`` family.

Usage: ``python bench/explain_thresholds.py 7`` (family seed 7 set the thresholds; tests use other seeds).
A logistic-regression source model (fit on half the source), 5 labelled target samples per class.
"""

import sys

import numpy as np
from sklearn.linear_model import LogisticRegression

from adapt.domains.shift import load_shift_domains
from analysis.explain import explain_pair


def main(family_seed: int) -> None:
    doms = load_shift_domains({"seed": family_seed})
    for s, S in doms.items():
        for t, T in doms.items():
            if s == t:
                continue
            rng = np.random.default_rng(0)
            idx = rng.permutation(len(S.y))
            fit, held = idx[: len(idx) // 2], idx[len(idx) // 2:]
            clf = LogisticRegression(max_iter=2000).fit(S.X[fit], S.y[fit])
            lab = np.concatenate([rng.choice(np.flatnonzero(T.y == c), 5, replace=False) for c in np.unique(T.y)])
            e = explain_pair(X_source=S.X, y_source=S.y, X_target=T.X,
                             heldout_source=(S.y[held], clf.predict(S.X[held])), pred_target=clf.predict(T.X),
                             labelled_target=(T.X[lab], T.y[lab], clf.predict(T.X[lab])), aligns=True,
                             method="dann")
            ev = e.evidence
            print(f"{s:>9}->{t:<9} {str(e.cause):16} disc={ev['discriminator_before']:.3f} "
                  f"gap={ev['relabelling_gap']:.3f} drop={ev['accuracy_drop']:.3f} tv={ev['prior_tv']:.3f} w2={ev['class_w2_before']:.2f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 7)
