"""Stacked vs one-at-a-time training (issue 21), measured side by side in one process, one thread.

(1) kernels: one training step (forward, backward, Adam) of M=15 64→128→10 MLPs at batch 178 — batched matmuls
    (``torch.baddbmm`` over stacked weights, what adapt.stacked uses) vs ``torch.func`` (``stack_module_state`` +
    ``functional_call`` + ``vmap``) vs the M models one after another;
(2) a digits group: every cell of one method (``dann`` by default; 4 domains, 12 pairs, budget 5, 5 seeds = 60
    cells, demo model and steps) trained by ``adapt.stacked.run_group`` vs ``run_cell`` on 4 of them (per cell).

    PYTHONPATH=. OMP_NUM_THREADS=1 python bench/bench_stacked.py [METHOD]
"""

from __future__ import annotations

import copy
import sys
import time

import torch
import yaml
from torch import nn
from torch.func import functional_call, stack_module_state


def kernels(D=64, H=128, K=10, B=178, M=15, S=200) -> dict:
    def mk():
        return nn.Sequential(nn.Linear(D, H), nn.ReLU(), nn.Linear(H, K))

    models = [mk() for _ in range(M)]
    x, y = torch.randn(M, B, D), torch.randint(0, K, (M, B))
    w1 = torch.stack([m[0].weight.T for m in models]).detach().clone().requires_grad_()
    b1 = torch.stack([m[0].bias for m in models]).unsqueeze(1).detach().clone().requires_grad_()
    w2 = torch.stack([m[2].weight.T for m in models]).detach().clone().requires_grad_()
    b2 = torch.stack([m[2].bias for m in models]).unsqueeze(1).detach().clone().requires_grad_()
    opt = torch.optim.Adam([w1, b1, w2, b2], 1e-3)

    def loss_of(logits):
        return nn.functional.cross_entropy(logits.reshape(-1, K), y.reshape(-1), reduction="none").view(M, B).mean(1).sum()

    def step_bmm():
        loss = loss_of(torch.baddbmm(b2, torch.baddbmm(b1, x, w1).relu(), w2))
        opt.zero_grad(); loss.backward(); opt.step()

    params, bufs = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")
    vf = torch.vmap(lambda p, b, xx: functional_call(base, (p, b), (xx,)))
    opt2 = torch.optim.Adam(list(params.values()), 1e-3)

    def step_func():
        loss = loss_of(vf(params, bufs, x))
        opt2.zero_grad(); loss.backward(); opt2.step()

    seq = [mk() for _ in range(M)]
    opts = [torch.optim.Adam(m.parameters(), 1e-3) for m in seq]

    def step_seq():
        for i in range(M):
            loss = nn.functional.cross_entropy(seq[i](x[i]), y[i])
            opts[i].zero_grad(); loss.backward(); opts[i].step()

    times: dict[str, list[float]] = {"bmm": [], "func": [], "seq": []}
    for _ in range(3):  # rounds, every variant once per round
        for name, fn in (("bmm", step_bmm), ("func", step_func), ("seq", step_seq)):
            for _ in range(10):
                fn()
            t = time.perf_counter()
            for _ in range(S):
                fn()
            times[name].append((time.perf_counter() - t) / S * 1e3)
    return {k: sorted(v)[1] for k, v in times.items()}


def group(method: str) -> tuple[float, float]:
    from adapt import stacked
    from transferlab.config import parse_config
    from transferlab.plan import plan_matrix
    from adapt.train import run_cell

    raw = yaml.safe_load(open("configs/demo.yaml"))
    raw.update(methods=[method], budgets=[5], seeds=5)
    plan = plan_matrix(parse_config(raw))
    cells = plan.cells
    t = time.perf_counter()
    for c in cells[:4]:
        run_cell(c, plan.domains[c.source], plan.domains[c.target])
    seq = (time.perf_counter() - t) / 4
    t = time.perf_counter()
    stacked.run_group(cells, plan.domains)
    return seq, (time.perf_counter() - t) / len(cells)


if __name__ == "__main__":
    torch.set_num_threads(1)
    k = kernels()
    print(f"kernels (ms/step, 15 members): baddbmm {k['bmm']:.1f}, torch.func {k['func']:.1f}, one by one "
          f"{k['seq']:.1f}; torch.func / baddbmm = {k['func'] / k['bmm']:.2f}, one by one / baddbmm = "
          f"{k['seq'] / k['bmm']:.2f}")
    method = sys.argv[1] if len(sys.argv) > 1 else "dann"
    seq, stk = group(method)
    print(f"digits {method} group (60 cells): {seq:.3f} s/cell one at a time, {stk:.3f} s/cell stacked: "
          f"{seq / stk:.2f}x")
