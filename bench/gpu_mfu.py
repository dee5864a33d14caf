"""GPU throughput and MFU of GPT-3 small (125M) and medium (350M) against a plain eager bf16 reference.

Ours is the training step of `scaling.training.trainer` (`build`, `wrap`, `train_step`): bf16 autocast, TF32,
fused AdamW, flash attention through SDPA, torch.compile, pinned asynchronous batch copies. The
reference is the usual eager pre-LN GPT of bench/train_throughput.py under bf16 autocast with PyTorch's
default AdamW. Both train the same shape on the same random batches (context 1024, GPT-2's vocabulary
padded to 50304 as nanoGPT does) for a fixed number of steps after a warm-up that includes compilation.

MFU = tokens/s x model FLOPs per token (`scaling.shapes.model_flops_per_token`: 6 N + 6 n_layer n_ctx
d_model + 6 d_model vocab) / the GPU's dense bf16 peak (A100 312e12, H100/H200 989e12; --peak to set it).

    python bench/gpu_mfu.py                 # about 3-5 minutes on one H100, compilation included
    python bench/gpu_mfu.py --models gpt3_small --steps 30 --no-profile

Prints per model tokens/s and MFU of both, `ratio=<ours/reference>`, and (unless --no-profile) the
CUDA kernels that take the most time in our step, to show what limits it.
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import torch
from train_throughput import RefGPT  # the plain reference model, shared with the CPU benchmark

from scaling.hardware import accelerator_for_device
from scaling.shapes import PRESETS, Shape, model_flops_per_token
from scaling.training.trainer import Runtime, build, to_device, train_step, wrap

BATCH = {"gpt3_small": 32, "gpt3_medium": 16}  # sequences per step: ~13-22 GB of activations


def reference_step(shape: Shape):
    model = RefGPT(shape).cuda()
    opt = torch.optim.AdamW(model.parameters(), lr=6e-4, weight_decay=0.1)

    def step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.detach()

    return step


def our_step(shape: Shape, rt: Runtime):
    raw, opt = build(shape, rt, lr=6e-4, weight_decay=0.1, betas=(0.9, 0.95))
    model = wrap(raw, rt)

    def step(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return train_step(model, raw, opt, [(x, y)], 1, 6e-4, 1.0, rt)

    return step


def timed(step, batches: list, warmup: int, steps: int) -> tuple[float, float]:
    """(seconds per step, warm-up seconds); batches are copied host -> device each step, as in training."""
    start = time.perf_counter()
    for i in range(warmup):
        step(*to_device(batches[i % len(batches)], torch.device("cuda")))
    torch.cuda.synchronize()
    warm = time.perf_counter() - start
    start = time.perf_counter()
    for i in range(steps):
        loss = step(*to_device(batches[i % len(batches)], torch.device("cuda")))
    torch.cuda.synchronize()
    assert math.isfinite(loss.item())
    return (time.perf_counter() - start) / steps, warm


def profile(step, batches: list, steps: int = 5) -> str:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    with torch_profile(activities=[ProfilerActivity.CUDA]) as prof:
        for i in range(steps):
            step(*to_device(batches[i % len(batches)], torch.device("cuda")))
        torch.cuda.synchronize()
    return prof.key_averages().table(sort_by="cuda_time_total", row_limit=12, max_name_column_width=60)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="gpt3_small,gpt3_medium")
    parser.add_argument("--ctx", type=int, default=1024)
    parser.add_argument("--vocab", type=int, default=50304)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per model")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first (compilation)")
    parser.add_argument("--peak", type=float, default=None, help="peak FLOP/s (default: from the GPU name)")
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--no-profile", action="store_true")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("error: no CUDA GPU visible; run bench/gpu_mfu.py on a GPU machine", file=sys.stderr)
        return 2
    name = torch.cuda.get_device_name()
    accelerator = accelerator_for_device(name)
    peak = args.peak or (accelerator.peak_bf16_flops if accelerator else None)
    if peak is None:
        print(f"error: unknown peak FLOP/s for {name!r}; pass --peak (e.g. 989e12)", file=sys.stderr)
        return 2
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    rt = Runtime(torch.device("cuda", 0), torch.bfloat16, not args.no_compile, 0, 1, 0, peak)
    print(f"{name}, peak {peak / 1e12:.0f} TFLOP/s bf16 dense, torch {torch.__version__}, "
          f"ctx {args.ctx}, vocab {args.vocab}, {args.steps} timed steps after {args.warmup}")
    ratios = []
    for model_name in args.models.split(","):
        preset = PRESETS[model_name]
        shape = Shape(preset.n_layer, preset.d_model, preset.n_head, args.ctx, args.vocab)
        batch = BATCH.get(model_name, 16)
        tokens = batch * args.ctx
        gen = torch.Generator().manual_seed(0)
        batches = [torch.randint(0, args.vocab, (batch, args.ctx + 1), generator=gen) for _ in range(4)]
        flops = model_flops_per_token(shape)
        results = {}
        for label in ("ours", "reference"):
            torch.manual_seed(0)
            step = our_step(shape, rt) if label == "ours" else reference_step(shape)
            seconds, warm = timed(step, batches, args.warmup, args.steps)
            rate = tokens / seconds
            results[label] = rate
            print(f"{model_name} {label:9s}: {rate:12,.0f} tokens/s  MFU {rate * flops / peak:6.1%}  "
                  f"({seconds * 1e3:.1f} ms/step of {tokens} tokens; warm-up {warm:.0f} s)")
            if label == "ours" and not args.no_profile:
                print(profile(step, batches))
            del step
            torch.cuda.empty_cache()
        ratio = results["ours"] / results["reference"]
        ratios.append(ratio)
        memory = torch.cuda.max_memory_allocated() / 1e9
        print(f"{model_name} ratio={ratio:.3f}  (peak memory {memory:.1f} GB)")
        torch.cuda.reset_peak_memory_stats()
    print(f"ratio={math.prod(ratios) ** (1 / len(ratios)):.3f}  (geometric mean over {args.models})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
