"""Per-cell time with and without the frozen-prefix feature cache (issue #13): EfficientNet-Lite0, digits.

One uci → mnist cell (mnist_uci domains, 30 images per class = 300 per domain, 32 px, budget 10, 100 steps of
batch 16 — configs/pretrained_digits.yaml's settings) for two strategies:

- ``probe``   (``freeze: backbone, freeze_source: true``): the whole backbone is a cacheable prefix;
- ``first:7`` (``freeze: first:7, freeze_source: true``): stem + 6 MBConv stages cached, the rest trained.

Variants, timed side by side with bench/_timing.py's interleaved protocol (median of --reps rounds):

- ``uncached``  ``train.feature_cache: false`` — the frozen blocks run forward at every step and evaluation;
- ``cold``      an empty cache folder each call: features computed (once per domain) and written;
- ``warm-disk`` a new process's view: the entries are on disk, nothing in memory (read + verify checksum);
- ``warm-mem``  the next cell of a run in the same worker: features already in memory.

Each variant's record is checked equal to the uncached one (wall time aside).

    .venv/bin/python bench/bench_pretrained.py [--reps 5] [--json out.json]   # ~6 min on a busy 2-core box
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from _timing import describe_machine, eprint, interleaved, machine_info, markdown_table, write_json  # noqa: E402

from adapt import features  # noqa: E402
from adapt.cells import Cell  # noqa: E402
from adapt.domains import load_domains  # noqa: E402
from adapt.train import run_cell  # noqa: E402

STRATEGIES = {"probe": {"freeze": "backbone", "freeze_source": True},
              "first:7": {"freeze": "first:7", "freeze_source": True}}
MODEL = {"backbone": "efficientnet_lite0", "image_size": 32}
TRAIN = {"steps": 100, "batch_size": 16, "lr": 0.01, "eval_every": 25, "device": "cpu"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--per-class", type=int, default=30)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    doms = load_domains({"kind": "mnist_uci", "names": ["uci", "mnist"], "max_per_class": args.per_class})
    root = Path(tempfile.mkdtemp(prefix="bench-features-"))
    rows, out = [], {"machine": machine_info(), "n_per_domain": len(doms["uci"]), "results": {}}
    try:
        for label, params in STRATEGIES.items():
            records = {}

            def cell_fn(variant: str, cache):
                def run():
                    cell = Cell("uci", "mnist", label, "finetune", 0, 10, params, MODEL,
                                {**TRAIN, "feature_cache": cache}, {})
                    rec = run_cell(cell, doms["uci"], doms["mnist"])
                    rec.pop("wall_time")
                    records[variant] = json.dumps(rec, sort_keys=True)
                return run

            cold_dir, warm_dir = root / f"{label}-cold", root / f"{label}-warm"

            def cold():
                shutil.rmtree(cold_dir, ignore_errors=True)
                features._STORES.pop(str(cold_dir.resolve()), None)
                cell_fn("cold", str(cold_dir))()

            def warm_disk():
                features._STORES.pop(str(warm_dir.resolve()), None)  # forget the memory copy: read from disk
                cell_fn("warm-disk", str(warm_dir))()

            cell_fn("warm-disk", str(warm_dir))()  # fill the disk entries once
            mem = "memory"
            cell_fn("warm-mem", mem)()
            variants = {"uncached": cell_fn("uncached", False), "cold": cold, "warm-disk": warm_disk,
                        "warm-mem": cell_fn("warm-mem", mem)}
            eprint(f"{label}: timing {list(variants)}")
            t = interleaved(variants, baseline="uncached", reps=args.reps, log=eprint)
            same = all(records[v] == records["uncached"] for v in variants)
            acc = json.loads(records["uncached"])["accuracy"]
            for v in variants:
                rows.append({"strategy": label, "variant": v, "median s": t.median(v),
                             "cpu s": t.median(v, kind="cpu"), "speed-up": 1 / t.ratio(v) if v != "uncached" else 1.0,
                             "accuracy": acc, "records equal": same})
            out["results"][label] = {"median": {v: t.median(v) for v in t.times}, "times": t.times, "cpu": t.cpu,
                                     "records_equal": same, "accuracy": acc}
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(describe_machine(out["machine"]))
    print(f"\n{out['n_per_domain']} images per domain, EfficientNet-Lite0 at 32 px, 100 steps, budget 10\n")
    print(markdown_table(rows, ["strategy", "variant", "median s", "cpu s", "speed-up", "accuracy",
                                "records equal"]))
    if args.json:
        write_json(args.json, out)


if __name__ == "__main__":
    main()
