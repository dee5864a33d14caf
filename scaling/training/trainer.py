"""One training run: a config in, a run folder out (config.yaml, metrics.jsonl, summary.json, ckpt.pt).

`train(cfg, run_dir, stop)` is idempotent: a run folder whose summary says completed or diverged is
returned as is; one with a checkpoint resumes from it and ends exactly as an uninterrupted run would
(same seed, same device: bitwise on CPU), since the data order is a function of the step, and the
model, optimizer and RNG states come back from the checkpoint. One process writes a run folder at a time:
the run holds its lock (`scaling.training.lock`) from before it reads the summary to its end.

AdamW (decay on matrices only), linear warmup then the LR schedule of `scaling.training.schedule` (by
default cosine decay to 10 % of the peak over exactly the run's token budget), gradient clipping,
evaluation on held-out data at even intervals and at the end, NaN/inf loss ending the run as `diverged`.
A cooldown branch (`scaling.training.branch`) starts from its parent's kept checkpoint instead of a
fresh model. On CUDA: bf16 autocast, TF32, fused AdamW, flash attention (SDPA),
torch.compile, pinned asynchronous batch copies, gradient accumulation, and DDP across the processes of
torchrun or of a SLURM job step; MFU goes into the metrics.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import sys
import threading
import time
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import numpy as np
import torch
import torch.distributed as dist
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from scaling.errors import UsageError
from scaling.hardware import accelerator_for_device
from scaling.io import append_jsonl, atomic_write_bytes, atomic_write_json, atomic_write_text, read_jsonl
from scaling.reference import training_flops
from scaling.shapes import Shape, model_flops_per_token, n_params_total
from scaling.tracking import flatten
from scaling.training.branch import SCHEDULE_FILE, branch_checkpoint, branch_plan
from scaling.training.config import (
    RunPlan,
    identity_hash,
    plan_run,
    resolved_config,
    run_folder_changes,
    synthetic_params,
    train_setting,
)
from scaling.training.data import TokenData, WindowSampler, eval_starts, gather, load_data
from scaling.training.lock import Holder, hold_run_folder
from scaling.training.loggers import Trackers, check_loggers
from scaling.training.model import GPT, param_groups

CHECKPOINT = "ckpt.pt"
FINISHED = ("completed", "diverged")


@dataclass(frozen=True)
class Runtime:
    """Where and how a run executes: device, precision, process group."""

    device: torch.device
    dtype: torch.dtype  # autocast dtype; float32 means no autocast
    compile: bool
    rank: int
    world_size: int
    local_rank: int
    peak_flops: float | None  # accelerator peak FLOP/s (per device) for MFU

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)


def _distributed_env() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's variables or a SLURM job step's tasks."""
    if "WORLD_SIZE" not in os.environ and int(os.environ.get("SLURM_NTASKS", "1")) > 1:
        from submitit.helpers import TorchDistributedEnvironment

        # Sets MASTER_ADDR (the job's first host), MASTER_PORT (from the job id), RANK, WORLD_SIZE, ...
        TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0"))


def setup_runtime(train_cfg: DictConfig) -> Runtime:
    """Device, threads, precision and (when WORLD_SIZE > 1) the process group for this process."""
    device_name = str(train_setting(train_cfg, "device"))
    if device_name == "auto":
        device_name = "cuda" if torch.cuda.is_available() else "cpu"
    if device_name not in ("cpu", "cuda"):
        raise UsageError(f"train.device must be cpu, cuda or auto, got {device_name!r}")
    if device_name == "cuda" and not torch.cuda.is_available():
        raise UsageError("train.device=cuda but torch sees no CUDA GPU; use train.device=cpu or auto")
    rank, world, local_rank = _distributed_env()
    if device_name == "cuda":
        device = torch.device("cuda", local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    else:
        device = torch.device("cpu")
    threads = train_setting(train_cfg, "threads")
    if threads is None:  # the cores given to this run: by the local parallel launcher (joblib) or SLURM
        threads = os.environ.get("OMP_NUM_THREADS") or os.environ.get("SLURM_CPUS_PER_TASK")
        threads = threads or max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", world)))
    torch.set_num_threads(int(threads))
    dtype_name = str(train_setting(train_cfg, "dtype"))
    if dtype_name == "auto":
        dtype_name = "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    if dtype_name not in dtypes:
        raise UsageError(f"train.dtype must be fp32, bf16 or auto, got {dtype_name!r}")
    compile_opt = train_setting(train_cfg, "compile")
    use_compile = device.type == "cuda" if compile_opt in (None, "auto") else bool(compile_opt)
    peak = train_setting(train_cfg, "peak_flops")
    if peak is None and device.type == "cuda":
        accelerator = accelerator_for_device(torch.cuda.get_device_name(device))
        peak = accelerator.peak_bf16_flops if accelerator else None
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo", device_id=None)
    return Runtime(device, dtypes[dtype_name], use_compile, rank, world, local_rank, peak and float(peak))


def auto_micro_batch(plan: RunPlan, rt: Runtime) -> int:
    """Sequences per forward pass on one device: the whole per-device batch on CPU; on a GPU the largest
    divisor of it whose activations fit in 60 % of the memory left by weights, gradients and Adam state.

    Activations per token: 34 n_layer d_model bytes (Korthikanti et al. 2022, bf16 with flash attention)
    plus 10 vocab_size bytes of logits.
    """
    per_device = plan.batch_size // rt.world_size
    if rt.device.type != "cuda":
        return per_device
    s = plan.shape
    free = torch.cuda.get_device_properties(rt.device).total_memory - 16 * n_params_total(s)
    per_token = 34 * s.n_layer * s.d_model + 10 * s.vocab_size
    limit = max(1, int(0.6 * free / per_token / s.n_ctx))
    return max(m for m in range(1, per_device + 1) if per_device % m == 0 and m <= limit)


def build(
    shape: Shape, rt: Runtime, lr: float, weight_decay: float, betas: tuple[float, float]
) -> tuple[GPT, torch.optim.AdamW]:
    """The model on its device and its AdamW (fused: one kernel per step, on CPU too)."""
    model = GPT(shape).to(rt.device)
    optimizer = torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, betas=betas, fused=True)
    return model, optimizer


def wrap(model: GPT, rt: Runtime) -> torch.nn.Module:
    """What the training step calls: the model, compiled if asked, inside DDP across several processes."""
    wrapped: torch.nn.Module = torch.compile(model) if rt.compile else model
    if rt.world_size > 1:
        device_ids = [rt.device.index] if rt.device.type == "cuda" else None
        wrapped = torch.nn.parallel.DistributedDataParallel(wrapped, device_ids=device_ids)
    return wrapped


def train_step(
    model: torch.nn.Module,
    raw_model: GPT,
    optimizer: torch.optim.Optimizer,
    micro_batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    accum: int,
    lr: float,
    grad_clip: float,
    rt: Runtime,
) -> torch.Tensor:
    """One optimizer step over `accum` micro-batches; returns the mean loss, left on the device (no sync)."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    total = torch.zeros((), device=rt.device)
    for k, (x, y) in enumerate(micro_batches):
        # DDP all-reduces gradients only after the last micro-batch.
        last = k == accum - 1
        no_sync = model.no_sync() if rt.world_size > 1 and not last else contextlib.nullcontext()
        with no_sync:
            with rt.autocast():
                _, loss = model(x, y)
            (loss / accum).backward()
        total += loss.detach() / accum
    torch.nn.utils.clip_grad_norm_(raw_model.parameters(), grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return total


class Batches:
    """Training micro-batches for (step, micro step) on this rank, fetched one ahead.

    Step s uses stream windows [s B, (s + 1) B) of the global batch B, whatever the number of processes
    and micro steps, so a resumed, or data-parallel, run sees the same data as a single uninterrupted one.
    """

    def __init__(self, sampler: WindowSampler, plan: RunPlan, micro: int, rt: Runtime) -> None:
        self.sampler, self.plan, self.micro, self.rt = sampler, plan, micro, rt
        self.accum = plan.batch_size // (micro * rt.world_size)
        self._ahead: tuple[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] | None = None

    def _load(self, step: int, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        first = step * self.plan.batch_size + (k * self.rt.world_size + self.rt.rank) * self.micro
        return to_device(self.sampler.batch(first, self.micro), self.rt.device)

    def get(self, step: int, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        batch = self._ahead[1] if self._ahead and self._ahead[0] == (step, k) else self._load(step, k)
        nxt = (step, k + 1) if k + 1 < self.accum else (step + 1, 0)
        if nxt[0] < self.plan.steps:
            self._ahead = (nxt, self._load(*nxt))  # the copy overlaps this micro step's compute on CUDA
        return batch


def to_device(tokens: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    t = torch.from_numpy(tokens)
    if device.type == "cuda":
        t = t.pin_memory().to(device, non_blocking=True)
    return t[:, :-1], t[:, 1:]


@torch.no_grad()
def held_out_loss(model: GPT, val: np.ndarray, starts: np.ndarray, micro: int, rt: Runtime) -> float:
    """Mean held-out loss (nats/token) over the fixed evaluation windows, shared out across ranks."""
    model.eval()
    mine = starts[rt.rank :: rt.world_size]
    total = torch.zeros(2, dtype=torch.float64, device=rt.device)
    n_ctx = model.shape.n_ctx
    for i in range(0, len(mine), micro):
        x, y = to_device(gather(val, mine[i : i + micro], n_ctx + 1), rt.device)
        with rt.autocast():
            _, loss = model(x, y)
        total += torch.stack([loss.double() * len(x), torch.tensor(len(x), device=rt.device)])
    if rt.world_size > 1:
        dist.all_reduce(total)
    model.train()
    return (total[0] / total[1]).item()


def _finite(value: float | None) -> float | None:
    """JSON gets null, not NaN, for a non-finite loss: strict readers reject NaN."""
    return value if value is not None and math.isfinite(value) else None


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _load_checkpoint(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        with warnings.catch_warnings():  # torch warns about a foreign file's pickle protocol, then refuses it
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # written atomically, so only outside damage (or a foreign file) gets here
        # torch's message is paragraphs of advice; what it refused is the last before "Check the ..."
        paragraphs = [" ".join(p.split()) for p in str(exc).split("\n\n")]
        paragraphs = [p for p in paragraphs if p and not p.startswith("Check the documentation")]
        paragraphs = paragraphs or [type(exc).__name__]
        why = paragraphs[-1] if len(paragraphs) > 1 else paragraphs[0].split(". ")[0]
        raise UsageError(
            f"checkpoint {path} is not a readable weights-only checkpoint ({why[:200]}); "
            "delete it to restart the run"
        ) from None


def _metric_rows(path: Path) -> list[dict[str, Any]]:
    try:
        return list(read_jsonl(path)) if path.exists() else []
    except ValueError as exc:  # a damaged line before the last (a torn last line is skipped)
        raise UsageError(f"{exc}; delete the run folder {path.parent} to restart the run") from None


def _truncate_metrics(path: Path, last_step: int) -> None:
    """Drop metric rows past the checkpoint (they will be produced again), atomically."""
    if not path.exists():
        return
    rows = [r for r in _metric_rows(path) if r.get("step", math.inf) <= last_step]
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))


def _eval_steps(steps: int, evals: int, first: int = 0) -> set[int]:
    """`evals` steps evenly spread over (first, steps], the last at `steps` (a branch evaluates only its
    own steps, past its branch point `first`)."""
    evals = max(1, min(int(evals), steps - first))
    return {first + round(k * (steps - first) / evals) for k in range(1, evals + 1)}


def train(cfg: DictConfig, run_dir: str | os.PathLike, stop: threading.Event | None = None) -> dict[str, Any]:
    """Train one run into `run_dir` and return its summary (the contents of summary.json).

    Parameters
    ----------
    cfg : DictConfig
        The run's config (keys in `sweeps/config.yaml`).
    run_dir : path
        The run folder; created if needed. Completed or diverged runs are returned untouched;
        interrupted ones resume from `ckpt.pt`. One process writes it at a time (`scaling.training.lock`): a
        second launch of the same run waits for the first to end, then resumes it or returns its result.
    stop : threading.Event, optional
        When set (e.g. by a SIGINT, SIGTERM or SIGUSR2 handler), the run checkpoints at the next step
        boundary and returns with status `interrupted`; calling `train` again resumes it.
    """
    run_dir = Path(run_dir)
    try:
        return _train_run(cfg, run_dir, stop)
    except OSError as exc:  # a full disk, a read-only or foreign folder: nothing written is lost
        raise UsageError(_os_error_message(exc, run_dir)) from None


def _train_run(cfg: DictConfig, run_dir: Path, stop: threading.Event | None) -> dict[str, Any]:
    plan = plan_run(cfg)  # every UsageError comes before anything is written
    check_loggers(cfg.train.get("loggers"))
    resolved = resolved_config(cfg, plan)
    _check_folder_config(run_dir, resolved)
    previous = _read_json(run_dir / "summary.json")
    if previous and previous.get("status") in FINISHED:  # final: no trainer rewrites it, so no lock needed
        if previous["status"] == "completed" and not train_setting(cfg.train, "keep_checkpoint"):
            # an attempt killed between writing its summary and deleting its checkpoint left it behind
            (run_dir / CHECKPOINT).unlink(missing_ok=True)
        return previous
    if plan.branch_from is not None:  # its parent is checked before anything is written
        plan = branch_plan(plan, resolved, needs_checkpoint=not (run_dir / CHECKPOINT).exists())
    data = load_data(plan.data_name, synthetic_params(cfg.data))
    sampler = WindowSampler(data.train[: plan.unique_tokens], plan.shape.n_ctx, plan.seed)
    val_starts = eval_starts(data.val, plan.shape.n_ctx, plan.eval_tokens)
    rt = setup_runtime(cfg.train)
    try:
        if plan.batch_size % rt.world_size:
            raise UsageError(
                f"train.batch_size={plan.batch_size} is not divisible by {rt.world_size} processes"
            )
        micro = plan.micro_batch_size or auto_micro_batch(plan, rt)
        if (plan.batch_size // rt.world_size) % micro:
            raise UsageError(
                f"train.micro_batch_size={micro} does not divide the {plan.batch_size // rt.world_size} "
                "sequences per process of train.batch_size"
            )
        with _one_writer(run_dir, resolved, rt, stop):
            batches = Batches(sampler, plan, micro, rt)
            return _train_locked(plan, data, batches, val_starts, cfg, run_dir, resolved, rt, stop)
    finally:
        if rt.world_size > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _check_folder_config(run_dir: Path, resolved: dict[str, Any]) -> None:
    changes = run_folder_changes(run_dir, resolved)
    if changes:
        raise UsageError(
            f"run folder {run_dir} holds a run with another config ({'; '.join(changes)}); give another "
            "folder (hydra.run.dir=...) or delete this one"
        )


@contextlib.contextmanager
def _one_writer(
    run_dir: Path, resolved: dict[str, Any], rt: Runtime, stop: threading.Event | None
) -> Iterator[None]:
    """The main process holds the run folder's lock for the block; the other ranks wait for it to."""
    if not rt.is_main:
        dist.barrier()  # past it, the main process holds the lock: the folder is this run's alone
        yield
        return

    def waiting(holder: Holder | None) -> None:
        who = holder or "another process"
        print(f"waiting: run folder {run_dir} is being trained by {who}; this launch goes on when it "
              "ends (Ctrl-C leaves it)", file=sys.stderr, flush=True)  # fmt: skip

    run_dir.mkdir(parents=True, exist_ok=True)
    stopped = (lambda: stop.is_set()) if stop is not None else (lambda: False)
    with hold_run_folder(run_dir, identity_hash(resolved), waiting, stopped):
        if rt.world_size > 1:
            dist.barrier()
        yield


def _os_error_message(exc: OSError, run_dir: Path) -> str:
    """One line naming the file that failed (scaling.io's atomic writes name their target) and the way on."""
    name = exc.filename
    path = Path(os.fsdecode(name)) if name is not None else run_dir  # a failed write() names no file
    return (
        f"{exc.strerror or exc}: {path}; nothing already written was lost: free space or make the folder "
        "writable, then rerun the same command to resume"
    )


def _train_locked(
    plan: RunPlan,
    data: TokenData,
    batches: Batches,
    val_starts: np.ndarray,
    cfg: DictConfig,
    run_dir: Path,
    resolved: dict[str, Any],
    rt: Runtime,
    stop: threading.Event | None,
) -> dict[str, Any]:
    """Train while holding the run folder: check it again (another launch may have finished it), train."""
    summary_path, config_path = run_dir / "summary.json", run_dir / "config.yaml"
    _check_folder_config(run_dir, resolved)
    previous = _read_json(summary_path)
    if previous and previous.get("status") in FINISHED:
        return previous
    if rt.is_main and not config_path.exists():
        atomic_write_text(config_path, OmegaConf.to_yaml(OmegaConf.create(resolved)))
    try:
        return _train(plan, data, batches, val_starts, cfg, run_dir, rt, stop)
    except UsageError:
        raise  # a damaged checkpoint or metrics file: the folder stays as it was until the user acts
    except BaseException as exc:
        if rt.is_main:
            # Ctrl-C outside `interruptible` (a notebook) stops between checkpoints: resumable all the same
            status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
            ended = _read_json(summary_path) or {}
            if ended.get("status") not in FINISHED:
                with contextlib.suppress(OSError):  # a full disk or read-only folder may refuse this too
                    atomic_write_json(summary_path, {**ended, "status": status})
        raise


def _train(
    plan: RunPlan,
    data: TokenData,
    batches: Batches,
    val_starts: np.ndarray,
    cfg: DictConfig,
    run_dir: Path,
    rt: Runtime,
    stop: threading.Event | None,
) -> dict[str, Any]:
    """The training loop: optimizer steps; every few, one poll across the ranks decides on evaluation,
    divergence, checkpoint and stop. Returns the summary of the status the run ends in."""
    run = Trainer(plan, data, batches, val_starts, cfg, run_dir, rt, stop)
    state = run.start()
    while state.step < plan.steps:
        lr = run.train_step()
        if state.step in plan.save_at_steps:
            run.keep_branch_point()
        at_eval = state.step in run.eval_at
        if not (at_eval or state.step % run.sync_every == 0):
            continue
        poll = run.poll()
        if at_eval or not math.isfinite(poll.train_loss):
            val_loss = run.evaluate(lr, poll.train_loss)
            if not math.isfinite(val_loss):
                return run.end("diverged", train_loss=None, val_loss=None, diverged_at_step=state.step)
        if state.step == plan.steps:
            break  # done: `complete` keeps a checkpoint only if asked to
        if at_eval or poll.checkpoint_due or poll.stop:
            run.checkpoint()  # a stop resumes from exactly this step
        if poll.stop:
            return run.end("interrupted", **run.last_losses())
    return run.complete()


@dataclass(frozen=True)
class Poll:
    """What every rank learns at a sync point, from one collective."""

    train_loss: float  # mean train loss since the last evaluation, nats/token (NaN on any rank makes it NaN)
    stop: bool  # a stop was asked (SIGINT, SIGTERM, SIGUSR2): checkpoint and end as interrupted
    checkpoint_due: bool  # more than train.checkpoint_every_s seconds since the last checkpoint


@dataclass
class RunState:
    """The run at a step boundary: what `ckpt.pt` holds, plus this session's clocks.

    The checkpoint holds the model, the optimizer, the CPU RNG and the counters, so that a resumed run
    ends as an uninterrupted one would (bitwise on CPU). Times are in seconds.
    """

    model: GPT  # unwrapped (no compile or DDP prefixes in its state dict)
    optimizer: torch.optim.Optimizer
    loss_sum: torch.Tensor  # per-step train losses (nats/token) summed since the last evaluation, on device
    step: int = 0  # optimizer steps done
    loss_count: int = 0  # steps summed in loss_sum
    wall_s: float = 0.0  # wall clock of the earlier sessions
    train_s: float = 0.0  # training time (evaluations excluded) up to interval_start
    resumes: int = 0  # times this run has resumed from a checkpoint
    # This session only, never saved: time.perf_counter / time.monotonic readings and a token count.
    session_start: float = field(default_factory=time.perf_counter)
    interval_start: float = field(default_factory=time.perf_counter)
    interval_tokens: int = 0  # tokens trained since interval_start (this session's share)
    checkpointed_at: float = field(default_factory=time.monotonic)

    @classmethod
    def restore(
        cls,
        path: Path,
        model: GPT,
        optimizer: torch.optim.Optimizer,
        device: torch.device,
        branch: bool = False,
    ) -> Self:
        """The state saved at `path` (model and optimizer loaded in place, CPU RNG set), else a fresh one;
        `branch`: `path` is a parent's kept checkpoint, whose counters and clocks are not this run's."""
        ckpt = _load_checkpoint(path)
        if ckpt is None:
            return cls(model, optimizer, torch.zeros((), device=device))
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        torch.set_rng_state(ckpt["rng_cpu"])
        if branch:  # a branch's first session: the parent's weights and step; its own losses and clocks
            return cls(model, optimizer, torch.zeros((), device=device), step=ckpt["step"])
        return cls(
            model,
            optimizer,
            ckpt["loss_sum"].to(device),
            step=ckpt["step"],
            loss_count=ckpt["loss_count"],
            wall_s=ckpt["wall_s"],
            train_s=ckpt["train_s"],
            resumes=ckpt["resumes"] + 1,
        )

    def save(self, path: Path) -> None:
        """Write the checkpoint atomically: a reader finds the previous one or this one, never a torn file."""
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rng_cpu": torch.get_rng_state(),
            "step": self.step,
            "wall_s": self.wall_now(),
            "train_s": self.train_s_now(),
            "resumes": self.resumes,
            "loss_sum": self.loss_sum.detach().cpu(),
            "loss_count": self.loss_count,
        }
        buffer = io.BytesIO()
        torch.save(state, buffer)
        atomic_write_bytes(path, buffer.getvalue())

    def wall_now(self) -> float:
        """Wall-clock seconds of the run so far, all sessions."""
        return self.wall_s + time.perf_counter() - self.session_start

    def train_s_now(self) -> float:
        """Training seconds of the run so far, all sessions, evaluations excluded."""
        return self.train_s + time.perf_counter() - self.interval_start

    def close_interval(self) -> float:
        """Add the interval since the last evaluation to the training time; its length in seconds."""
        seconds = time.perf_counter() - self.interval_start
        self.train_s += seconds
        return seconds

    def open_interval(self) -> None:
        """Start counting losses, tokens and training time afresh (after an evaluation)."""
        self.loss_sum.zero_()
        self.loss_count, self.interval_tokens = 0, 0
        self.interval_start = time.perf_counter()


class Trainer:
    """One session of one run: the model, its data and state, and the run folder's files.

    `start` writes the running summary, then the loop calls `train_step`, `poll`, `evaluate`, `checkpoint`,
    and `end` or `complete`. Only the main process writes files; every rank computes.
    """

    def __init__(
        self,
        plan: RunPlan,
        data: TokenData,
        batches: Batches,
        val_starts: np.ndarray,
        cfg: DictConfig,
        run_dir: Path,
        rt: Runtime,
        stop: threading.Event | None,
    ) -> None:
        self.plan, self.data, self.batches, self.val_starts, self.rt, self.stop = (
            plan, data, batches, val_starts, rt, stop
        )  # fmt: skip
        self.metrics_path, self.summary_path = run_dir / "metrics.jsonl", run_dir / "summary.json"
        self.ckpt_path = run_dir / CHECKPOINT
        torch.manual_seed(plan.seed)
        raw_model, optimizer = build(plan.shape, rt, plan.lr, plan.weight_decay, (plan.beta1, plan.beta2))
        branch_start = plan.branch_from is not None and not self.ckpt_path.exists()
        start_from = branch_checkpoint(plan.branch_from, plan.branch_step) if branch_start else self.ckpt_path
        self.state = RunState.restore(start_from, raw_model, optimizer, rt.device, branch=branch_start)
        self.schedule_path, self.run_dir = run_dir / SCHEDULE_FILE, run_dir
        resumed = self.state.resumes > 0
        if rt.is_main and resumed:
            _truncate_metrics(self.metrics_path, self.state.step)
        elif rt.is_main:
            self.metrics_path.unlink(missing_ok=True)  # rows of an attempt that never reached a checkpoint
        self.model = wrap(raw_model, rt)  # what steps call (compiled, DDP); the state keeps the raw model
        self.eval_at = _eval_steps(plan.steps, plan.evals, plan.branch_step)
        self.lr_sums = plan.schedule.lr_sums()  # the LR area after each step, for the metrics rows
        self.sync_every = 1 if rt.device.type == "cpu" else 10  # host-device syncs stall a GPU's queue
        self.flops_per_token = model_flops_per_token(plan.shape)
        self.base = _summary_base(plan, data, rt, self.state.resumes)
        tracked = {**flatten(OmegaConf.to_container(cfg, resolve=True)), **self.base}
        tracked.pop("status")
        self.trackers = Trackers(check_loggers(cfg.train.get("loggers")), run_dir, tracked, rt.is_main)
        self.last = _last_metrics(self.metrics_path) if resumed else {}  # the latest metrics row
        self.progress = train_setting(cfg.train, "progress")
        self.keep_checkpoint = bool(train_setting(cfg.train, "keep_checkpoint"))

    def start(self) -> RunState:
        """Write the running summary, open the progress bar, start the clocks; the state to loop over."""
        self.state.session_start = time.perf_counter()
        if self.rt.is_main:
            record = {**self.plan.schedule.to_json(), "tokens_per_step": self.plan.tokens_per_step}
            atomic_write_json(self.schedule_path, record)
        self.write_summary("running", **self.last_losses())
        show = self.progress
        show = sys.stderr.isatty() if show in (None, "auto") else bool(show)  # auto: on a terminal
        self.bar = tqdm(
            total=self.plan.tokens,
            initial=self.state.step * self.plan.tokens_per_step,
            unit="tok",
            unit_scale=True,
            disable=not self.rt.is_main or not show,
        )
        self.model.train()
        self.state.interval_start = time.perf_counter()
        self.state.checkpointed_at = time.monotonic()
        return self.state

    def train_step(self) -> float:
        """One optimizer step (the module's `train_step`) at the schedule's learning rate; that rate."""
        s, plan, batches = self.state, self.plan, self.batches
        lr, step = plan.lr_at(s.step), s.step
        micro = (batches.get(step, k) for k in range(batches.accum))
        loss = train_step(self.model, s.model, s.optimizer, micro, batches.accum, lr, plan.grad_clip, self.rt)
        s.loss_sum += loss
        s.step += 1
        s.loss_count += 1
        s.interval_tokens += plan.tokens_per_step
        self.bar.update(plan.tokens_per_step)
        return lr

    def poll(self) -> Poll:
        """One collective for every rank: the summed train loss, a stop request, a checkpoint due."""
        s, rt = self.state, self.rt
        flags = torch.tensor(
            [
                0.0,
                float(self.stop is not None and self.stop.is_set()),
                float(time.monotonic() - s.checkpointed_at > self.plan.checkpoint_every_s),
            ],
            dtype=torch.float64,
            device=rt.device,
        )
        flags[0] = s.loss_sum
        if rt.world_size > 1:
            dist.all_reduce(flags)
        total_loss, stop, checkpoint_due = flags.tolist()
        train_loss = total_loss / rt.world_size / s.loss_count
        self.bar.set_postfix(loss=f"{train_loss:.3f}", refresh=False)
        return Poll(train_loss, bool(stop), bool(checkpoint_due))

    def evaluate(self, lr: float, train_loss: float) -> float:
        """Close the interval with one metrics row (losses in nats/token, tokens, FLOPs = 6 N D, seconds);
        the held-out loss, NaN without evaluating after a non-finite train loss (the run diverged)."""
        s, plan, rt = self.state, self.plan, self.rt
        seconds = s.close_interval()
        val_loss = math.nan
        if math.isfinite(train_loss):
            val_loss = held_out_loss(s.model, self.data.val, self.val_starts, self.batches.micro, rt)
        tokens_per_s = s.interval_tokens / seconds
        flops_per_s = tokens_per_s * self.flops_per_token
        self.last = {
            "step": s.step,
            "tokens": s.step * plan.tokens_per_step,
            "flops": training_flops(plan.n_params, s.step * plan.tokens_per_step),
            "lr": lr,
            "lr_sum": float(self.lr_sums[s.step - 1]),
            "train_loss": _finite(train_loss),
            "val_loss": _finite(val_loss),
            "elapsed_s": s.wall_now(),
            "tokens_per_s": tokens_per_s,
            "flops_per_s": flops_per_s,
            "mfu": self.mfu(flops_per_s),
        }
        if rt.is_main:
            append_jsonl(self.metrics_path, self.last)
            self.trackers.log(self.last)
        s.open_interval()  # evaluation time is not training time
        return val_loss

    def keep_branch_point(self) -> None:
        """Keep this step's state for cooldown branches (`train.save_at`): branches/step_<S>.pt."""
        if self.rt.is_main:
            path = branch_checkpoint(self.run_dir, self.state.step)
            path.parent.mkdir(exist_ok=True)
            self.state.save(path)

    def checkpoint(self) -> None:
        """Save the state to ckpt.pt (main process); every rank restarts the checkpoint_every_s clock."""
        if self.rt.is_main:
            self.state.save(self.ckpt_path)
        self.state.checkpointed_at = time.monotonic()

    def mfu(self, flops_per_s: float) -> float | None:
        """Model FLOP utilisation: model FLOP/s over the peak FLOP/s of all devices (None if unknown)."""
        return flops_per_s / (self.rt.peak_flops * self.rt.world_size) if self.rt.peak_flops else None

    def last_losses(self) -> dict[str, float | None]:
        """The latest evaluation's train and held-out losses (nats/token); None before the first."""
        return {"train_loss": self.last.get("train_loss"), "val_loss": self.last.get("val_loss")}

    def write_summary(self, status: str, **fields: Any) -> dict[str, Any]:
        """summary.json (atomically) with the status, steps done, wall-clock seconds and `fields`."""
        now = {"status": status, "steps_done": self.state.step, "wall_s": self.state.wall_now()}
        summary = {**self.base, **now, **fields}
        if self.rt.is_main:
            atomic_write_json(self.summary_path, summary)
        return summary

    def end(self, status: str, **fields: Any) -> dict[str, Any]:
        """End the session early (diverged, interrupted) and record it."""
        self.bar.close()
        self.trackers.finish(status)
        return self.write_summary(status, **fields)

    def complete(self) -> dict[str, Any]:
        """Record the completed run and its throughput; delete the checkpoint unless train.keep_checkpoint."""
        self.bar.close()
        plan = self.plan
        train_s = self.state.train_s_now()
        own_tokens = plan.tokens - plan.branch_tokens  # what this run trained itself
        flops_per_s = own_tokens * self.flops_per_token / train_s
        summary = self.write_summary(
            "completed",
            **self.last_losses(),
            epochs=plan.tokens / plan.unique_tokens,
            train_s=train_s,
            tokens_per_s=own_tokens / train_s,
            flops_per_s=flops_per_s,
            mfu=self.mfu(flops_per_s),
        )
        self.trackers.finish("completed")
        if self.keep_checkpoint:
            self.checkpoint()
        elif self.rt.is_main:
            self.ckpt_path.unlink(missing_ok=True)
        return summary


def _summary_base(plan: RunPlan, data: TokenData, rt: Runtime, resumes: int) -> dict[str, Any]:
    """The summary fields fixed for the session: the run's shape, budget, data and hardware."""
    branch = {}
    if plan.branch_from is not None:
        branch = {"parent": str(plan.branch_from), "branch_tokens": plan.branch_tokens,
                  "branch_step": plan.branch_step}  # fmt: skip
    return {
        "status": "running",
        **plan.summary_fields(),
        **branch,
        "n_params_total": n_params_total(plan.shape),
        "steps": plan.steps,
        "batch_size": plan.batch_size,
        "lr": plan.lr,
        "data": plan.data_name,
        "unigram_entropy": data.unigram_entropy,
        "entropy_rate": data.entropy_rate,
        "device": torch.cuda.get_device_name(rt.device) if rt.device.type == "cuda" else "cpu",
        "world_size": rt.world_size,
        "resumes": resumes,
    }


def _last_metrics(path: Path) -> dict[str, Any]:
    rows = _metric_rows(path)
    return rows[-1] if rows else {}
