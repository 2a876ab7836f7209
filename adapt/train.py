"""The one training loop: ``run_cell(cell, source, target)`` → a JSON-serialisable record.

Protocol (every method, so results pair up by seed):

- target split ``target.split(seed, data.test_fraction, data.transductive)``; labelled target
  ``target.labelled_subset(split, budget, seed)``; unlabelled target pool = all of ``split.train``;
  source = every source sample, or only the target's train split when source and target are one domain.
  Accuracy is measured on the target *test* split only, once, after training and model selection.
- One seed ⇒ one initial model for every method: torch is seeded with ``stable_seed("init", seed)`` right
  before the model is built (method-specific modules such as a discriminator are built after, from their own
  seed). Batches come from a generator seeded by the seed only. Deterministic on CPU.
- Every method runs ``train.steps`` optimisation steps in total (finetune splits them between phases, see
  :mod:`adapt.methods.finetune`); each step reads a source batch and/or a labelled-target batch and/or an
  unlabelled-target batch of ``train.batch_size`` (the labelled batch is at most the labelled set).
- Loss terms are accumulated on the device and read back only at eval points (every ``train.eval_every``
  steps and at the end of each phase), where the curves get one point each: the window mean of every loss term, the
  adaptation weight ``lambda``, the ``lr``, and ``target_labelled_acc`` (accuracy on the labelled target
  subset, training data — never the test split). On CPU the divergence guard also checks every step.
- Divergence: a non-finite loss term, or a classification loss above ``DIVERGENCE_LIMIT`` (a sane
  cross-entropy is O(log K)), ends the run with ``status: "failed"`` and a reason such as
  ``"diverged at step 123 (loss_domain=nan)"``.
- Model selection (``train.selection``, see :mod:`adapt.validators`): ``last`` or a label-free validator on
  the unlabelled target pool at eval points. ``scratch`` selects its step count on a held-out part of the
  labelled subset instead (see :mod:`adapt.methods.scratch`).
- Device: ``train.device`` (``auto``: CUDA when available). On CUDA with ``train.amp`` the forward runs under
  bf16 autocast (fp16 + grad scaling where bf16 is unsupported); array domains up to ``MAX_DEVICE_BYTES`` live
  on the device and batches are drawn by index there. Optional image augmentation (``train.augment``): random
  crop after zero padding of ⌈H/8⌉ px, plus horizontal flips when ``train.flip`` is true.
- Frozen prefixes run once (``train.feature_cache``, see :mod:`adapt.features`): when a phase freezes the first K
  blocks of a backbone that can split its forward there and nothing is augmented, the K blocks' outputs come from
  the feature cache (per whole domain, keyed by content) and only the rest of the network runs — for training
  batches, eval points and the final evaluation. Identical records on CPU; ``feature_cache: false`` turns it off.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch.nn import functional as F

from .cells import Cell
from .config import DATA_DEFAULTS, MODEL_DEFAULTS, TRAIN_DEFAULTS
from . import features
from .domains.base import Domain, stable_seed
from .losses import dann_lr_factor
from .methods import METHODS
from .methods.base import Method, Phase
from .models import Classifier, build_model
from .outcomes import encode_outcomes
from .validators import Selector

DIVERGENCE_LIMIT = 1e4
MAX_DEVICE_BYTES = 2 * 1024**3
EVAL_BATCH = 1024
LR_SCHEDULES = (None, "method", "constant", "anneal", "cosine")
CLS_TERMS = ("loss_cls", "loss_cls_target")


# ---------------------------------------------------------------------------------------------- device
def resolve_device(requested: str | torch.device | None = "auto") -> torch.device:
    """``auto`` → ``cuda`` when available, else ``cpu``; ``cuda``/``cuda:N``/``cpu`` as given."""
    if requested in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(requested)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {requested!r} requested but CUDA is not available")
    return dev


def device_label(dev: torch.device) -> str:
    if dev.type == "cuda":
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return str(dev)


# ---------------------------------------------------------------------------------------------- data
class _Data:
    """One sample set: a tensor on the device (vector/image) or a host object array (text)."""

    start = 0  # > 0: rows are the outputs of the backbone's first ``start`` blocks (a feature-cache view)

    def __init__(self, X, kind: str, device: torch.device):
        self.kind = kind
        self.device = device
        if kind == "text":
            self.X = np.asarray(X, dtype=object)
            self.scale = None
        else:
            t = torch.from_numpy(np.ascontiguousarray(X))
            self.scale = 1.0 / 255.0 if t.dtype == torch.uint8 else None
            if t.dtype not in (torch.uint8, torch.float32):
                t = t.float()
            self.X = t.to(device) if t.numel() * t.element_size() <= MAX_DEVICE_BYTES else t
        self.n = len(self.X)

    @classmethod
    def prefix_view(cls, feats: torch.Tensor, start: int, device: torch.device) -> _Data:
        """Rows of cached prefix features (float32) standing in for the raw samples."""
        data = cls(np.zeros((0,), np.float32), "vector", device)
        small = feats.numel() * feats.element_size() <= MAX_DEVICE_BYTES
        data.X, data.n, data.start = (feats.to(device) if small else feats), len(feats), start
        return data

    def take(self, idx: torch.Tensor | None = None):
        if self.kind == "text":
            rows = self.X if idx is None else self.X[idx.cpu().numpy()]
            return [str(s) for s in rows]
        x = self.X if idx is None else self.X[idx.to(self.X.device)]
        x = x.to(self.device, non_blocking=True)
        return x.float() * self.scale if self.scale else x


class _Sampler:
    """Epoch-wise shuffled index batches drawn on the device; counters on the host (no sync)."""

    def __init__(self, n: int, batch: int, gen: torch.Generator, device: torch.device):
        self.n, self.batch, self.gen, self.device = n, min(batch, n), gen, device
        self.all = torch.arange(n, device=device)
        self.perm, self.pos = None, n

    def next(self) -> torch.Tensor:
        if self.batch >= self.n:
            return self.all
        if self.pos + self.batch > self.n:
            self.perm = torch.randperm(self.n, generator=self.gen, device=self.device)
            self.pos = 0
        out = self.perm[self.pos:self.pos + self.batch]
        self.pos += self.batch
        return out


def augment_images(x: torch.Tensor, gen: torch.Generator, flip: bool = False) -> torch.Tensor:
    """Random crop after zero padding by ⌈H/8⌉ px (a random translation), optional horizontal flip."""
    n, c, h, w = x.shape
    pad = max(1, math.ceil(h / 8))
    padded = F.pad(x, (pad, pad, pad, pad))
    oy = torch.randint(0, 2 * pad + 1, (n,), generator=gen, device=x.device)
    ox = torch.randint(0, 2 * pad + 1, (n,), generator=gen, device=x.device)
    rows = (oy[:, None] + torch.arange(h, device=x.device))[:, :, None]  # (n, h, 1)
    cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, :]  # (n, 1, w)
    out = padded[torch.arange(n, device=x.device)[:, None, None], :, rows, cols]  # (n, h, w, c)
    out = out.permute(0, 3, 1, 2)
    if flip:
        mask = torch.rand(n, generator=gen, device=x.device) < 0.5
        out = torch.where(mask[:, None, None, None], out.flip(3), out)
    return out.contiguous()


@dataclass
class _Problem:
    """The arrays one cell trains and evaluates on (already split by the protocol)."""

    kind: str
    input_shape: tuple
    n_classes: int
    Xs: np.ndarray
    ys: np.ndarray
    X_lab: np.ndarray
    y_lab: np.ndarray
    X_unl: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    test_index: np.ndarray | None = None  # target indices of the test split, for the record's outcomes
    given_test: bool = False
    # where each array came from: name -> (the whole domain array, row indices), so frozen-prefix features are
    # computed once per domain (adapt.features) and sliced; None for derived problems (closed-form CORAL)
    origins: dict | None = None


# ---------------------------------------------------------------------------------------------- entry
def run_cell(cell: Cell, source: Domain, target: Domain, device: str | None = None) -> dict:
    """Train and evaluate one cell; returns its record (see the module docstring and README).

    ``device`` overrides ``cell.train['device']``. A diverging run returns ``status: "failed"``; other errors
    propagate to the caller.
    """
    t0 = time.perf_counter()
    if cell.method_name not in METHODS:
        raise ValueError(f"unknown method {cell.method_name!r}; expected one of {sorted(METHODS)}")
    method_cls = METHODS[cell.method_name]
    params = method_cls.check_params(cell.method_params)
    tcfg = {**TRAIN_DEFAULTS, **(cell.train or {})}
    mcfg = {**copy.deepcopy(MODEL_DEFAULTS), **copy.deepcopy(cell.model or {})}
    dcfg = {**DATA_DEFAULTS, **(cell.data or {})}
    if tcfg.get("lr_schedule") not in LR_SCHEDULES:
        raise ValueError(f"train.lr_schedule: expected one of {list(LR_SCHEDULES[1:])}, got {tcfg['lr_schedule']!r}")
    dev = resolve_device(device if device is not None else tcfg.get("device", "auto"))
    if cell.budget < 0:
        raise ValueError(f"budget must be >= 0, got {cell.budget}")
    if cell.method_name == "scratch" and cell.budget == 0:
        raise ValueError("scratch trains on target labels only and needs a budget > 0")
    problem = _make_problem(cell, source, target, dcfg)

    record: dict = {
        "source": cell.source, "target": cell.target, "method": cell.method, "method_name": cell.method_name,
        "seed": cell.seed, "budget": cell.budget, "accuracy": None, "source_accuracy": None,
        "status": "ok", "reason": None, "wall_time": None, "device": device_label(dev), "steps": 0,
        "n_source": int(len(problem.Xs)) if method_cls.uses_source else 0,
        "n_target_labelled": int(len(problem.X_lab)), "n_target_unlabelled": int(len(problem.X_unl)),
        "n_test": int(len(problem.X_test)), "n_classes": int(problem.n_classes),
        "selection": tcfg["selection"], "selected_step": None, "params": params, "curves": {},
    }
    if getattr(method_cls, "closed_form", False):
        out = _run_coral_closed(cell, problem, params, mcfg, tcfg, dev)
    else:
        out = _run_trained(cell, problem, method_cls, params, mcfg, tcfg, dev)
    record.update(out)
    record["wall_time"] = round(time.perf_counter() - t0, 3)
    return record


def _make_problem(cell: Cell, source: Domain, target: Domain, dcfg: dict) -> _Problem:
    if source.kind != target.kind:
        raise ValueError(f"source {source.name!r} is {source.kind} but target {target.name!r} is {target.kind}")
    if source.input_shape != target.input_shape:
        raise ValueError(f"input shapes differ: {source.name} {source.input_shape} vs {target.name} "
                         f"{target.input_shape}")
    split = target.split(cell.seed, dcfg["test_fraction"], dcfg["transductive"])
    lab = target.labelled_subset(split, cell.budget, cell.seed)
    _, _, X_test, y_test = target.train_test(split)
    if source.name == target.name:  # never the target's test samples
        Xs, ys = target.X[split.train], target.y[split.train]
        src_origin = (target.X, split.train)
    else:
        Xs, ys = source.X, source.y
        src_origin = (source.X, np.arange(len(source.X)))
    test_pool = target.X_test if split.given_test else target.X
    origins = {"Xs": src_origin, "X_lab": (target.X, lab), "X_unl": (target.X, split.train),
               "X_test": (test_pool, split.test)}
    return _Problem(kind=target.kind, input_shape=tuple(target.input_shape),
                    n_classes=max(source.n_classes, target.n_classes), Xs=Xs, ys=ys,
                    X_lab=target.X[lab], y_lab=target.y[lab], X_unl=target.X[split.train],
                    X_test=X_test, y_test=y_test, test_index=split.test, given_test=split.given_test,
                    origins=origins)


def init_model(mcfg: dict, kind: str, input_shape, n_classes: int, seed: int) -> Classifier:
    """The cell's initial model: torch seeded from the seed only, so every method starts alike."""
    torch.manual_seed(stable_seed("init", seed))
    return build_model(mcfg, kind, input_shape, n_classes)


def _build(cell: Cell, problem: _Problem, method_cls: type[Method], params: dict, mcfg: dict,
           dev: torch.device) -> tuple[Classifier, Method]:
    if not method_cls.uses_source:  # scratch: the same architecture, random weights
        mcfg = {**mcfg, "pretrained": False, "weights": None}
    model = init_model(mcfg, problem.kind, problem.input_shape, problem.n_classes, cell.seed)
    torch.manual_seed(stable_seed("method-init", cell.seed, method_cls.name))
    method = method_cls(params, model.feature_dim, problem.n_classes)
    model.to(dev)
    method.modules.to(dev)
    return model, method


def _run_trained(cell, problem, method_cls, params, mcfg, tcfg, dev) -> dict:
    model, method = _build(cell, problem, method_cls, params, mcfg, dev)
    steps = int(tcfg["steps"])
    out: dict = {"model_info": model.info}
    if method_cls.name == "scratch" and params["early_stopping"]:
        hold = _holdout(problem.y_lab, params["holdout"], cell.seed)
        if len(hold):
            keep = np.setdiff1d(np.arange(len(problem.y_lab)), hold)
            init_state = _snapshot(model, method)
            search = replace(problem, X_lab=problem.X_lab[keep], y_lab=problem.y_lab[keep])
            holdout = (problem.X_lab[hold], problem.y_lab[hold])
            res = _fit(model, method, method.phases(steps, cell.budget, tcfg), search, tcfg, dev, cell.seed,
                       rule="last", holdout=holdout)
            if res["status"] != "ok":
                return {**_result_fields(res), "model_info": model.info}
            acc = np.asarray(res["holdout_acc"], dtype=float)
            best = int(np.flatnonzero(acc == acc.max())[-1])
            chosen = int(res["curves"]["step"][best])
            out["early_stopping"] = {"step": res["curves"]["step"], "holdout_acc": res["holdout_acc"],
                                     "chosen_steps": chosen, "n_holdout": int(len(hold))}
            _restore(model, method, init_state)
            res = _fit(model, method, method.phases(chosen, cell.budget, tcfg), problem, tcfg, dev, cell.seed,
                       rule="last")
            # steps chosen by accuracy on the held-out labelled samples, then retrained on all of them
            res["selection"] = "holdout"
            res["selected_step"] = chosen
            return {**out, **_result_fields(res), **_final_eval(model, problem, dev, method_cls, res, tcfg)}
        out["early_stopping"] = {"chosen_steps": steps, "note": "budget too small to hold out: all steps used"}
    res = _fit(model, method, method.phases(steps, cell.budget, tcfg), problem, tcfg, dev, cell.seed,
               rule=tcfg["selection"])
    return {**out, **_result_fields(res), **_final_eval(model, problem, dev, method_cls, res, tcfg)}


def _result_fields(res: dict) -> dict:
    keys = ("status", "reason", "steps", "curves", "selection", "selected_step", "phases")
    return {k: res[k] for k in keys if k in res}


def _final_eval(model, problem, dev, method_cls, res, tcfg) -> dict:
    if res["status"] != "ok":
        return {}
    depth, keep = res.get("prefix_depth", 0), res.get("prefix_persist", True)  # the last phase's cached prefix
    test = _input(problem, "X_test", depth, model, tcfg, dev, keep)
    pred = _predict(model, test, dev).argmax(1).cpu().numpy()
    acc = float((pred == np.asarray(problem.y_test)).mean()) if test.n else None
    src = (_accuracy(model, _input(problem, "Xs", depth, model, tcfg, dev, keep), problem.ys, dev)
           if method_cls.uses_source else None)
    return {"accuracy": acc, "source_accuracy": src, **_outcomes(problem, pred)}


def _outcomes(problem: _Problem, pred: np.ndarray) -> dict:
    """The record's per-example ``outcomes`` (see :mod:`adapt.outcomes`); none without test indices."""
    if problem.test_index is None or len(pred) != len(problem.test_index):
        return {}
    return {"outcomes": encode_outcomes(problem.test_index, pred, problem.y_test, problem.given_test)}


def _cached_depth(model: Classifier, frozen: int, problem: _Problem, tcfg: dict) -> int:
    """Frozen blocks served by the feature cache: none with augmentation, text, or the cache off."""
    if problem.kind == "text" or problem.origins is None or (tcfg.get("augment") and problem.kind == "image"):
        return 0
    if features.store_for(tcfg.get("feature_cache", True)) is None:
        return 0
    return features.prefix_depth(model.backbone, frozen)


def _input(problem: _Problem, name: str, depth: int, model: Classifier, tcfg: dict, dev,
           persist: bool = True) -> _Data:
    """``problem.<name>`` as loop data: raw samples, or (depth > 0) its rows of the cached prefix features."""
    if depth <= 0:
        return _Data(getattr(problem, name), problem.kind, dev)
    whole, rows = problem.origins[name]
    store = features.store_for(tcfg.get("feature_cache", True))
    feats = store.prefix_features(model.backbone, depth, whole, dev, persist=persist)
    return _Data.prefix_view(feats[torch.as_tensor(rows, dtype=torch.long)], depth, dev)


def _holdout(y: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Stratified held-out positions in the labelled subset (≥1 per class with ≥2, never a whole class)."""
    if fraction <= 0:
        return np.array([], dtype=np.int64)
    rng = np.random.default_rng(stable_seed("holdout", seed))
    out = []
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        if len(members) < 2:
            continue
        k = min(max(int(round(fraction * len(members))), 1), len(members) - 1)
        out.append(rng.permutation(members)[:k])
    return np.sort(np.concatenate(out)) if out else np.array([], dtype=np.int64)


def _snapshot(model, method) -> tuple[dict, dict]:
    return ({k: v.detach().clone() for k, v in model.state_dict().items()},
            {k: v.detach().clone() for k, v in method.modules.state_dict().items()})


def _restore(model, method, state) -> None:
    model.load_state_dict(state[0])
    method.modules.load_state_dict(state[1])


# ---------------------------------------------------------------------------------------------- loop
def _autocast(dev: torch.device, enabled: bool):
    if dev.type == "cuda" and enabled:
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype), dtype
    return torch.autocast(dev.type, enabled=False), None


def _lr_factor_fn(tcfg: dict, method: Method) -> Callable[[float], float]:
    schedule = tcfg.get("lr_schedule")
    if schedule in (None, "method"):
        return method.lr_factor
    if schedule == "constant":
        return lambda p: 1.0
    if schedule == "anneal":
        return dann_lr_factor
    return lambda p: 0.5 * (1.0 + math.cos(math.pi * p))


def _optimizer(model: Classifier, method: Method, tcfg: dict) -> torch.optim.Optimizer:
    mult = method.param_groups_lr()
    groups = []
    for part, params in (("backbone", model.backbone.parameters()), ("head", model.head.parameters()),
                         ("method", method.modules.parameters())):
        params = [p for p in params if p.requires_grad]
        if params:
            lr = tcfg["lr"] * mult[part]
            groups.append({"params": params, "lr": lr, "base_lr": lr, "name": part})
    wd = float(tcfg.get("weight_decay", 0.0))
    name = tcfg.get("optimizer", "adam")
    if name == "sgd":
        return torch.optim.SGD(groups, lr=tcfg["lr"], momentum=float(tcfg.get("momentum", 0.9)), weight_decay=wd)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=tcfg["lr"], weight_decay=wd)
    return torch.optim.Adam(groups, lr=tcfg["lr"], weight_decay=wd)


@torch.no_grad()
def _predict(model: Classifier, data: _Data, dev: torch.device, amp: bool = False) -> torch.Tensor:
    was = model.training
    model.eval()
    ctx_dtype = _autocast(dev, amp)
    outs = []
    for start in range(0, data.n, EVAL_BATCH):
        idx = torch.arange(start, min(start + EVAL_BATCH, data.n))
        with ctx_dtype[0]:
            outs.append(model.features_and_logits(data.take(idx), data.start)[1].float())
    model.train(was)
    if not outs:
        return torch.zeros(0, model.n_classes, device=dev)
    return torch.cat(outs)


def _accuracy(model, data: _Data, y: np.ndarray, dev, amp: bool = False) -> float | None:
    if data.n == 0:
        return None
    pred = _predict(model, data, dev, amp).argmax(1).cpu().numpy()
    return float((pred == np.asarray(y)).mean())


def _diverged(values: dict[str, float]) -> str | None:
    for name, v in values.items():
        if v is None:
            continue
        if not math.isfinite(v) or (name in CLS_TERMS and v > DIVERGENCE_LIMIT):
            return f"{name}={v:.4g}" if math.isfinite(v) else f"{name}={v}"
    return None


def _fit(model: Classifier, method: Method, phases: list[Phase], problem: _Problem, tcfg: dict,
         dev: torch.device, seed: int, rule: str = "last", holdout=None) -> dict:
    """Run ``phases``; returns status/reason/steps/curves/selection (the model is left as selected)."""
    total = sum(p.steps for p in phases)
    text = problem.kind == "text"
    sample_dev = torch.device("cpu") if text else dev
    gen = torch.Generator(device=sample_dev)
    gen.manual_seed(stable_seed("batches", seed))
    aug_gen = torch.Generator(device=dev)
    aug_gen.manual_seed(stable_seed("augment", seed))
    torch.manual_seed(stable_seed("train", seed))  # dropout
    bs = int(tcfg["batch_size"])
    src = _Data(problem.Xs, problem.kind, dev)
    lab = _Data(problem.X_lab, problem.kind, dev)
    unl = _Data(problem.X_unl, problem.kind, dev)
    ys = torch.as_tensor(np.asarray(problem.ys), dtype=torch.long, device=sample_dev)
    yl = torch.as_tensor(np.asarray(problem.y_lab), dtype=torch.long, device=sample_dev)
    s_src = _Sampler(src.n, bs, gen, sample_dev)
    s_lab = _Sampler(lab.n, bs, gen, sample_dev) if lab.n else None
    s_unl = _Sampler(unl.n, bs, gen, sample_dev)
    augment = bool(tcfg.get("augment")) and problem.kind == "image"
    flip = bool(tcfg.get("flip", False))
    amp = bool(tcfg.get("amp")) and dev.type == "cuda"
    autocast, amp_dtype = _autocast(dev, amp)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    lr_factor = _lr_factor_fn(tcfg, method)
    eval_every = int(tcfg.get("eval_every", 50))
    grad_clip = tcfg.get("grad_clip")
    check_each_step = dev.type == "cpu"
    selector = Selector(rule) if rule != "last" else None
    hold_data = _Data(holdout[0], problem.kind, dev) if holdout is not None else None

    curves: dict[str, list] = {"step": []}
    holdout_acc: list[float] = []
    sums: dict[str, torch.Tensor] = {}
    window = 0
    best = (-math.inf, None, None)  # score, step, state
    first_bad = torch.full((), -1, dtype=torch.long, device=dev)  # first non-finite step, tracked on device
    step = 0
    model.train()
    method.modules.train()

    def fail(at: int, what: str) -> dict:
        return {"status": "failed", "reason": f"diverged at step {at} ({what})", "steps": at, "curves": curves,
                "selection": rule, "selected_step": None, "phases": phase_info}

    phase_info = [{"name": p.name, "steps": p.steps, "freeze": p.freeze} for p in phases]
    raw = (src, lab, unl)
    depth = 0
    untouched = len(model.blocks)  # leading blocks no phase has trained yet (still the initial weights)
    for phase in phases:
        frozen = model.freeze(phase.freeze)
        depth = _cached_depth(model, frozen, problem, tcfg)
        if depth:  # the frozen prefix runs once per domain (adapt.features); the loop runs the rest
            keep = depth <= untouched  # a prefix trained in this cell is of no use to others: memory only
            src, lab, unl = (_input(problem, n, depth, model, tcfg, dev, keep) for n in ("Xs", "X_lab", "X_unl"))
        else:
            src, lab, unl = raw
        untouched = min(untouched, frozen)
        opt = _optimizer(model, method, tcfg)
        use_lab = phase.target_labelled and s_lab is not None
        phase_end = step + phase.steps
        for _ in range(phase.steps):
            progress = step / max(total, 1)
            factor = lr_factor(progress)
            for g in opt.param_groups:
                g["lr"] = g["base_lr"] * factor
            parts, sizes = [], []
            if phase.source:
                i = s_src.next()
                parts.append(src.take(i)); sizes.append(len(i)); y_s = ys[i].to(dev)
            if use_lab:
                i = s_lab.next()
                parts.append(lab.take(i)); sizes.append(len(i)); y_l = yl[i].to(dev)
            if phase.target_unlabelled:
                i = s_unl.next()
                parts.append(unl.take(i)); sizes.append(len(i))
            if not parts:
                break
            if text:
                x = [s for p in parts for s in p]
            else:
                x = torch.cat(parts) if len(parts) > 1 else parts[0]
                if augment:
                    x = augment_images(x, aug_gen, flip)
            with autocast:
                f, logits = model.features_and_logits(x, depth)
            f_parts = list(torch.split(f, sizes))
            l_parts = list(torch.split(logits, sizes))
            terms: dict[str, torch.Tensor] = {}
            f_s = l_s = f_u = l_u = None
            if phase.source:
                f_s, l_s = f_parts.pop(0), l_parts.pop(0)
                terms["loss_cls"] = F.cross_entropy(l_s.float(), y_s)
            if use_lab:
                f_parts.pop(0)
                terms["loss_cls_target"] = F.cross_entropy(l_parts.pop(0).float(), y_l)
            if phase.target_unlabelled:
                f_u, l_u = f_parts.pop(0), l_parts.pop(0)
                terms.update(method.extra_loss(f_s, f_u, l_s, l_u, progress))
            loss = sum(terms.values())
            opt.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(opt)
            else:
                loss.backward()
            if grad_clip:
                torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], float(grad_clip))
            if scaler is not None:
                scaler.step(opt)
                scaler.update()
            else:
                opt.step()
            step += 1
            for name, value in terms.items():
                v = value.detach().float()
                sums[name] = sums[name] + v if name in sums else v
            window += 1
            if check_each_step:
                bad = _diverged({k: float(v.detach()) for k, v in terms.items()})
                if bad:
                    return fail(step, bad)
            else:
                nonfinite = ~torch.isfinite(loss.detach())
                first_bad = torch.where(nonfinite & (first_bad < 0), torch.full_like(first_bad, step), first_bad)
            if step % eval_every == 0 or step == phase_end:
                names = list(sums)
                means = (torch.stack([sums[n] for n in names]) / window).tolist() if names else []
                values = dict(zip(names, means))
                bad = _diverged(values)
                if bad:
                    at = int(first_bad) if not check_each_step else step
                    return fail(at if at > 0 else step, bad)
                _log_point(curves, step, values, method.scalars(progress), opt.param_groups[-1]["lr"])
                curves.setdefault("target_labelled_acc", [None] * (len(curves["step"]) - 1)).append(
                    _accuracy(model, lab, problem.y_lab, dev, amp) if lab.n else None)
                if hold_data is not None:
                    holdout_acc.append(_accuracy(model, hold_data, holdout[1], dev, amp))
                if selector is not None:
                    score = selector.score(_predict(model, unl, dev, amp))
                    curves.setdefault(f"score_{rule}", []).append(round(score, 6))
                    if score > best[0]:
                        best = (score, step, {k: v.detach().clone() for k, v in model.state_dict().items()})
                sums, window = {}, 0
    if selector is not None and best[2] is not None:
        model.load_state_dict(best[2])
    res = {"status": "ok", "reason": None, "steps": step, "curves": curves, "phases": phase_info,
           "selection": rule, "selected_step": best[1] if selector is not None else step, "prefix_depth": depth,
           "prefix_persist": depth <= untouched}
    if holdout is not None:
        res["holdout_acc"] = holdout_acc
    return res


def _log_point(curves: dict, step: int, values: dict, scalars: dict, lr: float) -> None:
    """Append one eval point; every loss/scalar list stays aligned with ``step`` (None where absent)."""
    n = len(curves["step"])
    curves["step"].append(step)
    row = {**{k: round(v, 6) for k, v in values.items()}, **{k: round(v, 6) for k, v in scalars.items()},
           "lr": float(f"{lr:.6g}")}
    tracked = {k for k in curves if k != "step" and k != "target_labelled_acc" and not k.startswith("score_")}
    for name in sorted(tracked | set(row)):
        curves.setdefault(name, [None] * n).append(row.get(name))

# ---------------------------------------------------------------------------------------------- CORAL
def _run_coral_closed(cell, problem, params, mcfg, tcfg, dev) -> dict:
    """Closed-form CORAL: re-colour the source representation, then fit the classifier on it."""
    method = METHODS["coral-closed"](params, 0, problem.n_classes)
    rep = method.representation(mcfg.get("backbone", "mlp"))
    info: dict = {"coral_on": rep}
    if rep == "input":
        if problem.kind == "text":
            raise ValueError("coral-closed on: input cannot read text; use on: features with an hf backbone")
        as_float = _as_float_array
        shape = problem.input_shape
        xs = as_float(problem.Xs).reshape(len(problem.Xs), -1)
        xt = as_float(problem.X_unl).reshape(len(problem.X_unl), -1)
        new = replace(problem, Xs=method.transform(xs, xt).reshape((-1, *shape)),
                      X_lab=as_float(problem.X_lab), X_unl=as_float(problem.X_unl), X_test=as_float(problem.X_test))
        model_cfg = mcfg
    else:
        base = init_model(mcfg, problem.kind, problem.input_shape, problem.n_classes, cell.seed).to(dev)
        info["model_info"] = base.info
        feats = {k: _features(base, getattr(problem, k), problem.kind, dev)
                 for k in ("Xs", "X_lab", "X_unl", "X_test")}
        new = replace(problem, kind="vector", input_shape=(base.feature_dim,),
                      Xs=method.transform(feats["Xs"], feats["X_unl"]), X_lab=feats["X_lab"],
                      X_unl=feats["X_unl"], X_test=feats["X_test"])
        model_cfg = {"backbone": "mlp", "hidden": []}
    if params["classifier"] != "head":
        return {**info, **_fit_sklearn(new, params), "selection": "none (closed-form fit)", "selected_step": None}
    res = _run_trained(cell, new, METHODS["coral-closed"], params, model_cfg, tcfg, dev)
    res.setdefault("model_info", {})
    return {**res, **info}


def _as_float_array(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X)
    return X.astype(np.float32) / 255.0 if X.dtype == np.uint8 else X.astype(np.float32)


@torch.no_grad()
def _features(model: Classifier, X, kind: str, dev: torch.device) -> np.ndarray:
    model.eval()
    data = _Data(X, kind, dev)
    outs = [model.backbone(data.take(torch.arange(s, min(s + EVAL_BATCH, data.n)))).float().cpu()
            for s in range(0, data.n, EVAL_BATCH)]
    return torch.cat(outs).numpy() if outs else np.zeros((0, model.feature_dim), np.float32)


def _fit_sklearn(problem: _Problem, params: dict) -> dict:
    """A linear SVM (libsvm, one-vs-one) or logistic regression on the (re-coloured) source + labelled target."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.svm import SVC

    from .methods.coral_closed import C_GRID

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
    return {"accuracy": acc, "source_accuracy": src, "steps": 0, "status": "ok", "reason": None, "curves": {},
            **_outcomes(problem, pred),
            "classifier": {"name": params["classifier"], "C": c, "cv_scores": cv_scores}}
