"""Stacked training: cells of one shape trained as ONE model, each member exactly its one-at-a-time cell.

A transfer matrix is hundreds of small trainings of one architecture. Run one after another, a 64→128→10 MLP
at batch 64 leaves the CPU mostly in Python and kernel-launch overhead. Here the M cells of a group (the seeds
of a row, the sources of a target, the rows of a method) become M *members* of one stacked model: every
``nn.Linear`` becomes a :class:`StackedLinear` holding the members' weights as ``(M, in, out)``, a step is one
``torch.baddbmm`` per layer for all members, and one optimiser step updates every member.
(``torch.func.stack_module_state`` + ``functional_call`` + ``vmap``, PyTorch's "model ensembling", does the
same; batched matmuls measured faster for these heads — bench/bench_stacked.py, bench/RESULTS.md §6.)

What each member keeps, exactly as :func:`adapt.train.run_cell` would give it:

- its initial model and method modules: each member is built by the sequential path
  (:meth:`adapt.train.CellRun.build`, seeded from its own seed), then the members' weights are stacked;
- its problem (split, labelled subset, source) and batch order: its own ``_Sampler`` objects on its own
  generator seeded ``stable_seed("batches", seed)``, drawn in the sequential order (source, labelled target,
  unlabelled target per step); the batches are precomputed per phase and gathered for all members at once
  from one bank of the domains' rows;
- its optimiser state: the loss is the SUM of the members' losses, so member m's gradient is the gradient of
  its own loss alone, and Adam/AdamW/SGD update element by element — the stacked optimiser is M optimisers.
  Nothing may couple members: gradient clipping is per member (:func:`clip_per_member`), never over the
  stacked tensors; nothing averages over members;
- its lr schedule (every member of a group has the same steps, so the same factor each step), curves, eval
  points, convergence measurements (one classification-loss trace per member) and divergence guard: a member
  whose loss diverges is recorded ``failed`` at that step with the sequential reason and leaves the sum
  (``torch.where``, so not even a NaN reaches it); the others go on;
- its final evaluation (test split, source accuracy, per-example outcomes) and its record, field for field;
  records also carry ``stacked: {members, group_wall_time}`` (``wall_time`` is the group's time / M).

In float64 the two paths give the same accuracy and per-example outcomes (tests/test_stacked.py); in float32
the batched matmuls round differently from one ``mm`` per cell, as changing the thread count does, so
``train.stack`` is — like the thread count — not part of a cell's key (:data:`adapt.cells.SPEED_ONLY_TRAIN_KEYS`).

What stacks (:func:`stack_blocker` says why not, and such cells run one at a time): methods that declare
``stackable`` (finetune, dann, coral, scratch, target-only; not coral-closed, not scratch with
``early_stopping``), MLP backbones (``hidden: []`` included: a linear classifier) without dropout,
``selection: last``, no augmentation, no fp16 grad scaling (bf16 autocast on CUDA stacks).

Status: :func:`run_group` and :func:`plan_groups` are tested (tests/test_stacked.py) but the executors do not
call them yet, and the config loader does not yet accept ``train.stack`` / ``train.stack_members`` (read here from
a cell's ``train``, default stacked / automatic size): ``transferlab run`` still trains one cell at a time.

Group size (:func:`plan_groups`): cells sharing method, params, model, train, data settings and budget are
chunked by memory — ``STACK_MEMORY_BYTES`` per group over an estimate of one member's parameters, optimiser
state, activations and batch indices — or ``train.stack_members: N``; a group is split further while there are
fewer groups than ``2 × workers`` (each worker busy). Inside a group, members are stacked only when their batch
sizes, class count and input shape agree (sub-groups otherwise).
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .cells import Cell
from .defaults import MODEL_DEFAULTS, TRAIN_DEFAULTS
from .convergence import phase_convergence, probe_step, summarize
from .domains.base import stable_seed
from .methods import METHODS
from .methods.base import Method, Phase
from .models import Classifier, as_float, build_model
from .train import (CLS_TERMS, EVAL_BATCH, CellRun, _autocast, _Data, _diverged, _log_point, _optimizer,
                    _outcomes, _result_fields, _Sampler, lr_factor_fn, prepare_cell)

STACK_MEMORY_BYTES = 1024**3  # per group: the stated budget that sizes groups automatically
MAX_MEMBERS = 512
MIN_SPLIT = 8  # a group is split for parallelism only while both halves keep at least this many members
STACK_TRAIN_KEYS = ("stack", "stack_members")


class NotStackable(Exception):
    """A module has no stacked form (a layer other than Linear/ReLU with parameters, dropout, ...)."""


# ---------------------------------------------------------------------------------------------- modules
class StackedLinear(nn.Module):
    """M ``nn.Linear(in, out)`` as one: ``weight`` ``(M, in, out)``, ``bias`` ``(M, 1, out)``;
    input ``(M, N, in)`` → ``(M, N, out)`` by one ``baddbmm`` (``y_m = x_m W_mᵀ + b_m``)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None):
        super().__init__()
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(bias) if bias is not None else None

    @classmethod
    def from_linears(cls, linears: Sequence[nn.Linear]) -> StackedLinear:
        weight = torch.stack([lin.weight.detach().T for lin in linears]).contiguous().clone()
        bias = (torch.stack([lin.bias.detach() for lin in linears]).unsqueeze(1).clone()
                if linears[0].bias is not None else None)
        return cls(weight, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bias is None:
            return torch.bmm(x, self.weight)
        return torch.baddbmm(self.bias, x, self.weight)


def stack_modules(modules: Sequence[nn.Module]) -> nn.Module:
    """One module whose ``nn.Linear`` layers hold every member's weights (:class:`StackedLinear`); the members
    must share one structure. Raises :class:`NotStackable` for a layer that has parameters or buffers of its
    own (convolutions, norms, embeddings) or randomness (dropout with p > 0)."""
    out = copy.deepcopy(modules[0])
    for name, sub in list(out.named_modules()):
        if isinstance(sub, nn.Linear):
            stacked = StackedLinear.from_linears([m.get_submodule(name) for m in modules])
            parent_name, _, child = name.rpartition(".")
            setattr(out.get_submodule(parent_name) if parent_name else out, child, stacked)
        elif isinstance(sub, nn.Dropout) and sub.p > 0:
            raise NotStackable("dropout draws its masks from one generator for the whole model")
        elif any(True for _ in sub.parameters(recurse=False)) or any(True for _ in sub.buffers(recurse=False)):
            raise NotStackable(f"{type(sub).__name__} has no stacked form")
    if isinstance(out, nn.Linear):  # the module itself
        return StackedLinear.from_linears(modules)
    return out


def _features_and_logits(model: Classifier, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The stacked MLP classifier's forward on ``(M, N, D)`` flattened inputs (``MLP.forward`` per member)."""
    f = as_float(x)
    for layer in model.backbone.layers:
        f = layer(f)
    return f, model.head(f)


def clip_per_member(params: Sequence[torch.Tensor], max_norm: float) -> None:
    """``torch.nn.utils.clip_grad_norm_`` per member: member m's gradients scaled by
    ``min(1, max_norm / (‖g_m‖₂ + 1e-6))`` with ‖g_m‖₂ over all of ITS parameters (dim 0 is the member)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    sq = sum(g.reshape(g.shape[0], -1).pow(2).sum(1) for g in grads)
    coef = (max_norm / (sq.sqrt() + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(coef.view(-1, *([1] * (g.dim() - 1))).to(g.dtype))


# ---------------------------------------------------------------------------------------------- eligibility
def stack_blocker(cell: Cell) -> str | None:
    """Why ``cell`` trains one at a time (``None``: it can be a stacked member). Config-level: no data read."""
    tcfg = {**TRAIN_DEFAULTS, **(cell.train or {})}
    mcfg = {**MODEL_DEFAULTS, **(cell.model or {})}
    if not tcfg.get("stack", True):
        return "train.stack is false"
    method_cls = METHODS.get(cell.method_name)
    if method_cls is None:
        return f"unknown method {cell.method_name!r}"
    try:
        params = method_cls.check_params(cell.method_params)
    except ValueError as exc:
        return str(exc)
    reason = method_cls.stack_blocker(params)
    if reason:
        return reason
    if mcfg.get("backbone") != "mlp":
        return f"backbone {mcfg.get('backbone')} has no stacked form (MLP backbones stack)"
    if float(mcfg.get("dropout") or 0.0) > 0:
        return "dropout draws its masks from one generator for the whole model"
    if tcfg.get("selection", "last") != "last":
        return f"train.selection {tcfg['selection']} picks a checkpoint per cell"
    if tcfg.get("save_models"):
        return "train.save_models keeps each cell's own network"
    if cell.selection:  # hook: call adapt.selection.cell_evidence per member after run_group to lift this
        return "selection evidence (adapt.selection) is computed per cell after its training"
    if tcfg.get("augment"):
        return "train.augment draws per-cell augmentations"
    if tcfg.get("amp") and str(tcfg.get("device", "auto")) != "cpu" and torch.cuda.is_available() \
            and not torch.cuda.is_bf16_supported():
        return "fp16 grad scaling skips a step for all members when one overflows"
    return None


def _group_key(cell: Cell) -> str:
    """Cells with one key may be members of one group (same method, settings and budget)."""
    train = {k: v for k, v in (cell.train or {}).items() if k not in STACK_TRAIN_KEYS}
    return json.dumps([cell.method_name, cell.method_params, cell.model, train, cell.data, cell.budget],
                      sort_keys=True, default=str)


def member_bytes(cell: Cell, source, target) -> int:
    """Memory one member takes in a stacked group (an estimate, float32): parameters ×4 (value, gradient, two
    Adam moments), activations of one step's batch ×4 (forward and backward), one eval chunk, batch indices."""
    tcfg = {**TRAIN_DEFAULTS, **(cell.train or {})}
    mcfg = {**MODEL_DEFAULTS, **(cell.model or {})}
    method_cls = METHODS[cell.method_name]
    n_classes = max(source.n_classes, target.n_classes)
    with torch.device("meta"):
        model = build_model(dict(mcfg, pretrained=False, weights=None), target.kind, target.input_shape, n_classes)
        method = method_cls(method_cls.check_params(cell.method_params), model.feature_dim, n_classes)
    n_params = sum(p.numel() for p in model.parameters()) + sum(p.numel() for p in method.modules.parameters())
    widths = int(np.prod(target.input_shape)) + sum(int(h) for h in mcfg.get("hidden") or []) + n_classes
    batch = 3 * int(tcfg["batch_size"])  # source + labelled + unlabelled
    steps = int(tcfg["steps"])
    return 4 * (4 * n_params + 4 * batch * widths + EVAL_BATCH * widths) + 8 * 2 * steps * batch


def plan_groups(cells: Sequence[Cell], domains: Mapping, workers: int = 1,
                memory_bytes: int = STACK_MEMORY_BYTES) -> list[list[Cell]]:
    """The cells as groups to train (stacked where they can; a group of one otherwise), in a stable order.

    Cells with equal settings (:func:`_group_key`) are chunked to ``train.stack_members`` (an integer) or,
    for ``auto``, to what ``memory_bytes`` holds (:func:`member_bytes`); then the largest group is halved while
    there are fewer than ``2 × workers`` groups and halves keep ``MIN_SPLIT`` members.
    """
    by_key: dict[str, list[Cell]] = {}
    groups: list[list[Cell]] = []
    for cell in cells:
        if stack_blocker(cell) is None:
            by_key.setdefault(_group_key(cell), []).append(cell)
        else:
            groups.append([cell])
    for members in by_key.values():
        first = members[0]
        wanted = (first.train or {}).get("stack_members", TRAIN_DEFAULTS.get("stack_members", "auto"))
        if isinstance(wanted, int) and not isinstance(wanted, bool):
            size = max(1, wanted)
        else:
            size = max(1, min(MAX_MEMBERS, memory_bytes // max(1, member_bytes(
                first, domains[first.source], domains[first.target]))))
        groups.extend(list(members[i:i + size]) for i in range(0, len(members), size))
    while len(groups) < 2 * workers:
        largest = max(range(len(groups)), key=lambda i: len(groups[i]), default=None)
        if largest is None or len(groups[largest]) < 2 * MIN_SPLIT:
            break
        g = groups.pop(largest)
        half = (len(g) + 1) // 2
        groups[largest:largest] = [g[:half], g[half:]]
    return groups


# ---------------------------------------------------------------------------------------------- entry
def run_group(cells: Sequence[Cell], domains: Mapping, device: str | None = None) -> list[dict | Exception]:
    """Train and evaluate ``cells`` (a group from :func:`plan_groups`); one record per cell, in order, each as
    :func:`adapt.train.run_cell` would return it — or the exception the cell raised (the caller records it).

    Stackable cells whose shapes agree train as one stacked model; the others one at a time.
    """
    out: list[dict | Exception | None] = [None] * len(cells)
    prepared: list[tuple[int, CellRun, dict]] = []
    for i, cell in enumerate(cells):
        try:
            run, record = prepare_cell(cell, domains[cell.source], domains[cell.target], device)
        except Exception as exc:  # noqa: BLE001 - the cell's own error, as run_cell would raise it
            out[i] = exc
            continue
        reason = stack_blocker(cell) if len(cells) > 1 else "a group of one"
        if reason is None:
            prepared.append((i, run, record))
        else:
            out[i] = _sequential(run, record, reason if len(cells) > 1 else None)
    subgroups: dict[tuple, list[tuple[int, CellRun, dict]]] = {}
    for item in prepared:
        subgroups.setdefault(_shape_key(item[1]), []).append(item)
    for members in subgroups.values():
        if len(members) == 1:
            i, run, record = members[0]
            out[i] = _sequential(run, record, "no other member of its shape")
            continue
        g0 = time.perf_counter()
        fields = _train_stacked([run for _, run, _ in members])
        wall = time.perf_counter() - g0
        for (i, _, record), f in zip(members, fields):
            record.update(f)
            record["wall_time"] = round(wall / len(members), 3)
            record["stacked"] = {"members": len(members), "group_wall_time": round(wall, 3)}
            out[i] = record
    return out  # type: ignore[return-value]


def _sequential(run: CellRun, record: dict, reason: str | None) -> dict | Exception:
    t0 = time.perf_counter()
    try:
        record.update(run.method_cls.fit_cell(run))
    except Exception as exc:  # noqa: BLE001
        return exc
    record["wall_time"] = round(time.perf_counter() - t0, 3)
    if reason:
        record["stacked"] = {"members": 1, "fallback": reason}
    return record


def _shape_key(run: CellRun) -> tuple:
    p, bs = run.problem, int(run.train_cfg["batch_size"])
    return (_group_key(run.cell), p.kind, tuple(p.input_shape), int(p.n_classes), min(bs, len(p.Xs)),
            min(bs, len(p.X_lab)), len(p.X_lab) > 0, min(bs, len(p.X_unl)), str(run.device))


# ---------------------------------------------------------------------------------------------- data
class _Bank:
    """Every domain array the members read, converted as the loop converts it, flattened, in one tensor; a
    member's sample set is a vector of row numbers into it."""

    def __init__(self, problems, kind: str, dev: torch.device):
        self.dev = dev
        self.offsets: dict[int, int] = {}
        parts, n = [], 0
        for p in problems:
            for whole, _ in p.origins.values():
                if id(whole) not in self.offsets:
                    self.offsets[id(whole)] = n
                    x = _Data(whole, kind, dev).take()
                    parts.append(x.reshape(len(x), -1))
                    n += len(x)
        self.X = torch.cat(parts) if len(parts) > 1 else parts[0]

    def rows(self, problem, name: str) -> torch.Tensor:
        whole, rows = problem.origins[name]
        return torch.as_tensor(np.asarray(rows, dtype=np.int64), device=self.dev) + self.offsets[id(whole)]


def _padded(row_sets: list[torch.Tensor]) -> tuple[torch.Tensor, list[int]]:
    lengths = [len(r) for r in row_sets]
    width = max(lengths) if lengths else 0
    out = torch.zeros(len(row_sets), width, dtype=torch.long, device=row_sets[0].device)
    for m, r in enumerate(row_sets):
        out[m, :len(r)] = r
    return out, lengths


@torch.no_grad()
def _predict(model: Classifier, bank: _Bank, rows: torch.Tensor, dev: torch.device, amp: bool) -> torch.Tensor:
    """Every member's predicted class for its padded rows ``(M, N)`` → ``(M, N)`` (eval mode; in chunks)."""
    was = model.training
    model.eval()
    ctx = _autocast(dev, amp)[0]
    outs = []
    for s in range(0, rows.shape[1], EVAL_BATCH):
        with ctx:
            outs.append(as_float(_features_and_logits(model, bank.X[rows[:, s:s + EVAL_BATCH]])[1]).argmax(-1))
    model.train(was)
    return torch.cat(outs, 1) if outs else torch.zeros(rows.shape[0], 0, dtype=torch.long, device=dev)


def _accuracies(model, bank, rows, lengths, labels, dev, amp) -> list[float | None]:
    pred = _predict(model, bank, rows, dev, amp).cpu().numpy()
    return [float((pred[m, :n] == labels[m]).mean()) if n else None for m, n in enumerate(lengths)]


# ---------------------------------------------------------------------------------------------- loop
def _train_stacked(runs: list[CellRun]) -> list[dict]:
    """The loop of :func:`adapt.train._fit` plus ``finish``, for M members at once (see the module docstring)."""
    M = len(runs)
    first = runs[0]
    tcfg, dev, kind = first.train_cfg, first.device, first.problem.kind
    built = [run.build() for run in runs]  # each member seeded as its sequential cell
    models = [b[0] for b in built]
    methods = [b[1] for b in built]
    model = stack_modules(models)
    method: Method = copy.copy(methods[0])  # params are the group's; modules become every member's
    method.modules = stack_modules([m.modules for m in methods]) if len(list(methods[0].modules.parameters())) \
        else methods[0].modules
    phases: list[Phase] = methods[0].phases(first.steps, first.budget, tcfg)
    problems = [run.problem for run in runs]

    bank = _Bank(problems, kind, dev)
    src_rows = [bank.rows(p, "Xs") for p in problems]
    lab_rows = [bank.rows(p, "X_lab") for p in problems]
    unl_rows = [bank.rows(p, "X_unl") for p in problems]
    ys = [torch.as_tensor(np.asarray(p.ys), dtype=torch.long, device=dev) for p in problems]
    yl = [torch.as_tensor(np.asarray(p.y_lab), dtype=torch.long, device=dev) for p in problems]
    bs = int(tcfg["batch_size"])
    samplers = []
    for run, p in zip(runs, problems):  # each member's generator and samplers, created as _fit creates them
        gen = torch.Generator(device=dev)
        gen.manual_seed(stable_seed("batches", run.cell.seed))
        samplers.append((_Sampler(len(p.Xs), bs, gen, dev),
                         _Sampler(len(p.X_lab), bs, gen, dev) if len(p.X_lab) else None,
                         _Sampler(len(p.X_unl), bs, gen, dev)))
    lab_eval, lab_len = _padded(lab_rows)
    y_lab_np = [np.asarray(p.y_lab) for p in problems]
    has_lab = samplers[0][1] is not None

    amp = bool(tcfg.get("amp")) and dev.type == "cuda"
    autocast, _ = _autocast(dev, amp)
    lr_factor = lr_factor_fn(tcfg.get("lr_schedule"))
    eval_every = int(tcfg.get("eval_every", 50))
    grad_clip = tcfg.get("grad_clip")
    check_each_step = dev.type == "cpu"
    rule = tcfg["selection"]
    phase_info = [{"name": p.name, "steps": p.steps, "freeze": p.freeze} for p in phases]

    curves: list[dict] = [{"step": []} for _ in range(M)]
    convergence: list[dict] = [{} for _ in range(M)]
    failed: list[dict | None] = [None] * M
    alive = torch.ones(M, dtype=torch.bool, device=dev)
    first_bad = torch.full((M,), -1, dtype=torch.long, device=dev)
    sums: dict[str, torch.Tensor] = {}
    window = 0
    step = 0
    model.train()
    method.modules.train()

    def fail(m: int, at: int, what: str) -> None:
        failed[m] = {"status": "failed", "reason": f"diverged at step {at} ({what})", "steps": at,
                     "curves": curves[m], "selection": rule, "selected_step": None, "phases": phase_info,
                     "convergence": copy.deepcopy(convergence[m])}
        alive[m] = False

    for phase in phases:
        model.freeze(phase.freeze)
        opt = _optimizer(model, method, tcfg)
        params = [p for g in opt.param_groups for p in g["params"]]
        use_lab = phase.target_labelled and has_lab
        phase_end = step + phase.steps
        probe = probe_step(phase.steps)
        rows, y_s, y_l, sizes = _phase_batches(phase, use_lab, samplers, src_rows, lab_rows, unl_rows, ys, yl)
        cls_trace = torch.zeros(phase.steps, M, device=dev)
        acc_probe: list | None = None
        for i_phase in range(phase.steps if rows is not None else 0):  # no batches: _fit's loop breaks at once
            if not bool(alive.any()):
                break
            progress = i_phase / phase.steps
            factor = lr_factor(progress)
            for g in opt.param_groups:
                g["lr"] = g["base_lr"] * factor
            x = bank.X[rows[i_phase]]  # (M, B, D): every member's batch, source | labelled | unlabelled
            with autocast:
                f, logits = _features_and_logits(model, x)
            f_parts = list(torch.split(f, sizes, dim=1))
            l_parts = list(torch.split(logits, sizes, dim=1))
            terms: dict[str, torch.Tensor] = {}
            f_s = l_s = f_u = l_u = None
            if phase.source:
                f_s, l_s = f_parts.pop(0), l_parts.pop(0)
                terms["loss_cls"] = _cross_entropy(l_s, y_s[i_phase])
            if use_lab:
                f_parts.pop(0)
                terms["loss_cls_target"] = _cross_entropy(l_parts.pop(0), y_l[i_phase])
            if phase.target_unlabelled:
                f_u, l_u = f_parts.pop(0), l_parts.pop(0)
                terms.update(method.extra_loss(f_s, f_u, l_s, l_u, progress))
            per_member = sum(terms.values())
            # the SUM over members: each member's gradient is its own loss's; a failed member leaves it
            loss = torch.where(alive, per_member, torch.zeros_like(per_member)).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip:
                clip_per_member(params, float(grad_clip))
            opt.step()
            step += 1
            cls_trace[i_phase] = sum(as_float(terms[k].detach()) for k in CLS_TERMS if k in terms)
            logged = {**terms, **(method.monitors() if phase.target_unlabelled else {})}
            for name, value in logged.items():
                v = as_float(value.detach())
                sums[name] = sums[name] + v if name in sums else v
            window += 1
            if check_each_step:
                names = list(terms)
                table = torch.stack([terms[n].detach() for n in names]).tolist()
                for m in range(M):
                    if failed[m] is None:
                        bad = _diverged({n: table[j][m] for j, n in enumerate(names)})
                        if bad:
                            fail(m, step, bad)
            else:
                nonfinite = ~torch.isfinite(per_member.detach())
                first_bad = torch.where(nonfinite & (first_bad < 0), torch.full_like(first_bad, step), first_bad)
            if use_lab and i_phase + 1 == probe and phase.steps > 1:
                acc_probe = _accuracies(model, bank, lab_eval, lab_len, y_lab_np, dev, amp)
            if step % eval_every == 0 or step == phase_end:
                names = list(sums)
                means = (torch.stack([sums[n] for n in names]) / window).tolist() if names else []
                scalars = method.scalars(progress)
                lab_acc = (_accuracies(model, bank, lab_eval, lab_len, y_lab_np, dev, amp)
                           if lab_eval.shape[1] else [None] * M)
                bad_at = first_bad.tolist() if not check_each_step else None
                for m in range(M):
                    if failed[m] is not None:
                        continue
                    values = {n: means[j][m] for j, n in enumerate(names)}
                    bad = _diverged(values)
                    if bad:
                        at = bad_at[m] if bad_at is not None else step
                        fail(m, at if at > 0 else step, bad)
                        continue
                    _log_point(curves[m], step, values, scalars, float(tcfg["lr"]) * factor)
                    c = curves[m]
                    c.setdefault("target_labelled_acc", [None] * (len(c["step"]) - 1)).append(lab_acc[m])
                sums, window = {}, 0
        acc_end = _accuracies(model, bank, lab_eval, lab_len, y_lab_np, dev, amp) if use_lab else [None] * M
        trace = cls_trace.T.tolist()
        for m in range(M):
            if failed[m] is None:
                convergence[m][phase.name] = phase_convergence(
                    trace[m], acc_probe[m] if acc_probe is not None else None, acc_end[m],
                    lab_len[m] if use_lab else 0)

    # final evaluation, as CellRun.finish: once on the test split (no autocast), source accuracy, outcomes
    test_rows, test_len = _padded([bank.rows(p, "X_test") for p in problems])
    test_pred = _predict(model, bank, test_rows, dev, False).cpu().numpy()
    uses_source = first.method_cls.uses_source
    if uses_source:
        src_eval, src_len = _padded(src_rows)
        src_acc = _accuracies(model, bank, src_eval, src_len, [np.asarray(p.ys) for p in problems], dev, False)
    out = []
    for m, (run, p) in enumerate(zip(runs, problems)):
        fields = {"model_info": models[m].info}
        if failed[m] is not None:
            fields.update(_result_fields(failed[m]))
            out.append({**fields, "converged": False, "convergence_reason": f"no result: {failed[m]['reason']}"})
            continue
        res = {"status": "ok", "reason": None, "steps": step, "curves": curves[m], "phases": phase_info,
               "selection": rule, "selected_step": step, "convergence": convergence[m]}
        fields.update(_result_fields(res))
        converged, reason = summarize(convergence[m])
        pred = test_pred[m, :test_len[m]]
        acc = float((pred == np.asarray(p.y_test)).mean()) if test_len[m] else None
        fields.update(converged=converged, convergence_reason=reason, accuracy=acc,
                      source_accuracy=src_acc[m] if uses_source else None, **_outcomes(p, pred))
        out.append(fields)
    return out


def _cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy per member: ``(M, B, K)``, ``(M, B)`` → ``(M,)``."""
    M, B, K = logits.shape
    return F.cross_entropy(as_float(logits).reshape(M * B, K), y.reshape(-1), reduction="none").view(M, B).mean(1)


def _phase_batches(phase: Phase, use_lab: bool, samplers, src_rows, lab_rows, unl_rows, ys, yl):
    """Every step's bank rows ``(steps, M, B)`` and labels for one phase, each member's samplers drawn in the
    order ``_fit`` draws them (source, labelled target, unlabelled target, per step)."""
    per_member_rows, per_member_ys, per_member_yl, sizes = [], [], [], []
    for m, (s_src, s_lab, s_unl) in enumerate(samplers):
        src_i, lab_i, unl_i = [], [], []
        for _ in range(phase.steps):
            if phase.source:
                src_i.append(s_src.next())
            if use_lab:
                lab_i.append(s_lab.next())
            if phase.target_unlabelled:
                unl_i.append(s_unl.next())
        parts, sizes = [], []
        if src_i:
            idx = torch.stack(src_i)
            parts.append(src_rows[m][idx]); sizes.append(idx.shape[1]); per_member_ys.append(ys[m][idx])
        if lab_i:
            idx = torch.stack(lab_i)
            parts.append(lab_rows[m][idx]); sizes.append(idx.shape[1]); per_member_yl.append(yl[m][idx])
        if unl_i:
            idx = torch.stack(unl_i)
            parts.append(unl_rows[m][idx]); sizes.append(idx.shape[1])
        if not parts:
            return None, None, None, None
        per_member_rows.append(torch.cat(parts, dim=1))
    rows = torch.stack(per_member_rows, dim=1)  # (steps, M, B)
    y_s = torch.stack(per_member_ys, dim=1) if per_member_ys else None
    y_l = torch.stack(per_member_yl, dim=1) if per_member_yl else None
    return rows, y_s, y_l, sizes


__all__ = ["STACK_MEMORY_BYTES", "NotStackable", "StackedLinear", "clip_per_member", "member_bytes",
           "plan_groups", "run_group", "stack_blocker", "stack_modules"]
