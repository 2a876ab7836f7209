"""Trainer overhead (issue #7): transferlab's one training loop vs a bare PyTorch loop vs pytorch-adapt.

For DANN and Deep CORAL, the same N optimisation steps on the same data from the same initial weights, run

``bare``
    a hand-written PyTorch loop: one forward of the concatenated source+target batch through the backbone,
    the head on the source rows, the method's loss, ``zero_grad / backward / step`` — nothing else;
``transferlab``
    :func:`adapt.train.run_cell` on in-memory :class:`~adapt.domains.Domain` objects, ``eval_every = steps``
    (one eval point, at the end) and ``budget = 0``; the whole call is timed and nothing is subtracted
    (it also splits the target, builds the model and evaluates on the test split and the source once);
``bare, Adam foreach``
    the bare loop with ``torch.optim.Adam(..., foreach=True)``: the same update (bit for bit) through the
    multi-tensor path (torch's default on CUDA only), to show what that choice is worth on the CPU;
``transferlab (steps=0)``
    the same call with 0 steps: run_cell's fixed cost, shown for reference, never subtracted;
``pytorch-adapt hook``
    pytorch-adapt's ``DANNHook`` / ``AlignerPlusCHook`` (+ its ``CORALLoss``) called once per step on a batch
    dict (``SumWeighter`` weights set so the total loss is the same formula);
``pytorch-adapt adapter``
    its ``adapters.DANN`` / ``adapters.Aligner`` ``training_step``.

Same math in every loop: backbone ``Linear(d, 256) → ReLU``, head ``Linear(256, K)``, DANN discriminator
``Linear(256, 256) → ReLU → Linear(256, 256) → ReLU → Linear(256, 1)`` behind a gradient reversal layer
(λ = 1), ``L = CE + ½·BCE(D(f_s), 1) + ½·BCE(D(f_t), 0)``; Deep CORAL ``L = CE + w·‖C_S − C_T‖²_F / 4d²``
(w = 100, transferlab's default); Adam (lr 1e-3, weight decay 5e-4) on every parameter; batch 64 source +
64 unlabelled target, drawn by the same epoch-wise permutation sampler from the same seeded generator as
transferlab's loop, so all loops see the same batches. transferlab runs with ``lambda_schedule: false`` and
its default ``lr_schedule: constant`` (constant λ and lr, so the other loops need no schedule). Initial weights are
transferlab's (``adapt.train.init_model`` and the method's module seed), copied into plain modules.
Before timing, the losses of the first steps of every loop are printed side by side and must agree.

Data: Office-Caltech10 SURF (d = 800, 10 classes; ``l1`` + ``zscore`` preprocessing), amazon → Caltech10 by
default; ``--synthetic`` uses Gaussian class blobs of the same shape. Protocol: bench/_timing.py.

    .venv/bin/python bench/bench_overhead.py                       # full run (~3 min on 2 cores)
    .venv/bin/python bench/bench_overhead.py --dry-run             # tiny sizes, seconds
    .venv/bin/python bench/bench_overhead.py --profile dann        # cProfile of transferlab's DANN loop
"""

from __future__ import annotations

import argparse
import sys
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

OFFICE = Path("/work/shared/data/office_caltech10_surf")
OFFICE_FILES = {"amazon": "amazon_SURF_L10.mat", "Caltech10": "Caltech10_SURF_L10.mat",
                "dslr": "dslr_SURF_L10.mat", "webcam": "webcam_SURF_L10.mat"}
METHOD_PARAMS = {"dann": {"lambda_schedule": False, "trade_off": 1.0, "disc_hidden": 256},
                 "coral": {"weight": 100.0}}


# ------------------------------------------------------------------------------------------------ setup
class Setup:
    """Everything the loops share: domains, hyper-parameters, the sampled problem and initial weights."""

    def __init__(self, args):
        from adapt.domains import Domain, load_domains

        self.args = args
        if args.preset == "demo" and not args.synthetic:
            doms = load_domains({"kind": "digits", "names": [args.source, args.target]})
            self.source, self.target = doms[args.source], doms[args.target]
            self.data_desc = (f"scikit-learn digits (the demo's domains) {args.source} "
                              f"(n={len(self.source.X)}) → {args.target} (n={len(self.target.X)}), 8×8 = 64 "
                              f"features")
        elif args.synthetic or not (Path(args.data) / OFFICE_FILES["amazon"]).is_file():
            if not args.synthetic:
                T.eprint(f"note: {args.data} not found; using synthetic data of the same shape")
            rng = np.random.default_rng(0)
            centres = rng.normal(0, 1, (args.classes, args.dim)).astype(np.float32)

            def blob(n, shift):
                y = rng.integers(0, args.classes, n)
                X = centres[y] + rng.normal(0, 2.0, (n, args.dim)).astype(np.float32) + shift
                return Domain("s" if shift == 0 else "t", X.astype(np.float32), y)

            self.source, self.target = blob(args.n_source, 0.0), blob(args.n_target, 0.5)
            self.data_desc = (f"synthetic Gaussian blobs, d={args.dim}, {args.classes} classes, "
                              f"n_s={args.n_source}, n_t={args.n_target}")
        else:
            files = {k: v for k, v in OFFICE_FILES.items() if k in (args.source, args.target)}
            doms = load_domains({"kind": "arrays", "path": str(args.data), "files": files, "x_key": "fts",
                                 "y_key": "labels", "preprocess": ["l1", "zscore"]})
            self.source, self.target = doms[args.source], doms[args.target]
            self.data_desc = (f"Office-Caltech10 SURF {args.source} (n={len(self.source.X)}) → {args.target} "
                              f"(n={len(self.target.X)}), d={self.source.input_shape[0]}, l1+zscore")
        self.seed = args.seed
        self.d = int(np.prod(self.source.input_shape))
        self.K = max(self.source.n_classes, self.target.n_classes)
        split = self.target.split(self.seed, 0.3, False)  # transferlab's default data protocol
        flat = (-1, self.d)
        self.Xs = torch.from_numpy(np.ascontiguousarray(self.source.X, dtype=np.float32).reshape(flat))
        self.ys = torch.from_numpy(self.source.y.astype(np.int64))
        Xu = np.ascontiguousarray(self.target.X[split.train], dtype=np.float32)
        self.Xu = torch.from_numpy(Xu.reshape(flat))
        self.model_cfg = {"backbone": "mlp", "hidden": [args.hidden], "dropout": 0.0}
        self.train_cfg = {"batch_size": args.batch, "lr": args.lr, "weight_decay": args.weight_decay,
                          "optimizer": "adam", "amp": False, "device": "cpu", "selection": "last"}
        self._init: dict[str, dict] = {}

    # --- transferlab
    def cell(self, method: str, steps: int, eval_every: int | None = None):
        from adapt.cells import Cell

        return Cell(source=self.source.name, target=self.target.name, method=method, method_name=method,
                    seed=self.seed, budget=0, method_params=dict(METHOD_PARAMS[method]), model=self.model_cfg,
                    train={**self.train_cfg, "steps": steps, "eval_every": eval_every or max(steps, 1)},
                    data={"test_fraction": 0.3, "transductive": False})

    def run_transferlab(self, method: str, steps: int, eval_every: int | None = None) -> dict:
        from adapt.train import run_cell

        rec = run_cell(self.cell(method, steps, eval_every), self.source, self.target, device="cpu")
        if rec["status"] != "ok":
            raise RuntimeError(f"transferlab {method}: {rec['reason']}")
        return rec

    # --- initial weights, exactly transferlab's
    def init_state(self, method: str) -> dict:
        if method not in self._init:
            from adapt.domains.base import stable_seed
            from adapt.methods import METHODS
            from adapt.train import init_model

            model = init_model(self.model_cfg, self.source.kind, self.source.input_shape, self.K, self.seed)
            torch.manual_seed(stable_seed("method-init", self.seed, method))
            params = METHODS[method].check_params(METHOD_PARAMS[method])
            m = METHODS[method](params, model.feature_dim, self.K)
            lin = model.backbone.layers[0][0]
            state = {"G": {"0.weight": lin.weight, "0.bias": lin.bias},
                     "C": {"weight": model.head.weight, "bias": model.head.bias}}
            if method == "dann":
                disc = m.modules["domain_loss"].discriminator.net
                state["D"] = {k: v for k, v in disc.state_dict().items()}
            self._init[method] = {k: {n: t.detach().clone() for n, t in v.items()} for k, v in state.items()}
        return self._init[method]

    def plain_modules(self, method: str) -> dict[str, nn.Module]:
        """Plain ``nn`` modules (no transferlab classes) holding transferlab's initial weights."""
        h = self.args.hidden
        mods: dict[str, nn.Module] = {"G": nn.Sequential(nn.Linear(self.d, h), nn.ReLU()),
                                      "C": nn.Linear(h, self.K)}
        if method == "dann":
            dh = METHOD_PARAMS["dann"]["disc_hidden"]
            mods["D"] = nn.Sequential(nn.Linear(h, dh), nn.ReLU(), nn.Linear(dh, dh), nn.ReLU(),
                                      nn.Linear(dh, 1), nn.Flatten(0))
        for k, m in mods.items():
            m.load_state_dict(self.init_state(method)[k])
            m.train()
        return mods

    def sampler_pair(self):
        """Source and unlabelled-target samplers drawing from one generator, as transferlab's loop does."""
        from adapt.domains.base import stable_seed

        gen = torch.Generator()
        gen.manual_seed(stable_seed("batches", self.seed))
        b = self.args.batch
        return EpochSampler(len(self.Xs), b, gen), EpochSampler(len(self.Xu), b, gen)

    def adam(self, params, foreach: bool | None = None):
        return torch.optim.Adam(params, lr=self.args.lr, weight_decay=self.args.weight_decay, foreach=foreach)


class EpochSampler:
    """Epoch-wise shuffled index batches (a fresh ``randperm`` when the epoch runs out)."""

    def __init__(self, n: int, batch: int, gen: torch.Generator):
        self.n, self.batch, self.gen = n, min(batch, n), gen
        self.perm, self.pos = None, n

    def next(self) -> torch.Tensor:
        if self.pos + self.batch > self.n:
            self.perm = torch.randperm(self.n, generator=self.gen)
            self.pos = 0
        out = self.perm[self.pos:self.pos + self.batch]
        self.pos += self.batch
        return out


# ------------------------------------------------------------------------------------------------ bare
def _coral(fs: torch.Tensor, ft: torch.Tensor) -> torch.Tensor:
    d = fs.shape[1]
    cs, ct = fs - fs.mean(0, keepdim=True), ft - ft.mean(0, keepdim=True)
    diff = cs.T @ cs / (len(fs) - 1) - ct.T @ ct / (len(ft) - 1)
    return (diff * diff).sum() / (4.0 * d * d)


ABLATIONS = ("groups", "loss_module", "split", "bookkeeping")


def bare_loop(S: Setup, method: str, steps: int, record: bool = False,
              add: frozenset[str] = frozenset()) -> list[tuple[float, float]]:
    """The hand-written loop. ``record``: return (loss_cls, loss_method) per step (off while timing).

    ``add`` (for ``--ablate`` only) adds one of transferlab's per-step habits at a time, to attribute its
    overhead: ``groups`` — Adam with three parameter groups (backbone, head, method) and the lr set on each
    group every step; ``loss_module`` — :class:`adapt.losses.DomainAdversarialLoss` / ``CORALLoss`` instead
    of the inline formula; ``split`` — the head on the whole source+target batch, then ``torch.split``;
    ``bookkeeping`` — per-term loss sums kept on the device and every term read back with ``float()`` each
    step (the CPU divergence guard). ``foreach`` (not one of transferlab's habits: a variant of the
    baseline) — Adam's multi-tensor update (torch's default on CUDA only; on CPU the same numbers, bit for
    bit).
    """
    mods = S.plain_modules(method)
    G, C = mods["G"], mods["C"]
    D = mods.get("D")
    foreach = True if "foreach" in add else None
    if "groups" in add:
        lr = S.args.lr
        groups = [{"params": list(m.parameters()), "lr": lr, "base_lr": lr} for m in mods.values()]
        opt = S.adam(groups, foreach=foreach)
    else:
        opt = S.adam([p for m in mods.values() for p in m.parameters()], foreach=foreach)
    if "loss_module" in add:
        from adapt.losses import CORALLoss, DomainAdversarialLoss

        loss_mod = DomainAdversarialLoss(D) if method == "dann" else CORALLoss()
    s_src, s_tgt = S.sampler_pair()
    Xs, ys, Xu = S.Xs, S.ys, S.Xu
    weight = METHOD_PARAMS["coral"]["weight"]
    sums: dict[str, torch.Tensor] = {}
    out = []
    for _ in range(steps):
        if "groups" in add:
            for g in opt.param_groups:
                g["lr"] = g["base_lr"] * 1.0
        i, j = s_src.next(), s_tgt.next()
        x = torch.cat([Xs[i], Xu[j]])
        f = G(x)
        n = len(i)
        if "split" in add:
            fs, ft = torch.split(f, [n, len(j)])
            ls, _ = torch.split(C(f), [n, len(j)])
            loss_cls = F.cross_entropy(ls.float(), ys[i])
        else:
            fs, ft = f[:n], f[n:]
            loss_cls = F.cross_entropy(C(fs), ys[i])
        if "loss_module" in add:
            loss_m = loss_mod(fs, ft, 1.0) if method == "dann" else weight * loss_mod(fs, ft)
        elif method == "dann":
            dl = D(T.grad_reverse(f, 1.0))
            loss_m = 0.5 * (F.binary_cross_entropy_with_logits(dl[:n], torch.ones(n))
                            + F.binary_cross_entropy_with_logits(dl[n:], torch.zeros(len(j))))
        else:
            loss_m = weight * _coral(fs, ft)
        loss = loss_cls + loss_m
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if "bookkeeping" in add:
            for name, value in (("cls", loss_cls), ("m", loss_m)):
                v = value.detach().float()
                sums[name] = sums[name] + v if name in sums else v
            checked = {k: float(v.detach()) for k, v in (("cls", loss_cls), ("m", loss_m))}
            if any(v != v for v in checked.values()):
                raise FloatingPointError("diverged")
        if record:
            out.append((float(loss_cls), float(loss_m)))
    return out


# ---------------------------------------------------------------------------------------------- pytorch-adapt
def _pa_hook(S: Setup, method: str, opts):
    from pytorch_adapt.weighters import SumWeighter

    if method == "dann":
        from pytorch_adapt.hooks import DANNHook

        halves = SumWeighter(weights={"src_domain_loss": 0.5, "target_domain_loss": 0.5})
        return DANNHook(opts=opts, weighter=halves)
    from pytorch_adapt.hooks import AlignerHook, AlignerPlusCHook
    from pytorch_adapt.layers import CORALLoss

    return AlignerPlusCHook(opts, weighter=SumWeighter(weights={"features_confusion_loss":
                                                                 METHOD_PARAMS["coral"]["weight"]}),
                            aligner_hook=AlignerHook(CORALLoss(), layer="features"), softmax=False)


def _pa_losses(method: str, losses: dict) -> tuple[float, float]:
    comp = losses["total_loss"]
    if method == "dann":
        return comp["src_c_loss"], comp["src_domain_loss"] + comp["target_domain_loss"]
    return comp["src_c_loss"], comp["features_confusion_loss"]


def pytorch_adapt_loop(S: Setup, method: str, steps: int, flavour: str = "hook",
                       record: bool = False) -> list[tuple[float, float]]:
    """pytorch-adapt: its hook called per step (``flavour='hook'``) or its adapter's ``training_step``."""
    mods = S.plain_modules(method)
    s_src, s_tgt = S.sampler_pair()
    Xs, ys, Xu = S.Xs, S.ys, S.Xu
    ones, zeros = torch.ones(S.args.batch), torch.zeros(S.args.batch)
    if flavour == "hook":
        opts = [S.adam(m.parameters()) for m in mods.values()]
        hook = _pa_hook(S, method, opts)

        def step(batch):
            return hook({**mods, **batch})[1]
    else:
        from pytorch_adapt.containers import Models, Optimizers
        from pytorch_adapt.weighters import SumWeighter

        optimizers = Optimizers((torch.optim.Adam, {"lr": S.args.lr, "weight_decay": S.args.weight_decay}))
        if method == "dann":
            from pytorch_adapt.adapters import DANN

            adapter = DANN(models=Models(mods), optimizers=optimizers, hook_kwargs={
                "weighter": SumWeighter(weights={"src_domain_loss": 0.5, "target_domain_loss": 0.5})})
        else:
            from pytorch_adapt.adapters import Aligner
            from pytorch_adapt.hooks import AlignerHook
            from pytorch_adapt.layers import CORALLoss

            adapter = Aligner(models=Models(mods), optimizers=optimizers, hook_kwargs={
                "weighter": SumWeighter(weights={"features_confusion_loss":
                                                 METHOD_PARAMS["coral"]["weight"]}),
                "aligner_hook": AlignerHook(CORALLoss(), layer="features"), "softmax": False})
        step = adapter.training_step
    out = []
    for _ in range(steps):
        i, j = s_src.next(), s_tgt.next()
        batch = {"src_imgs": Xs[i], "src_labels": ys[i], "target_imgs": Xu[j]}
        if method == "dann":
            batch.update(src_domain=ones[: len(i)], target_domain=zeros[: len(j)])
        losses = step(batch)
        if record:
            out.append(_pa_losses(method, losses))
    return out


# ------------------------------------------------------------------------------------------------ checks
def check_losses(S: Setup, method: str, n: int) -> list[dict]:
    """Per-step (loss_cls, method loss) of the first ``n`` steps of every loop; raises if they disagree."""
    rec = S.run_transferlab(method, n, eval_every=1)
    key = "loss_domain" if method == "dann" else "loss_coral"
    tl = list(zip(rec["curves"]["loss_cls"], rec["curves"][key]))
    loops = {"bare": bare_loop(S, method, n, record=True), "transferlab": tl,
             "pytorch-adapt hook": pytorch_adapt_loop(S, method, n, "hook", record=True),
             "pytorch-adapt adapter": pytorch_adapt_loop(S, method, n, "adapter", record=True)}
    rows = []
    for name, vals in loops.items():
        diff = max(abs(a - b) for va, vb in zip(vals, loops["bare"]) for a, b in zip(va, vb))
        rows.append({"loop": name, "step-1 loss_cls": vals[0][0], f"step-1 {key}": vals[0][1],
                     f"step-{n} loss_cls": vals[-1][0], f"step-{n} {key}": vals[-1][1],
                     f"max |Δ| vs bare, steps 1..{n}": diff})
        # transferlab rounds curve values to 6 decimals; float32 rounding grows a little over the steps
        if diff > 1e-4 * max(1.0, abs(vals[0][0]), abs(vals[0][1])):
            raise AssertionError(f"{method}: {name} does not compute the bare loop's losses "
                                 f"(max |Δ| {diff:.3g})")
    return rows


# ------------------------------------------------------------------------------------------------ main
def measure(S: Setup, method: str, steps: int, reps: int, warmup: int, flavours: list[str]) -> dict:
    variants = {
        "bare": lambda: bare_loop(S, method, steps),
        "bare, Adam foreach": lambda: bare_loop(S, method, steps, add=frozenset(["foreach"])),
        "transferlab": lambda: S.run_transferlab(method, steps),
        "transferlab (steps=0)": lambda: S.run_transferlab(method, 0),
    }
    for fl in flavours:
        variants[f"pytorch-adapt {fl}"] = (lambda fl=fl: pytorch_adapt_loop(S, method, steps, fl))
    tm = T.interleaved(variants, baseline="bare", reps=reps, warmup=warmup, log=T.eprint)
    rows = []
    for name in tm.times:
        lo, hi = tm.ratio_range(name)
        clo, chi = tm.ratio_range(name, kind="cpu")
        rows.append({"loop": name, "median s": tm.median(name),
                     "ms/step": 1e3 * tm.median(name) / steps if "steps=0" not in name else None,
                     "× bare, wall": tm.ratio(name), "wall min–max": f"{lo:.2f}–{hi:.2f}",
                     "× bare, CPU time": tm.ratio(name, kind="cpu"), "CPU min–max": f"{clo:.2f}–{chi:.2f}"})
    summary = {}
    for kind in ("wall", "cpu"):
        summary[f"[{kind}] transferlab / bare"] = tm.ratio("transferlab", kind=kind)
        summary[f"[{kind}] transferlab / (bare, Adam foreach)"] = tm.ratio(
            "transferlab", over="bare, Adam foreach", kind=kind)
        for fl in flavours:
            pa = f"pytorch-adapt {fl}"
            summary[f"[{kind}] {pa} / bare"] = tm.ratio(pa, kind=kind)
            summary[f"[{kind}] {pa} / transferlab"] = tm.ratio(pa, over="transferlab", kind=kind)
        summary[f"[{kind}] A/A noise: bare (again) / bare"] = tm.ratio("bare" + T.AA_SUFFIX, kind=kind)
    return {"rows": rows, "summary": summary, "timings": tm.to_dict()}


def ablate(S: Setup, method: str, steps: int, reps: int, warmup: int) -> dict:
    """Attribute transferlab's per-step overhead: the bare loop plus one of its habits at a time."""
    variants = {"bare": lambda: bare_loop(S, method, steps)}
    for a in ABLATIONS:
        variants[f"bare + {a}"] = (lambda a=a: bare_loop(S, method, steps, add=frozenset([a])))
    variants["bare + all four"] = lambda: bare_loop(S, method, steps, add=frozenset(ABLATIONS))
    variants["transferlab"] = lambda: S.run_transferlab(method, steps)
    for name, fn in variants.items():  # the habits change nothing in the losses
        if name != "transferlab" and name != "bare":
            add = frozenset(ABLATIONS) if name.endswith("all four") else frozenset([name.split(" + ")[1]])
            a = bare_loop(S, method, 3, record=True, add=add)
            b = bare_loop(S, method, 3, record=True)
            assert max(abs(x - y) for u, v in zip(a, b) for x, y in zip(u, v)) < 1e-5, name
    tm = T.interleaved(variants, baseline="bare", reps=reps, warmup=warmup, log=T.eprint)
    rows = []
    for name in tm.times:
        rows.append({"loop": name, "ms/step": 1e3 * tm.median(name) / steps,
                     "× bare, wall": tm.ratio(name), "× bare, CPU time": tm.ratio(name, kind="cpu"),
                     "µs/step over bare (CPU)":
                         1e6 * (tm.ratio(name, kind="cpu") - 1) * tm.median("bare", "cpu") / steps})
    return {"rows": rows, "timings": tm.to_dict()}


def profile(S: Setup, method: str, steps: int, out: Path | None) -> None:
    import cProfile
    import pstats

    S.run_transferlab(method, steps)  # warm
    pr = cProfile.Profile()
    pr.enable()
    S.run_transferlab(method, steps)
    pr.disable()
    st = pstats.Stats(pr).sort_stats("tottime")
    st.print_stats(25)
    st.sort_stats("cumulative").print_stats(40)
    if out:
        pr.dump_stats(str(out))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", default="dann,coral")
    p.add_argument("--steps", type=int, default=300, help="optimisation steps per timed run (default 300)")
    p.add_argument("--reps", type=int, default=15, help="timed rounds (>= 5; default 15)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--check-steps", type=int, default=5, help="steps compared loss by loss before timing")
    p.add_argument("--preset", choices=["office", "demo"], default="office",
                   help="office: Office-Caltech SURF, d=800, MLP [256] (default); demo: the demo's 8×8 "
                        "digits (original → rotated), MLP [128]")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--hidden", type=int, default=None,
                   help="MLP width (default 256, or 128 with --preset demo)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", default=str(OFFICE))
    p.add_argument("--source", default=None, help="default amazon (office) / original (demo)")
    p.add_argument("--target", default=None, help="default Caltech10 (office) / rotated (demo)")
    p.add_argument("--synthetic", action="store_true", help="Gaussian blobs instead of Office-Caltech SURF")
    p.add_argument("--dim", type=int, default=800, help="--synthetic: feature dimension")
    p.add_argument("--classes", type=int, default=10, help="--synthetic: classes")
    p.add_argument("--n-source", type=int, default=958)
    p.add_argument("--n-target", type=int, default=1123)
    p.add_argument("--flavours", default="hook,adapter", help="pytorch-adapt entry points: hook,adapter")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1: what each of the local executor's 2 workers gets on 2 "
                        "cores; 0 = torch's default)")
    p.add_argument("--json", type=Path, default=None, help="write every number here")
    p.add_argument("--profile", choices=["dann", "coral"], default=None,
                   help="cProfile transferlab's loop for this method instead of timing")
    p.add_argument("--ablate", action="store_true",
                   help="attribute transferlab's per-step overhead (bare loop + one of its habits at a time)")
    p.add_argument("--dry-run", action="store_true", help="tiny sizes: check that everything runs")
    args = p.parse_args(argv)
    demo = args.preset == "demo"
    args.hidden = args.hidden or (128 if demo else 256)
    args.source = args.source or ("original" if demo else "amazon")
    args.target = args.target or ("rotated" if demo else "Caltech10")
    if args.dry_run:
        args.synthetic, args.dim, args.classes, args.n_source, args.n_target = True, 32, 4, 80, 90
        args.hidden, args.batch, args.steps, args.reps, args.check_steps = 16, 16, 5, 5, 3
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=UserWarning)
    S = Setup(args)
    info = T.machine_info()
    print(f"# bench_overhead — {T.describe_machine(info)}")
    print(f"data: {S.data_desc}; MLP [{args.hidden}], batch {args.batch}+{args.batch}, Adam lr {args.lr} "
          f"wd {args.weight_decay}, {args.steps} steps per run, {args.reps} rounds")
    if args.profile:
        profile(S, args.profile, args.steps, args.json.with_suffix(".prof") if args.json else None)
        return 0
    if args.ablate:
        results = {"machine": info, "data": S.data_desc, "args": {k: str(v) for k, v in vars(args).items()}}
        for method in [m for m in args.methods.split(",") if m]:
            print(f"\n## {method}: where transferlab's per-step overhead goes ({args.steps} steps, "
                  f"median of {args.reps} interleaved rounds)")
            res = ablate(S, method, args.steps, args.reps, args.warmup)
            print(T.markdown_table(res["rows"], list(res["rows"][0])))
            results[f"ablate_{method}"] = res
        if args.json:
            T.write_json(args.json, results)
        return 0
    flavours = [f for f in args.flavours.split(",") if f]
    results: dict = {"machine": info, "data": S.data_desc, "args": {k: str(v) for k, v in vars(args).items()}}
    for method in [m for m in args.methods.split(",") if m]:
        print(f"\n## {method}: losses of the first {args.check_steps} steps (must agree)")
        check = check_losses(S, method, args.check_steps)
        cols = list(check[0])
        print(T.markdown_table(check, cols))
        print(f"\n## {method}: {args.steps} steps, median of {args.reps} interleaved rounds")
        res = measure(S, method, args.steps, args.reps, args.warmup, flavours)
        print(T.markdown_table(res["rows"], list(res["rows"][0])))
        for k, v in res["summary"].items():
            print(f"- {k}: {v:.3f}")
        results[method] = {"check": check, **res}
    if args.json:
        T.write_json(args.json, results)
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
