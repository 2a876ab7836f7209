"""How a digits matrix's wall time grows with domains and seeds (issue #7): 3, 4, 6 domains × 1 seed and 4 × 3.

    .venv/bin/python bench/bench_scaling.py     # prints a markdown table (~2.5 min on 2 cores)
"""
import time, tempfile, copy
from transferlab.config import parse_config
from transferlab.matrix import run_matrix
from adapt.domains.digits import DIGITS_DOMAINS
base = {"name": "scale", "data": {"kind": "digits"}, "pairs": "all", "methods": ["finetune", "dann", "coral", "scratch"],
        "budgets": [0, 5], "model": {"backbone": "mlp", "hidden": [128]}, "train": {"steps": 300, "batch_size": 64, "lr": 0.001, "eval_every": 50}}
if __name__ == "__main__":
    print("| domains | seeds | cells | computations | wall s | s / computation |")
    print("|---|---|---|---|---|---|")
    for nd, seeds in [(3, 1), (4, 1), (6, 1), (4, 3)]:
        cfg = copy.deepcopy(base); cfg["domains"] = list(DIGITS_DOMAINS[:nd]); cfg["seeds"] = seeds
        with tempfile.TemporaryDirectory() as d:
            t = time.perf_counter()
            r = run_matrix(parse_config(cfg), d, progress="none", log=lambda m: None)
            w = time.perf_counter() - t
        pairs = nd * (nd - 1); comps = pairs * 3 * 2 * seeds + nd * seeds
        cells = pairs * (3 * 2 + 1) * seeds
        print(f"| {nd} | {seeds} | {cells} | {comps} | {w:.1f} | {w/comps:.3f} |", flush=True)
