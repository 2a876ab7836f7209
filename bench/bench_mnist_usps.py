"""MNIST↔USPS (the 2000/1800-image 16×16 subsets of JDA, Long et al. 2013) with the small CNN.

Methods: source-only (``finetune`` at budget 0), ``dann``, ``coral`` (Deep CORAL) at budgets 0 and 10 labelled
target images per class, and ``scratch`` / ``target-only`` at budget 10 — all with the same CNN, the fair
protocol (every arm ``train.steps`` target-reading steps, finetune after its source phase; one constant lr for
all), the same per-seed init, seeds 0-2, target test split 30% (stratified, never trained on). Default method
parameters and training settings throughout (300 steps, batch 64, Adam 1e-3; CORAL weight and DANN settings
tuned on the synthetic ``shift`` family and digits pairs, never on these digits); no augmentation. Each line
also says how many seeds' records converged (:mod:`adapt.convergence`).

Run (a few minutes on 2 cores)::

    .venv/bin/python bench/bench_mnist_usps.py [--data ../shared/data/mnist_usps] [--seeds 3] [--steps 300]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from adapt.cells import Cell
from adapt.domains import Domain, load_domains
from adapt.methods import check_method_params
from adapt.train import run_cell

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist_usps"
MODEL = {"backbone": "cnn", "channels": [16, 32], "hidden": [128]}
RUNS = [("finetune", 0), ("dann", 0), ("coral", 0), ("finetune", 10), ("dann", 10), ("coral", 10),
        ("scratch", 10), ("target-only", 10)]
LABELS = {"finetune": "source-only / finetune", "dann": "DANN", "coral": "Deep CORAL", "scratch": "scratch",
          "target-only": "target-only"}


def load(path: Path) -> dict[str, Domain]:
    """MNIST.mat / USPS.mat (``fts`` row-major 16×16 in [0, 1], labels digit+1) as 1×16×16 image domains."""
    flat = load_domains({"kind": "arrays", "path": str(path), "files": {"mnist": "MNIST.mat", "usps": "USPS.mat"},
                         "x_key": "fts", "y_key": "labels"})
    return {name: Domain(name=name, X=d.X.reshape(-1, 1, 16, 16).astype(np.float32), y=d.y, kind="image",
                         class_names=[str(k) for k in range(10)], description=d.description, family="mnist_usps")
            for name, d in flat.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=300)
    args = ap.parse_args()
    torch.set_num_threads(1)  # small convs: one thread is fastest, and robust to busy cores
    doms = load(args.data)
    train = {"steps": args.steps, "eval_every": 100}
    t0 = time.time()
    table: dict[tuple, list[float]] = {}
    for source, target in (("mnist", "usps"), ("usps", "mnist")):
        for method, budget in RUNS:
            accs, converged = [], 0
            for seed in range(args.seeds):
                c = Cell(source=source, target=target, method=method, method_name=method, seed=seed, budget=budget,
                         method_params=check_method_params(method, {}), model=MODEL, train=train,
                         data={"test_fraction": 0.3, "transductive": False})
                rec = run_cell(c, doms[source], doms[target], device="cpu")
                accs.append(100 * rec["accuracy"] if rec["status"] == "ok" else float("nan"))
                converged += bool(rec.get("converged"))
            table[(source, target, method, budget)] = accs
            print(f"{source}->{target} {method:8s} budget={budget:2d} {np.mean(accs):5.1f} ± {np.std(accs):4.1f} "
                  f"{np.round(accs, 1).tolist()} converged {converged}/{args.seeds} [{time.time() - t0:.0f} s]",
                  flush=True)
    print(f"\nmean ± std over {args.seeds} seeds, target test accuracy (%), CNN {MODEL}, {train}\n")
    print("| method | budget | MNIST→USPS | USPS→MNIST |\n|---|---|---|---|")
    for method, budget in RUNS:
        cells = []
        for pair in (("mnist", "usps"), ("usps", "mnist")):
            a = table[(*pair, method, budget)]
            cells.append(f"{np.mean(a):.1f} ± {np.std(a):.1f}")
        print(f"| {LABELS[method]} | {budget} | {cells[0]} | {cells[1]} |")
    print(f"\ntotal {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
