"""GPU benchmarks (issue #7), ready to run on one CUDA GPU. Protocol: bench/_timing.py.

``matrix``
    the Office-Caltech10 SURF transfer matrix on one GPU: configs/office_caltech_surf_fewshot.yaml
    (finetune, coral, dann + the scratch baseline; MLP [256], 300 steps, batch 64, eval every 100, 30% test
    split, 5 seeds) at budgets {0, 3}: 12 ordered pairs × 4 methods × 5 seeds × 2 budgets = 420 cells (scratch
    has no budget-0 cell and is computed once per target: 380 computations), through
    :func:`transferlab.matrix.run_matrix` into a fresh folder each repetition, after a one-pair warm-up.
    Target: ≤ 60 s wall-clock. ``--config FILE`` times another config as it is (device set to cuda).
``dann``
    DANN training throughput (source + target images per second) on a ResNet-50 at 224×224 px with bf16
    autocast (fp16 + grad scaling where bf16 is unsupported): transferlab's :func:`adapt.train.run_cell`
    vs a bare PyTorch loop vs pytorch-adapt's ``DANNHook`` (under ``torch.autocast``), same models
    (transferlab's ResNet-50 layout, random init, no download), same batches (random uint8 images on the
    GPU), discriminator 2048 → 1024 → 1024 → 1, Adam; interleaved rounds. run_cell's whole call is timed,
    nothing subtracted; ``transferlab (steps=0)`` shows its fixed cost (model build + final evaluation).
``mmd``
    :func:`analysis.distances.mmd_permutation_test` with 1000 permutations on n = 10 000 samples per
    domain, d = 2048 (every sample kept: ``max_samples=None``), on the GPU; plus the cost of drawing the
    1000 permutations alone (done on the host by that function), to show how much of the time they take.

Without CUDA the script exits with status 2 and says so; ``--dry-run`` runs every part on the CPU at tiny
sizes (the check this repository's CI-less machines can do).

    .venv/bin/python bench/bench_gpu.py                     # all three on the GPU
    .venv/bin/python bench/bench_gpu.py matrix --data DIR   # one part; DIR holds *_SURF_L10.mat
    .venv/bin/python bench/bench_gpu.py --dry-run           # CPU, tiny sizes, ~1 min
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

import _timing as T  # noqa: E402

T.hide_broken_torchvision()  # a torchvision built for another torch breaks pytorch-adapt's imports

OFFICE_DIRS = (ROOT.parent / "shared" / "data" / "office_caltech10_surf", ROOT / "bench" / "data")
OFFICE_FILES = {"amazon": "amazon_SURF_L10.mat", "caltech": "Caltech10_SURF_L10.mat",
                "dslr": "dslr_SURF_L10.mat", "webcam": "webcam_SURF_L10.mat"}
OFFICE_SIZES = {"amazon": 958, "caltech": 1123, "dslr": 157, "webcam": 295}
MATRIX_TARGET_S = 60.0


# ------------------------------------------------------------------------------------------------ matrix
def _synthetic_office(folder: Path, dim: int, sizes: dict[str, int], classes: int = 10) -> dict[str, str]:
    """Office-Caltech-shaped synthetic domains as .npz files (the same loader path as the real data)."""
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 1, (classes, dim))
    files = {}
    for k, (name, n) in enumerate(sizes.items()):
        y = np.arange(n) % classes
        X = np.abs(centres[y] + rng.normal(0, 2.0, (n, dim)) + 0.3 * k)
        np.savez(folder / f"{name}.npz", fts=X.astype(np.float32), labels=y)
        files[name] = f"{name}.npz"
    return files


def matrix_config(data_dir: Path, files: dict[str, str], args) -> dict:
    """configs/office_caltech_surf_fewshot.yaml's matrix at the issue's size: ``--seeds`` seeds ×
    ``--budgets`` (default 5 × {0, 3}), on ``args.device`` with AMP."""
    return {
        "name": "office-caltech-gpu-bench",
        "data": {"kind": "arrays", "path": str(data_dir), "files": files, "x_key": "fts", "y_key": "labels",
                 "preprocess": ["l1", "zscore"], "test_fraction": 0.3},
        "pairs": "all",
        "methods": ["finetune", "coral", "dann", "scratch"],
        "budgets": [int(b) for b in args.budgets.split(",")],
        "seeds": args.seeds,
        "model": {"backbone": "mlp", "hidden": [args.hidden]},
        "train": {"steps": args.steps, "batch_size": 64, "lr": 1e-3, "eval_every": args.eval_every,
                  "amp": True, "device": args.device},
    }


def _office_dir(arg: str | None) -> Path | None:
    for d in ([Path(arg)] if arg else list(OFFICE_DIRS)):
        if all((d / f).is_file() for f in OFFICE_FILES.values()):
            return d
    return None


def bench_matrix(args) -> dict:
    from transferlab.config import load_config, parse_config
    from transferlab.matrix import run_matrix
    from transferlab.plan import plan_matrix

    tmp = Path(tempfile.mkdtemp(prefix="bench_gpu_matrix_"))
    try:
        if args.config:
            raw = load_config(args.config).to_dict()
            raw["train"]["device"] = args.device
            config = parse_config(raw, source=args.config, path=Path(args.config).resolve())
            desc = f"config {args.config} (device {args.device})"
        else:
            if args.dry_run or args.synthetic:
                files = _synthetic_office(tmp, args.dim, {k: max(20, v // args.shrink)
                                                          for k, v in OFFICE_SIZES.items()})
                data, desc = tmp, f"synthetic Office-Caltech-shaped data, d={args.dim}"
            else:
                data = _office_dir(args.data)
                if data is None:
                    raise SystemExit(f"bench_gpu matrix: no folder with {sorted(OFFICE_FILES.values())} "
                                     f"({args.data or ', '.join(map(str, OFFICE_DIRS))}); pass --data DIR or "
                                     f"--synthetic")
                files, desc = OFFICE_FILES, f"Office-Caltech10 SURF from {data}"
            config = parse_config(matrix_config(data, files, args), source="bench_gpu")
        plan = plan_matrix(config)
        n_cells = len(plan.cells)
        n_comp = len({c.compute_key for c in plan.cells})
        T.eprint(f"matrix: {len(plan.pairs)} pairs, {n_cells} cells, {n_comp} computations ({desc})")
        kw = dict(executor=args.executor, device=args.device, progress="none", log=lambda m: None)
        if args.executor == "ray":
            kw["gpus_per_cell"] = args.gpus_per_cell
        if args.workers:
            kw["workers"] = args.workers
        # warm-up: one pair, one seed (CUDA context, kernels, allocator)
        warm = parse_config({**config.to_dict(), "pairs": [list(plan.pairs[0])], "seeds": [config.seeds[0]],
                             "name": "warmup"}, source="bench_gpu warm-up", path=config.path)
        t = time.perf_counter()
        run_matrix(warm, tmp / "warmup", **kw)
        T.eprint(f"  warm-up (1 pair, 1 seed): {time.perf_counter() - t:.1f} s")
        times, failed = [], 0
        for r in range(args.matrix_reps):
            out = tmp / f"rep{r}"
            t = time.perf_counter()
            res = run_matrix(config, out, plan=plan, **kw)
            _ = T._sync()
            times.append(time.perf_counter() - t)
            failed = max(failed, res.failed_total)
            shutil.rmtree(out, ignore_errors=True)
            T.eprint(f"  rep {r + 1}/{args.matrix_reps}: {times[-1]:.1f} s, {res.computations} computations, "
                     f"{res.failed_total} failed")
        med = statistics.median(times)
        return {"cells": n_cells, "computations": n_comp, "data": desc, "times_s": times, "median_s": med,
                "cells_per_s": n_cells / med, "failed": failed, "target_s": MATRIX_TARGET_S,
                "meets_target": med <= MATRIX_TARGET_S, "executor": args.executor,
                "config": config.to_dict()}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ------------------------------------------------------------------------------------------------ DANN
class _DannBench:
    """Shared setup of the ResNet-50 DANN comparison (data on the device, initial weights, samplers)."""

    def __init__(self, args, dev: torch.device):
        from adapt.domains import Domain

        self.args, self.dev = args, dev
        px, n, K = args.image_size, args.n_images, args.classes
        rng = np.random.default_rng(0)
        ys, yt = rng.integers(0, K, n), rng.integers(0, K, n)
        Xs = rng.integers(0, 256, (n, 3, px, px), dtype=np.uint8)
        Xt = rng.integers(0, 256, (n, 3, px, px), dtype=np.uint8)
        self.source = Domain("src", Xs, ys, kind="image", class_names=[str(i) for i in range(K)])
        self.target = Domain("tgt", Xt, yt, kind="image", class_names=[str(i) for i in range(K)])
        split = self.target.split(0, 0.3, False)
        self.Xs = torch.from_numpy(Xs).to(dev)
        self.ys = torch.from_numpy(ys.astype(np.int64)).to(dev)
        self.Xu = torch.from_numpy(np.ascontiguousarray(Xt[split.train])).to(dev)
        self.mcfg = {"backbone": args.backbone, "pretrained": False}
        self.params = {"lambda_schedule": False, "disc_hidden": args.disc_hidden}
        self.amp = dev.type == "cuda" and not args.no_amp
        self.amp_dtype = (torch.bfloat16 if dev.type == "cuda" and torch.cuda.is_bf16_supported()
                          else torch.float16)

    def cell(self, steps: int, eval_every: int | None = None):
        from adapt.cells import Cell

        return Cell(source="src", target="tgt", method="dann", method_name="dann", seed=0, budget=0,
                    method_params=dict(self.params), model=dict(self.mcfg),
                    train={"steps": steps, "eval_every": eval_every or max(steps, 1),
                           "batch_size": self.args.batch,
                           "lr": 1e-4, "weight_decay": 5e-4, "optimizer": "adam", "amp": not self.args.no_amp,
                           "device": str(self.dev), "selection": "last"},
                    data={"test_fraction": 0.3, "transductive": False})

    def run_transferlab(self, steps: int, eval_every: int | None = None) -> dict:
        from adapt.train import run_cell

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "no pretrained weights": random init is intended here
            rec = run_cell(self.cell(steps, eval_every), self.source, self.target, device=str(self.dev))
        if rec["status"] != "ok":
            raise RuntimeError(f"transferlab: {rec['reason']}")
        return rec

    def modules(self) -> dict[str, nn.Module]:
        """Fresh modules with transferlab's initial weights (its own init path: same cost as run_cell's)."""
        from adapt.domains.base import stable_seed
        from adapt.train import init_model

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = init_model(self.mcfg, "image", self.source.input_shape, self.source.n_classes, 0)
        torch.manual_seed(stable_seed("method-init", 0, "dann"))
        d, h = model.feature_dim, self.args.disc_hidden
        disc = nn.Sequential(nn.Linear(d, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, 1),
                             nn.Flatten(0))
        mods = {"G": model.backbone, "C": model.head, "D": disc}
        return {k: m.to(self.dev).train() for k, m in mods.items()}

    def samplers(self):
        from adapt.domains.base import stable_seed

        gen = torch.Generator(device=self.dev)
        gen.manual_seed(stable_seed("batches", 0))
        b = self.args.batch
        return _Sampler(len(self.Xs), b, gen, self.dev), _Sampler(len(self.Xu), b, gen, self.dev)

    def batch(self, s_src, s_tgt):
        i, j = s_src.next(), s_tgt.next()
        return self.Xs[i].float() / 255.0, self.ys[i], self.Xu[j].float() / 255.0

    def autocast(self):
        return torch.autocast(self.dev.type, dtype=self.amp_dtype, enabled=self.amp)


class _Sampler:
    def __init__(self, n, batch, gen, dev):
        self.n, self.batch, self.gen, self.dev = n, min(batch, n), gen, dev
        self.perm, self.pos = None, n

    def next(self):
        if self.pos + self.batch > self.n:
            self.perm = torch.randperm(self.n, generator=self.gen, device=self.dev)
            self.pos = 0
        out = self.perm[self.pos:self.pos + self.batch]
        self.pos += self.batch
        return out


def dann_bare(B: _DannBench, steps: int, record: bool = False) -> list:
    mods = B.modules()
    G, C, D = mods["G"], mods["C"], mods["D"]
    opt = torch.optim.Adam([p for m in mods.values() for p in m.parameters()], lr=1e-4, weight_decay=5e-4)
    scaler = torch.amp.GradScaler("cuda") if B.amp and B.amp_dtype == torch.float16 else None
    s_src, s_tgt = B.samplers()
    out = []
    for _ in range(steps):
        xs, ys, xt = B.batch(s_src, s_tgt)
        n = len(xs)
        with B.autocast():
            f = G(torch.cat([xs, xt]))
            logits = C(f[:n])
        loss_cls = F.cross_entropy(logits.float(), ys)
        dl = D(T.grad_reverse(f.float(), 1.0))
        loss_d = 0.5 * (F.binary_cross_entropy_with_logits(dl[:n], torch.ones(n, device=B.dev))
                        + F.binary_cross_entropy_with_logits(dl[n:], torch.zeros(len(xt), device=B.dev)))
        loss = loss_cls + loss_d
        opt.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()
        if record:
            out.append((float(loss_cls), float(loss_d)))
    return out


def dann_pytorch_adapt(B: _DannBench, steps: int, record: bool = False) -> list:
    """pytorch-adapt's DANNHook per step under autocast (bf16 needs no scaler; fp16 is not supported here)."""
    from pytorch_adapt.hooks import DANNHook
    from pytorch_adapt.weighters import SumWeighter

    mods = B.modules()
    opts = [torch.optim.Adam(m.parameters(), lr=1e-4, weight_decay=5e-4) for m in mods.values()]
    halves = SumWeighter(weights={"src_domain_loss": 0.5, "target_domain_loss": 0.5})
    hook = DANNHook(opts=opts, weighter=halves)
    s_src, s_tgt = B.samplers()
    ones = torch.ones(B.args.batch, device=B.dev)
    zeros = torch.zeros(B.args.batch, device=B.dev)
    out = []
    for _ in range(steps):
        xs, ys, xt = B.batch(s_src, s_tgt)
        with B.autocast():
            _, losses = hook({**mods, "src_imgs": xs, "src_labels": ys, "target_imgs": xt,
                              "src_domain": ones[: len(xs)], "target_domain": zeros[: len(xt)]})
        if record:
            c = losses["total_loss"]
            out.append((c["src_c_loss"], c["src_domain_loss"] + c["target_domain_loss"]))
    return out


def bench_dann(args, dev: torch.device) -> dict:
    B = _DannBench(args, dev)
    if B.amp and B.amp_dtype == torch.float16:
        T.eprint("note: bf16 unsupported here; transferlab/bare use fp16 + GradScaler, pytorch-adapt plain "
                 "fp16")
    try:
        from pytorch_adapt.hooks import DANNHook  # noqa: F401
        have_pa = True
    except Exception as exc:  # noqa: BLE001 - not installed, or its imports fail
        have_pa = False
        print(f"note: pytorch-adapt cannot be imported ({type(exc).__name__}: {exc}); its loop is left out "
              f"(bench/README.md: carry its wheels)")
    n_check = 2
    rec = B.run_transferlab(n_check, eval_every=1)
    check = {"transferlab": list(zip(rec["curves"]["loss_cls"], rec["curves"]["loss_domain"])),
             "bare": dann_bare(B, n_check, record=True)}
    if have_pa:
        check["pytorch-adapt hook"] = dann_pytorch_adapt(B, n_check, record=True)
    print(f"\nDANN {args.backbone} {args.image_size}px: losses of the first {n_check} steps "
          f"(AMP {'on, ' + str(B.amp_dtype) if B.amp else 'off'}: agreement to ~1e-2 is expected with AMP; "
          f"pytorch-adapt forwards the source and target batches through G separately, so BatchNorm "
          f"normalises each domain with its own batch statistics and its losses differ by design; same "
          f"arithmetic)")
    print(T.markdown_table([{"loop": k, **{f"step {i + 1} (cls, domain)": f"{a:.4f}, {b:.4f}"
                                           for i, (a, b) in enumerate(v)}} for k, v in check.items()],
                           ["loop"] + [f"step {i + 1} (cls, domain)" for i in range(n_check)]))
    steps = args.dann_steps
    variants = {
        "bare": lambda: dann_bare(B, steps),
        "transferlab": lambda: B.run_transferlab(steps),
        "transferlab (steps=0)": lambda: B.run_transferlab(0),
    }
    if have_pa:
        variants["pytorch-adapt hook"] = lambda: dann_pytorch_adapt(B, steps)
    tm = T.interleaved(variants, baseline="bare", reps=args.reps, warmup=1, log=T.eprint)
    per_step = 2 * args.batch
    rows = []
    for name in tm.times:
        med = tm.median(name)
        lo, hi = tm.ratio_range(name)
        rows.append({"loop": name, "median s": med,
                     "images/s": None if "steps=0" in name else steps * per_step / med,
                     "time × bare": tm.ratio(name), "min–max": f"{lo:.3f}–{hi:.3f}"})
    return {"rows": rows, "check": {k: [list(map(float, x)) for x in v] for k, v in check.items()},
            "summary": {"transferlab / bare": tm.ratio("transferlab"),
                        **({"pytorch-adapt / transferlab": tm.ratio("pytorch-adapt hook", over="transferlab"),
                            "pytorch-adapt / bare": tm.ratio("pytorch-adapt hook")} if have_pa else {})},
            "timings": tm.to_dict(), "steps": steps, "images_per_step": per_step,
            "amp": str(B.amp_dtype) if B.amp else None}


# ------------------------------------------------------------------------------------------------ MMD
def bench_mmd(args, dev: torch.device) -> dict:
    from analysis.distances import mmd_permutation_test

    rng = np.random.default_rng(0)
    n, d = args.mmd_n, args.mmd_d
    Xs = rng.normal(0, 1, (n, d)).astype(np.float32)
    Xt = (rng.normal(0, 1, (n, d)) + 0.05).astype(np.float32)
    perms = args.mmd_perms
    device = str(dev)

    def test():
        return mmd_permutation_test(Xs, Xt, n_permutations=perms, seed=0, max_samples=None, device=device)

    def draws_only():  # what that function does on the host for its permutations (same batching)
        N = 2 * n
        batch = max(1, min(perms, 2**22 // N))
        gen, done = torch.Generator().manual_seed(0), 0
        while done < perms:
            b = min(batch, perms - done)
            torch.argsort(torch.rand(b, N, generator=gen), dim=1)[:, :n].to(dev)
            done += b

    stat, p = test()  # warm-up (also the result printed)
    tm = T.interleaved({"mmd_permutation_test": test, "permutation draws alone": draws_only}, reps=args.reps,
                       warmup=0, aa_control=False, log=T.eprint)
    return {"n": n, "d": d, "permutations": perms, "mmd2": stat, "p_value": p,
            "median_s": tm.median("mmd_permutation_test"),
            "draws_median_s": tm.median("permutation draws alone"),
            "draws_share": tm.ratio("permutation draws alone", over="mmd_permutation_test"),
            "timings": tm.to_dict()}


# ------------------------------------------------------------------------------------------------ main
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("parts", nargs="*", default=["matrix", "dann", "mmd"],
                   help="matrix dann mmd (default: all)")
    p.add_argument("--dry-run", action="store_true", help="run every part on the CPU at tiny sizes")
    p.add_argument("--reps", type=int, default=5, help="timed rounds for dann and mmd (>= 5)")
    p.add_argument("--json", type=Path, default=None, help="write every number here")
    g = p.add_argument_group("matrix")
    g.add_argument("--data", default=None,
                   help="folder with the Office-Caltech10 *_SURF_L10.mat files (default: "
                        "../shared/data/office_caltech10_surf, else bench/data)")
    g.add_argument("--synthetic", action="store_true", help="synthetic Office-Caltech-shaped data")
    g.add_argument("--config", default=None, help="time this config's matrix instead of the built-in one")
    g.add_argument("--seeds", type=int, default=5)
    g.add_argument("--budgets", default="0,3")
    g.add_argument("--steps", type=int, default=300)
    g.add_argument("--eval-every", type=int, default=100)
    g.add_argument("--hidden", type=int, default=256)
    g.add_argument("--matrix-reps", type=int, default=3, help="full matrix runs (median; default 3)")
    g.add_argument("--executor", choices=["local", "ray"], default="local")
    g.add_argument("--workers", type=int, default=None)
    g.add_argument("--gpus-per-cell", type=float, default=0.25, help="with --executor ray")
    g = p.add_argument_group("dann")
    g.add_argument("--backbone", default="resnet50", choices=["resnet50", "resnet18"])
    g.add_argument("--image-size", type=int, default=224)
    g.add_argument("--batch", type=int, default=32, help="images per domain per step (default 32 + 32)")
    g.add_argument("--n-images", type=int, default=256, help="images per domain (kept on the GPU as uint8)")
    g.add_argument("--classes", type=int, default=10)
    g.add_argument("--disc-hidden", type=int, default=1024)
    g.add_argument("--dann-steps", type=int, default=100, help="steps per timed run (default 100)")
    g.add_argument("--no-amp", action="store_true")
    g = p.add_argument_group("mmd")
    g.add_argument("--mmd-n", type=int, default=10_000)
    g.add_argument("--mmd-d", type=int, default=2048)
    g.add_argument("--mmd-perms", type=int, default=1000)
    args = p.parse_args(argv)
    bad = sorted(set(args.parts) - {"matrix", "dann", "mmd"})
    if bad:
        p.error(f"unknown part {bad[0]!r}; expected matrix, dann, mmd")
    args.shrink, args.dim = 1, 800
    if args.dry_run:
        dev = torch.device("cpu")
        args.device = "cpu"
        args.seeds, args.steps, args.eval_every, args.hidden, args.matrix_reps = 1, 3, 3, 16, 1
        args.shrink, args.dim = 8, 32
        args.backbone, args.image_size, args.batch = "resnet18", 32, 4
        args.n_images, args.disc_hidden = 12, 16
        args.dann_steps = 2
        args.mmd_n, args.mmd_d, args.mmd_perms = 200, 16, 50
        args.workers = 1  # in-process: no worker pool for a smoke test
        torch.set_num_threads(1)
    else:
        if not torch.cuda.is_available():
            print("bench_gpu: CUDA is not available on this machine — these benchmarks need one NVIDIA GPU.\n"
                  "  Run them where a GPU is lent (see bench/README.md for the exact commands), or check\n"
                  "  that the code paths work with:  .venv/bin/python bench/bench_gpu.py --dry-run",
                  file=sys.stderr)
            return 2
        dev = torch.device("cuda")
        args.device = "cuda"
    info = T.machine_info()
    mode = "DRY RUN on the CPU, tiny sizes — not a measurement" if args.dry_run else "GPU"
    print(f"# bench_gpu ({mode}) — {T.describe_machine(info)}")
    results: dict = {"machine": info, "dry_run": args.dry_run,
                     "args": {k: str(v) for k, v in vars(args).items()}}
    if "matrix" in args.parts:
        m = bench_matrix(args)
        results["matrix"] = m
        print(f"\n## matrix: {m['cells']} cells ({m['computations']} computations), {m['data']}")
        print(f"median {m['median_s']:.1f} s over {len(m['times_s'])} runs "
              f"({', '.join(f'{t:.1f}' for t in m['times_s'])}), {m['cells_per_s']:.1f} cells/s, "
              f"{m['failed']} failed; target ≤ {MATRIX_TARGET_S:.0f} s: "
              f"{'met' if m['meets_target'] else 'MISSED'}")
    if "dann" in args.parts:
        r = bench_dann(args, dev)
        results["dann"] = r
        print(f"\n## DANN {args.backbone} {args.image_size}px, batch {args.batch}+{args.batch}, "
              f"{r['steps']} steps per run, AMP {r['amp']}, median of {args.reps} interleaved rounds")
        print(T.markdown_table(r["rows"], list(r["rows"][0])))
        for k, v in r["summary"].items():
            print(f"- {k}: {v:.3f}")
    if "mmd" in args.parts:
        r = bench_mmd(args, dev)
        results["mmd"] = r
        print(f"\n## MMD permutation test: n={r['n']} per domain, d={r['d']}, "
              f"{r['permutations']} permutations")
        print(f"median {r['median_s']:.3f} s (MMD² = {r['mmd2']:.4g}, p = {r['p_value']:.4g}); the host-side "
              f"permutation draws alone take {r['draws_median_s']:.3f} s "
              f"({100 * r['draws_share']:.0f}% of it)")
    if args.json:
        T.write_json(args.json, results)
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
