"""Training throughput on the CPU: our training step against a plain reference step, in one process.

The reference is the usual eager pre-LN GPT (nanoGPT style: separate modules, SDPA attention, AdamW with
its default implementation, gradient clipping), written here. Ours is `scaling.training.model.GPT` stepped by
`scaling.training.trainer.train_step`. Both train the same shape on the same batches: 4 layers, 4 heads,
d_model 128, context 128 tokens, batch 16 sequences, vocabulary 256.
Timed in alternating rounds after a warm-up.

    .venv/bin/python bench/train_throughput.py [--rounds 5] [--steps 10] [--compile]

Prints tokens/s of each and `ratio=`: the median over rounds of ours/reference.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from scaling.shapes import Shape
from scaling.training.trainer import Runtime, build, train_step, wrap

SHAPE = Shape(n_layer=4, d_model=128, n_head=4, n_ctx=128, vocab_size=256)
BATCH = 16


class RefBlock(nn.Module):
    def __init__(self, d: int, n_head: int) -> None:
        super().__init__()
        self.n_head = n_head
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.c_attn, self.c_proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc, self.proj = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(self.ln1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))
        return x + self.proj(F.gelu(self.fc(self.ln2(x))))


class RefGPT(nn.Module):
    def __init__(self, s: Shape) -> None:
        super().__init__()
        self.wte, self.wpe = nn.Embedding(s.vocab_size, s.d_model), nn.Embedding(s.n_ctx, s.d_model)
        self.blocks = nn.ModuleList(RefBlock(s.d_model, s.n_head) for _ in range(s.n_layer))
        self.ln_f = nn.LayerNorm(s.d_model)
        self.head = nn.Linear(s.d_model, s.vocab_size, bias=False)
        self.head.weight = self.wte.weight

    def forward(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1], device=idx.device))
        for block in self.blocks:
            x = block(x)
        logits = self.head(self.ln_f(x))
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))


def reference_step():
    model = RefGPT(SHAPE)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)

    def step(x: torch.Tensor, y: torch.Tensor) -> float:
        loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.item()

    return step


def our_step(compile_model: bool):
    """The step of scaling.training.trainer (`build`, `train_step`): fused AdamW, decay on matrices,
    clipping."""
    rt = Runtime(torch.device("cpu"), torch.float32, compile_model, rank=0, world_size=1, local_rank=0,
                 peak_flops=None)
    raw, opt = build(SHAPE, rt, lr=1e-3, weight_decay=0.1, betas=(0.9, 0.95))
    model = wrap(raw, rt)

    def step(x: torch.Tensor, y: torch.Tensor) -> float:
        return train_step(model, raw, opt, [(x, y)], 1, 1e-3, 1.0, rt).item()

    return step


def tokens_per_s(step, batches: list[torch.Tensor]) -> float:
    start = time.perf_counter()
    for b in batches:
        step(b[:, :-1], b[:, 1:])
    return len(batches) * BATCH * SHAPE.n_ctx / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--steps", type=int, default=6, help="steps per timed round")
    parser.add_argument("--compile", action="store_true", help="torch.compile our model (CPU default: off)")
    args = parser.parse_args()
    torch.manual_seed(0)
    batches = [torch.randint(0, SHAPE.vocab_size, (BATCH, SHAPE.n_ctx + 1)) for _ in range(args.steps)]
    steps = {"reference": reference_step(), "ours": our_step(args.compile)}
    for step in steps.values():  # warm-up (and compilation)
        for b in batches[:3]:
            step(b[:, :-1], b[:, 1:])
    rates: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(args.rounds):
        for name, step in steps.items():
            rates[name].append(tokens_per_s(step, batches))
    # Each round times both back to back, so a round's ratio sees one load of a shared machine.
    ratio = statistics.median(o / r for o, r in zip(rates["ours"], rates["reference"], strict=True))
    ref, ours = (statistics.median(rates[k]) for k in ("reference", "ours"))
    print(f"shape: {SHAPE}, batch {BATCH} sequences, torch threads {torch.get_num_threads()}, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'default')}")
    for name, median in (("reference", ref), ("ours", ours)):
        rounds = ", ".join(f"{r:,.0f}" for r in rates[name])
        print(f"{name + ':':10s} {median:,.0f} tokens/s median (rounds: {rounds})")
    print(f"ratio={ratio:.3f}  (median over rounds of ours/reference)")
    assert math.isfinite(ratio)


if __name__ == "__main__":
    main()
