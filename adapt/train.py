"""The one training loop: ``run_cell(cell, source, target)`` → a JSON-serialisable record.

Protocol (every method, so results pair up by seed):

- target split ``target.split(seed, data.test_fraction, data.transductive)``; labelled target
  ``target.labelled_subset(split, budget, seed)``; unlabelled target pool = all of ``split.train``;
  source = every source sample, or only the target's train split when source and target are one domain.
  Accuracy is measured on the target *test* split only, once, after training and model selection.
- One seed ⇒ one initial model for every method: torch is seeded with ``stable_seed("init", seed)`` right
  before the model is built (method-specific modules such as a discriminator are built after, from their own
  seed). Batches come from a generator seeded by the seed only. Deterministic on CPU.
- Every method takes ``train.steps`` steps that read the labelled target subset when the budget is > 0 (joint
  methods in their one phase; ``scratch``/``target-only`` in a target phase; ``finetune`` in a target phase
  after its source phase, see :mod:`adapt.methods.finetune`). Each step reads a source batch and/or a
  labelled-target batch and/or an unlabelled-target batch of ``train.batch_size`` (the labelled batch is at
  most the labelled set).
- One optimisation protocol: every phase starts a fresh optimiser and runs ``train.lr_schedule``
  (:mod:`adapt.schedules`) over its own steps, for every method alike — no method has a schedule of its own.
- What a method adds lives in its own file (:mod:`adapt.methods`); a method whose fitting differs overrides the
  :meth:`~adapt.methods.base.Method.fit_cell` hook, which gets a :class:`CellRun`. This loop names no method.
- Loss terms (and a method's ``monitors``, e.g. DANN's ``disc_acc``) are accumulated on the device and read
  back only at eval points (every ``train.eval_every`` steps and at the end of each phase), where the curves
  get one point each: the window mean of every loss term and monitor, the adaptation weight ``lambda``, the
  ``lr``, and ``target_labelled_acc`` (accuracy on the labelled target subset, training data — never the test
  split). On CPU the divergence guard also checks every step.
- Convergence (:mod:`adapt.convergence`): per phase, whether the classification loss was still falling over
  the last 20% of steps and whether labelled-target accuracy was still rising; the record carries
  ``converged``, ``convergence_reason`` and ``convergence``.
- Divergence: a non-finite loss term, or a classification loss above ``DIVERGENCE_LIMIT`` (a sane
  cross-entropy is O(log K)), ends the run with ``status: "failed"`` and a reason such as
  ``"diverged at step 123 (loss_domain=nan)"``.
- Model selection (``train.selection``, see :mod:`adapt.validators`): ``last`` or a label-free validator on
  the unlabelled target pool at eval points — only at eval points of phases that read target labels, when the
  budget is > 0 (a "budget 3" result never comes from a model that had not seen the labels).
- Guards (as the config loader's): a transductive target only with budget 0; a budget above a class's
  labelled pool is an error, not a silent cap.
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
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch.nn import functional as F

from .cells import Cell
from .defaults import DATA_DEFAULTS, MODEL_DEFAULTS, TRAIN_DEFAULTS
from . import features
from .convergence import phase_convergence, probe_step, summarize
from .domains.base import Domain, stable_seed
from .methods.base import Method, Phase
from .models import Classifier, as_float, build_model
from .outcomes import encode_outcomes
from .plugins import method_class, verify_code
from .schedules import LR_SCHEDULES, lr_factor_fn  # noqa: F401 - LR_SCHEDULES re-exported
from .validators import Selector

DIVERGENCE_LIMIT = 1e4
MAX_DEVICE_BYTES = 2 * 1024**3
EVAL_BATCH = 1024
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
                t = as_float(t)
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
        return as_float(x) * self.scale if self.scale else x


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
    lab_index: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # into the target's X
    test_index: np.ndarray | None = None  # target indices of the test split, for the record's outcomes
    given_test: bool = False
    # where each array came from: name -> (the whole domain array, row indices), so frozen-prefix features are
    # computed once per domain (adapt.features) and sliced; None for derived problems (closed-form CORAL)
    origins: dict | None = None
    # source samples held out of training for label-free selection (adapt.selection); None without a protocol
    Xs_val: np.ndarray | None = None
    ys_val: np.ndarray | None = None


# ---------------------------------------------------------------------------------------------- entry
def run_cell(cell: Cell, source: Domain, target: Domain, device: str | None = None,
             return_model: bool = False) -> dict | tuple[dict, Classifier | None]:
    """Train and evaluate one cell; returns its record (see the module docstring and README).

    ``return_model=True`` returns ``(record, model)``: the trained network exactly as it was evaluated (after
    model selection), for diagnostics such as feature projections; ``None`` when the cell has no network
    (``coral-closed`` with a scikit-learn classifier) or failed. For ``coral-closed`` with ``classifier: head``
    it is the classifier on the method's own representation (re-coloured inputs or frozen features).

    ``device`` overrides ``cell.train['device']``. The protocol guards of the config loader hold here too
    (``ValueError``): a transductive target with budget > 0, a budget above the labelled pool of a class, a
    source-free method at budget 0. A diverging run returns ``status: "failed"``; other errors propagate.
    """
    t0 = time.perf_counter()
    run, record = prepare_cell(cell, source, target, device)
    record.update(run.method_cls.fit_cell(run))
    if cell.selection and record.get("status") == "ok":  # what label-free selection reads (adapt.selection)
        from .selection import cell_evidence

        record["selection_evidence"] = cell_evidence(run, run.kept.get("model"))
    record["wall_time"] = round(time.perf_counter() - t0, 3)
    return (record, run.kept.get("model")) if return_model else record


def prepare_cell(cell: Cell, source: Domain, target: Domain, device: str | None = None) -> tuple[CellRun, dict]:
    """The protocol guards, the cell's problem and its record's fields before training: ``(run, record)``.
    :func:`run_cell` fits ``run`` with its method's ``fit_cell``; :mod:`adapt.stacked` fits many at once."""
    verify_code(cell.code)  # a plugin edited since the cell was planned must not record under its key
    method_cls = method_class(cell.method_name, cell.code)
    params = method_cls.check_params(cell.method_params)
    tcfg = {**TRAIN_DEFAULTS, **(cell.train or {})}
    mcfg = {**copy.deepcopy(MODEL_DEFAULTS), **copy.deepcopy(cell.model or {})}
    dcfg = {**DATA_DEFAULTS, **(cell.data or {})}
    lr_factor_fn(tcfg.get("lr_schedule"))  # an unknown schedule fails before any training
    dev = resolve_device(device if device is not None else tcfg.get("device", "auto"))
    if cell.budget < 0:
        raise ValueError(f"budget must be >= 0, got {cell.budget}")
    if not method_cls.uses_source and cell.budget == 0:
        raise ValueError(f"{cell.method_name} trains on target labels only and needs a budget > 0")
    if dcfg.get("transductive") and cell.budget > 0:
        raise ValueError(f"data.transductive: the transductive protocol is unsupervised (its test samples are "
                         f"the training pool): it needs budget 0, got {cell.budget}")
    problem = _make_problem(cell, source, target, dcfg, hold_out_source=method_cls.uses_source)

    record: dict = {
        "source": cell.source, "target": cell.target, "method": cell.method, "method_name": cell.method_name,
        "seed": cell.seed, "budget": cell.budget, "accuracy": None, "source_accuracy": None,
        "status": "ok", "reason": None, "wall_time": None, "device": device_label(dev), "steps": 0,
        "n_source": int(len(problem.Xs)) if method_cls.uses_source else 0,
        "n_target_labelled": int(len(problem.X_lab)), "n_target_unlabelled": int(len(problem.X_unl)),
        "n_test": int(len(problem.X_test)), "n_classes": int(problem.n_classes),
        "selection": tcfg["selection"], "selected_step": None, "params": params, "curves": {},
        "lr_schedule": tcfg.get("lr_schedule") or "constant",
        "converged": None, "convergence_reason": None, "convergence": {},
    }
    run = CellRun(cell=cell, problem=problem, params=params, model_cfg=mcfg, train_cfg=tcfg, device=dev,
                  method_cls=method_cls)
    return run, record


def _make_problem(cell: Cell, source: Domain, target: Domain, dcfg: dict, hold_out_source: bool = True) -> _Problem:
    if source.kind != target.kind:
        raise ValueError(f"source {source.name!r} is {source.kind} but target {target.name!r} is {target.kind}")
    if source.input_shape != target.input_shape:
        raise ValueError(f"input shapes differ: {source.name} {source.input_shape} vs {target.name} "
                         f"{target.input_shape}")
    split = target.split(cell.seed, dcfg["test_fraction"], dcfg["transductive"])
    lab = target.labelled_subset(split, cell.budget, cell.seed)
    if cell.budget > 0:
        pool = np.bincount(np.asarray(target.y[split.train], dtype=np.int64), minlength=target.n_classes)
        short = [c for c in target.classes_present() if pool[c] < cell.budget]
        # a smaller subset is accepted only when the plan capped it on purpose (budget_policy: cap) and said so
        if short and cell.target_labels != len(lab):
            c = int(short[0])
            raise ValueError(f"budget {cell.budget} labels per class is more than target {target.name!r} has: "
                             f"class {target.class_names[c]!r} has {int(pool[c])} samples in its training split "
                             f"(seed {cell.seed}); lower the budget or set budget_policy: cap")
    _, _, X_test, y_test = target.train_test(split)
    if source.name == target.name:  # never the target's test samples
        Xs, ys = target.X[split.train], target.y[split.train]
        src_origin = (target.X, split.train)
    else:
        Xs, ys = source.X, source.y
        src_origin = (source.X, np.arange(len(source.X)))
    Xs_val = ys_val = None
    fraction = (cell.selection or {}).get("source_holdout")
    if fraction and hold_out_source:  # label-free selection validates on source samples it never trained on
        from .selection import holdout_indices

        keep, held = holdout_indices(ys, float(fraction), cell.seed)
        Xs_val, ys_val = Xs[held], ys[held]
        Xs, ys = Xs[keep], ys[keep]
        src_origin = (src_origin[0], np.asarray(src_origin[1])[keep])
    test_pool = target.X_test if split.given_test else target.X
    origins = {"Xs": src_origin, "X_lab": (target.X, lab), "X_unl": (target.X, split.train),
               "X_test": (test_pool, split.test)}
    return _Problem(kind=target.kind, input_shape=tuple(target.input_shape),
                    n_classes=max(source.n_classes, target.n_classes), Xs=Xs, ys=ys,
                    X_lab=target.X[lab], y_lab=target.y[lab], X_unl=target.X[split.train],
                    X_test=X_test, y_test=y_test, lab_index=np.asarray(lab, np.int64),
                    test_index=split.test, given_test=split.given_test, origins=origins,
                    Xs_val=Xs_val, ys_val=ys_val)


def init_model(mcfg: dict, kind: str, input_shape, n_classes: int, seed: int) -> Classifier:
    """The cell's initial model: torch seeded from the seed only, so every method starts alike."""
    torch.manual_seed(stable_seed("init", seed))
    return build_model(mcfg, kind, input_shape, n_classes)


@dataclass
class CellRun:
    """One cell's training context, handed to a method's :meth:`~adapt.methods.base.Method.fit_cell` hook.

    ``build`` gives the initial model (the same for every method of a seed; random weights for methods with
    ``random_init``) and the method object; ``fit`` runs phases through the one loop; ``finish`` evaluates
    once on the target test split and adds the convergence fields.
    """

    cell: Cell
    problem: _Problem
    params: dict
    model_cfg: dict
    train_cfg: dict
    device: torch.device
    method_cls: type[Method]
    # finish() puts the evaluated network here; a dict so that copies made by with_problem() share it
    kept: dict = field(default_factory=dict, compare=False)

    @property
    def steps(self) -> int:
        return int(self.train_cfg["steps"])

    @property
    def budget(self) -> int:
        return int(self.cell.budget)

    def with_problem(self, problem: _Problem, model_cfg: dict | None = None) -> CellRun:
        return replace(self, problem=problem, model_cfg=self.model_cfg if model_cfg is None else model_cfg)

    def initial_model(self, model_cfg: dict | None = None) -> Classifier:
        mcfg = dict(self.model_cfg if model_cfg is None else model_cfg)
        if self.method_cls.random_init:  # the same architecture, random weights
            mcfg.update(pretrained=False, weights=None)
        p = self.problem
        return init_model(mcfg, p.kind, p.input_shape, p.n_classes, self.cell.seed).to(self.device)

    def build(self) -> tuple[Classifier, Method]:
        model = self.initial_model()
        torch.manual_seed(stable_seed("method-init", self.cell.seed, self.method_cls.name))
        method = self.method_cls(self.params, model.feature_dim, self.problem.n_classes)
        method.modules.to(self.device)
        return model, method

    def fit(self, model: Classifier, method: Method, phases: list[Phase], problem: _Problem | None = None,
            rule: str | None = None, holdout=None) -> dict:
        rule = self.train_cfg["selection"] if rule is None else rule
        return _fit(model, method, phases, problem or self.problem, self.train_cfg, self.device, self.cell.seed,
                    rule=rule, holdout=holdout)

    def finish(self, model: Classifier, method: Method, res: dict) -> dict:
        out = {"model_info": model.info, **_result_fields(res)}
        if res["status"] != "ok":
            return {**out, "converged": False, "convergence_reason": f"no result: {res['reason']}"}
        converged, reason = summarize(res.get("convergence", {}))
        out.update(converged=converged, convergence_reason=reason)
        self.kept["model"] = model
        return {**out, **_final_eval(model, self.problem, self.device, type(method), res, self.train_cfg)}

    def features(self, model: Classifier, X) -> np.ndarray:
        return _features(model, X, self.problem.kind, self.device)


def _result_fields(res: dict) -> dict:
    keys = ("status", "reason", "steps", "curves", "selection", "selected_step", "phases", "convergence")
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


@torch.no_grad()
def _features(model: Classifier, X, kind: str, dev: torch.device) -> np.ndarray:
    """Backbone features of ``X`` (eval mode), as a float32 array."""
    model.eval()
    data = _Data(X, kind, dev)
    outs = [model.backbone(data.take(torch.arange(s, min(s + EVAL_BATCH, data.n)))).float().cpu()
            for s in range(0, data.n, EVAL_BATCH)]
    return torch.cat(outs).numpy() if outs else np.zeros((0, model.feature_dim), np.float32)


def backbone_features(model: Classifier, X, kind: str, device: str | torch.device = "cpu") -> np.ndarray:
    """A network's backbone features of samples ``X`` as the loop feeds them (uint8 images scaled to [0, 1],
    text as strings), in eval mode and batches — for diagnostics on a model from ``run_cell(return_model=True)``."""
    dev = resolve_device(device)
    return _features(model.to(dev), X, kind, dev)


# ---------------------------------------------------------------------------------------------- loop
def _autocast(dev: torch.device, enabled: bool):
    if dev.type == "cuda" and enabled:
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype), dtype
    return torch.autocast(dev.type, enabled=False), None


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
            outs.append(as_float(model.features_and_logits(data.take(idx), data.start)[1]))
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
    """Run ``phases``; returns status/reason/steps/curves/selection/convergence (the model is left as selected).

    Each phase gets a fresh optimiser and the run's lr schedule over its own steps. Label-free selection
    (``rule`` other than ``last``) only considers checkpoints of phases that read target labels, when any do.
    """
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
    lr_factor = lr_factor_fn(tcfg.get("lr_schedule"))
    eval_every = int(tcfg.get("eval_every", 50))
    grad_clip = tcfg.get("grad_clip")
    check_each_step = dev.type == "cpu"
    selector = Selector(rule) if rule != "last" else None
    labelled_phases = s_lab is not None and any(p.target_labelled for p in phases)
    hold_data = _Data(holdout[0], problem.kind, dev) if holdout is not None else None

    curves: dict[str, list] = {"step": []}
    holdout_acc: list[float] = []
    convergence: dict[str, dict] = {}
    sums: dict[str, torch.Tensor] = {}
    window = 0
    best = (-math.inf, None, None)  # score, step, state
    first_bad = torch.full((), -1, dtype=torch.long, device=dev)  # first non-finite step, tracked on device
    step = 0
    model.train()
    method.modules.train()
    phase_info = [{"name": p.name, "steps": p.steps, "freeze": p.freeze} for p in phases]

    def fail(at: int, what: str) -> dict:
        return {"status": "failed", "reason": f"diverged at step {at} ({what})", "steps": at, "curves": curves,
                "selection": rule, "selected_step": None, "phases": phase_info, "convergence": convergence}

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
        selectable = use_lab or not labelled_phases
        phase_end = step + phase.steps
        probe = probe_step(phase.steps)
        cls_trace = torch.zeros(phase.steps, device=dev)  # one classification loss per step, for convergence
        acc_probe = None
        for i_phase in range(phase.steps):
            progress = i_phase / phase.steps
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
                terms["loss_cls"] = F.cross_entropy(as_float(l_s), y_s)
            if use_lab:
                f_parts.pop(0)
                terms["loss_cls_target"] = F.cross_entropy(as_float(l_parts.pop(0)), y_l)
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
            cls_trace[i_phase] = sum(as_float(terms[k].detach()) for k in CLS_TERMS if k in terms)
            logged = {**terms, **(method.monitors() if phase.target_unlabelled else {})}
            for name, value in logged.items():
                v = as_float(value.detach())
                sums[name] = sums[name] + v if name in sums else v
            window += 1
            if check_each_step:
                bad = _diverged({k: float(v.detach()) for k, v in terms.items()})
                if bad:
                    return fail(step, bad)
            else:
                nonfinite = ~torch.isfinite(loss.detach())
                first_bad = torch.where(nonfinite & (first_bad < 0), torch.full_like(first_bad, step), first_bad)
            if use_lab and i_phase + 1 == probe and phase.steps > 1:
                acc_probe = _accuracy(model, lab, problem.y_lab, dev, amp)
            if step % eval_every == 0 or step == phase_end:
                names = list(sums)
                means = (torch.stack([sums[n] for n in names]) / window).tolist() if names else []
                values = dict(zip(names, means))
                bad = _diverged(values)
                if bad:
                    at = int(first_bad) if not check_each_step else step
                    return fail(at if at > 0 else step, bad)
                _log_point(curves, step, values, method.scalars(progress), float(tcfg["lr"]) * factor)  # the run's lr
                lab_acc = _accuracy(model, lab, problem.y_lab, dev, amp) if lab.n else None
                curves.setdefault("target_labelled_acc", [None] * (len(curves["step"]) - 1)).append(lab_acc)
                if hold_data is not None:
                    holdout_acc.append(_accuracy(model, hold_data, holdout[1], dev, amp))
                if selector is not None and selectable:
                    score = selector.score(_predict(model, unl, dev, amp))
                    curves.setdefault(f"score_{rule}", [None] * (len(curves["step"]) - 1)).append(round(score, 6))
                    if score > best[0]:
                        best = (score, step, {k: v.detach().clone() for k, v in model.state_dict().items()})
                elif selector is not None:
                    curves.setdefault(f"score_{rule}", [None] * (len(curves["step"]) - 1)).append(None)
                sums, window = {}, 0
        acc_end = _accuracy(model, lab, problem.y_lab, dev, amp) if use_lab else None
        convergence[phase.name] = phase_convergence(cls_trace.tolist(), acc_probe, acc_end,
                                                    lab.n if use_lab else 0)
    if selector is not None and best[2] is not None:
        model.load_state_dict(best[2])
    res = {"status": "ok", "reason": None, "steps": step, "curves": curves, "phases": phase_info,
           "selection": rule, "selected_step": best[1] if selector is not None else step, "prefix_depth": depth,
           "prefix_persist": depth <= untouched, "convergence": convergence}
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
