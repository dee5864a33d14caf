"""One run's configuration: OmegaConf resolvers for sweep files, and validation into a `RunPlan`.

Torch-free, so a sweep can be expanded and checked (every point, before anything launches) cheaply.

Config keys (`sweeps/config.yaml` documents each): `model.{n_layer,d_model,n_head,n_ctx,vocab_size}`;
`train.tokens` (D) or `train.tokens_per_param`, `train.batch_size` (sequences per optimizer step, over all
devices), `train.lr`, `train.seed`, `train.device`, ...; `data.name` (`default`, `synthetic`, or a prepared
folder) and `data.unique_tokens` (cap on the training split, for repeated-data sweeps). The rules for
`auto` learning rate and batch size are in `scaling.recipe`, which the planner shares.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import json
import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from scaling.errors import UsageError
from scaling.recipe import MIN_STEPS, auto_batch_size, auto_lr, read_hparam_laws
from scaling.reference import tokens_for_compute, training_flops
from scaling.resources import config_dir
from scaling.shapes import Shape, n_params, shape_for_params, validate_shape
from scaling.training.schedule import DECAY_SHAPES, SCHEDULES, Schedule, decay_start_for
from scaling.units import parse_quantity

CONFIG_DIR = config_dir()
# Keys added with LR schedules: left out of a run's identity at their defaults, so that run folders from
# before them (whose config.yaml lacks them) are still recognised, resumed and skipped.
SCHEDULE_KEYS = ("schedule", "decay_frac", "decay_shape", "save_at", "branch_from", "branch_tokens")
# Folder names longer than this (many overrides) are shortened and made unique with a hash.
MAX_DIRNAME = 160


@functools.cache
def _config_file() -> DictConfig:
    """`config.yaml` as written (not composed): the one home of the `train` defaults and execution keys."""
    return OmegaConf.load(CONFIG_DIR / "config.yaml")


def train_default(key: str) -> Any:
    """The default of `train.<key>`, as `config.yaml` gives it (used when a config leaves the key out)."""
    return _config_file().train[key]


def execution_keys() -> frozenset[str]:
    """Keys of `train` that change how a run executes, not what it computes: a resumed run may change them.

    They are the `train.` entries of `hydra.job.config.override_dirname.exclude_keys` in `config.yaml`,
    which keep them out of a run's folder name, so that naming a run and recognising it on resume agree.
    """
    excluded = _config_file().hydra.job.config.override_dirname.exclude_keys
    return frozenset(key.removeprefix("train.") for key in excluded if key.startswith("train."))


def _n_params_resolver(n_layer: Any, d_model: Any) -> int:
    return n_params(Shape(int(n_layer), int(d_model), 1))


def _tokens_for_compute(compute: Any, n_layer: Any, d_model: Any) -> int:
    """D = C / (6 N) tokens, N exact non-embedding parameters, C in FLOPs ('1e15' or '1P' accepted)."""
    c = parse_quantity(compute, "compute budget C")
    return round(tokens_for_compute(c, _n_params_resolver(n_layer, d_model)))


def _shape_for_params(target: Any, aspect: Any, head_size: Any, field: str) -> int:
    shape = shape_for_params(parse_quantity(target, "model.target_params"), float(aspect), int(head_size))
    return int(getattr(shape, str(field)))


def _recipe_lr(scale: Any, n_layer: Any, d_model: Any, n_head: Any) -> float:
    """`scale` times the `auto` peak learning rate of a shape (an LR grid around the recipe)."""
    shape = Shape(int(n_layer), int(d_model), int(n_head))
    return float(scale) * auto_lr(shape, n_params(shape))


def _recipe_batch(scale: Any, n_layer: Any, d_model: Any, n_head: Any, n_ctx: Any, per_param: Any) -> int:
    """`scale` times the `auto` batch (sequences) of a shape trained on D = per_param x N, at least 1."""
    shape = Shape(int(n_layer), int(d_model), int(n_head), int(n_ctx))
    n = n_params(shape)
    return max(1, round(float(scale) * auto_batch_size(shape, n, float(per_param) * n)))


def _cooldown(field: str, point: Any, ends: Sequence[Any], cooldown_frac: Any, n_params: Any) -> Any:
    """A `train` key of one point of a cooldowns sweep (`sweeps/sweep/cooldowns.yaml`).

    `point` is `parent` (the constant-LR run of a size, which ends at the last branch point and keeps a
    checkpoint at every one) or the tokens per parameter D/N of one branch, one of `ends`; each branch
    decays over its last `cooldown_frac` of D, from its parent's checkpoint at (1 - cooldown_frac) D.
    """
    frac, n = float(cooldown_frac), int(n_params)
    ends = [float(e) for e in ends]
    parent = str(point) == "parent"
    if not parent and float(point) not in ends:
        raise UsageError(f"sweep.point={point} is not one of sweep.ends {ends} (or parent)")
    values = {
        "tokens_per_param": (1 - frac) * max(ends) if parent else float(point),
        "schedule": "constant" if parent else "wsd",
        "save_at": [round((1 - frac) * e * n) for e in ends] if parent else [],
        "branch_tokens": None if parent else round((1 - frac) * float(point) * n),
    }
    return values[field]


def _cooldown_parent(point: Any, sweep_dir: Any, override_dirname: Any) -> str | None:
    """The run folder of a cooldowns sweep point's parent: the point's own overrides with
    `sweep.point=parent` (None for the parent itself)."""
    if str(point) == "parent":
        return None
    name = re.sub(r"(^|,)sweep\.point=[^,]*", r"\1sweep.point=parent", str(override_dirname))
    return str(Path(str(sweep_dir)) / run_dirname(name))


def run_dirname(override_dirname: str) -> str:
    """A run's folder name from Hydra's `override_dirname` (`model=tiny_1m,train.tokens=2M`).

    Empty (no overrides) gives `default`; `/` in values (data paths) becomes `%2F` so that a run is one
    folder; a name longer than MAX_DIRNAME keeps its start and ends with a hash of the whole name.
    """
    name = override_dirname.replace("/", "%2F") or "default"
    if len(name) > MAX_DIRNAME:
        digest = hashlib.sha1(name.encode()).hexdigest()[:12]
        name = f"{name[: MAX_DIRNAME - 13]}-{digest}"
    return name


def register_resolvers() -> None:
    """Register the resolvers of sweeps/ with OmegaConf (idempotent): all of them, in one place.

    In YAML: `${n_params:${model.n_layer},${model.d_model}}` -> N;
    `${tokens_for_compute:1e15,${model.n_layer},${model.d_model}}` -> D = C / (6 N);
    `${shape_for_params:${.target_params},${.aspect},${.head_size},n_layer}` -> a field of the shape;
    `${run_dirname:${hydra.job.override_dirname}}` -> a run's folder name (the `hydra:` block);
    `${cooldown:KEY,...}` and `${cooldown_parent:...}` -> the train keys of a cooldowns sweep's point;
    `${recipe_lr:SCALE,n_layer,d_model,n_head}`, `${recipe_batch:SCALE,n_layer,d_model,n_head,n_ctx,D/N}` ->
    SCALE times the `auto` LR or batch (the grid of `sweeps/sweep/lr_batch.yaml`).
    """
    for name, func in (
        ("n_params", _n_params_resolver),
        ("tokens_for_compute", _tokens_for_compute),
        ("shape_for_params", _shape_for_params),
        ("run_dirname", run_dirname),
        ("cooldown", _cooldown),
        ("cooldown_parent", _cooldown_parent),
        ("recipe_lr", _recipe_lr),
        ("recipe_batch", _recipe_batch),
    ):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, func)


@dataclass(frozen=True)
class RunPlan:
    """A validated run: shape, budget (D tokens in `steps` optimizer steps) and hyperparameters."""

    shape: Shape
    n_params: int  # N, non-embedding
    tokens: int  # D actually trained: steps x batch_size x n_ctx
    steps: int
    batch_size: int  # sequences per optimizer step, over all devices
    micro_batch_size: int | None  # sequences per forward pass on one device; None: chosen by the trainer
    lr: float  # peak learning rate
    min_lr_ratio: float
    warmup_steps: int
    schedule: Schedule  # the LR of every step (a branch's warmup is its parent's: see the trainer)
    weight_decay: float
    beta1: float
    beta2: float
    grad_clip: float
    seed: int
    evals: int  # held-out evaluations, evenly spaced, the last at the final step
    eval_tokens: int  # held-out tokens per evaluation
    checkpoint_every_s: float  # seconds between checkpoints (besides those at evaluations)
    data_name: str
    unique_tokens: int  # size of the training split used (U)
    data_meta: dict[str, Any] = field(repr=False)
    save_at_steps: tuple[int, ...] = ()  # keep a checkpoint after each of these steps (branch points)
    branch_from: Path | None = None  # a cooldown branch: its parent's run folder
    branch_step: int = 0  # a branch: the parent's step it starts from (0 for other runs)

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.shape.n_ctx

    def lr_at(self, step: int) -> float:
        """The LR of 0-based optimizer step `step` (`scaling.training.schedule`)."""
        return self.schedule.lr_at(step)

    @property
    def branch_tokens(self) -> int:
        """Tokens the run's parent trained before a branch left it (0 for a run that is no branch)."""
        return self.branch_step * self.tokens_per_step

    def summary_fields(self) -> dict[str, Any]:
        s = self.shape
        return {
            "n_params": self.n_params,
            "n_layer": s.n_layer,
            "d_model": s.d_model,
            "n_head": s.n_head,
            "n_ctx": s.n_ctx,
            "vocab_size": s.vocab_size,
            "tokens": self.tokens,
            "unique_tokens": self.unique_tokens,
            "flops": training_flops(self.n_params, self.tokens),
            # what this run trained itself: a branch shares its parent's prefix, counted there once
            "flops_own": training_flops(self.n_params, self.tokens - self.branch_tokens),
            "schedule": self.schedule.schedule,
            "seed": self.seed,
        }


def _number(value: Any, key: str, integer: bool = False, allow_zero: bool = False) -> float:
    if isinstance(value, bool):
        raise UsageError(f"{key} must be a number, got {value!r}")
    if allow_zero and value == 0:
        return 0
    number = parse_quantity(value, key)
    if integer and number != int(number):
        raise UsageError(f"{key} must be a whole number, got {value!r}")
    return int(number) if integer else number


def _in_range(value: Any, key: str, low: float, high: float, top_open: bool = False) -> float:
    """A real number in [low, high] ([low, high) when top_open); UsageError naming `key` otherwise."""
    try:
        number = math.nan if isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not (low <= number < high if top_open else low <= number <= high):
        shown = f"[{low:g}, {high:g}{')' if top_open else ']'}"
        raise UsageError(f"{key} must be a number in {shown}, got {value!r}")
    return number


# Top-level keys besides the groups of `config_schema`: a sweep file's own `sweep:` node, and Hydra's.
FREE_KEYS = ("sweep", "hydra")


@functools.cache
def config_schema() -> dict[str, frozenset[str]]:
    """The keys each group of a run's config may hold: `train`'s as `config.yaml` gives them, `model`'s and
    `data`'s those of the shipped files of the group (sweeps/model/*.yaml, sweeps/data/*.yaml)."""
    schema = {"train": frozenset(_config_file().train)}
    for group in ("model", "data"):
        keys: set[str] = set()
        for path in sorted((CONFIG_DIR / group).glob("*.yaml")):
            keys.update(OmegaConf.load(path))
        schema[group] = frozenset(keys)
    return schema


def check_keys(cfg: DictConfig) -> None:
    """UsageError naming every key of `cfg` that no config reads (`+train.tokns=1M`, which Hydra's `+`
    adds without a word and the run would ignore), each with the nearest valid key."""
    schema = config_schema()
    unknown = [key for key in cfg if key not in schema and key not in FREE_KEYS]
    for group, keys in schema.items():
        node = cfg.get(group)
        if isinstance(node, DictConfig):
            unknown += [f"{group}.{key}" for key in node if key not in keys]
    if unknown:
        valid = [*schema, *FREE_KEYS, *(f"{group}.{key}" for group, keys in schema.items() for key in keys)]
        named = []
        for key in unknown:
            near = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
            named.append(f"{key}" + (f" (did you mean {near[0]}?)" if near else ""))
        raise UsageError(
            f"unknown config key{'s' if len(unknown) > 1 else ''} {', '.join(named)}: no run reads "
            f"{'them' if len(unknown) > 1 else 'it'}; the keys are those of sweeps/config.yaml, "
            "sweeps/model/ and sweeps/data/"
        )


def train_setting(train: DictConfig, key: str) -> Any:
    """`train.<key>` of a run's config, or its default from `config.yaml` when the config leaves it out."""
    return train.get(key, train_default(key))


@functools.lru_cache(maxsize=16)
def _data_meta(name: str, synthetic_items: tuple) -> dict[str, Any]:
    # imported here: Hydra's plugin discovery imports this module (through the sweeper) for every app
    from scaling.training.data import load_data

    return dict(load_data(name, dict(synthetic_items)).meta)


def synthetic_params(data: DictConfig | dict) -> dict[str, Any]:
    """The MarkovSource parameters of a `data` config node (only used when data.name is synthetic)."""
    params = data.get("synthetic") or {}
    if isinstance(params, DictConfig):
        params = OmegaConf.to_container(params, resolve=True)
    return {
        k: (int(parse_quantity(v, f"data.synthetic.{k}")) if k == "tokens" else v) for k, v in params.items()
    }


def plan_run(cfg: DictConfig) -> RunPlan:
    """Validate one run's config and resolve its `auto` values; UsageError names the problem and a fix.

    Loads (or prepares, once) the data, so a missing or corrupt corpus fails here, before training.
    """
    register_resolvers()
    check_keys(cfg)
    try:
        model, train, data = cfg.model, cfg.train, cfg.data
        setting = functools.partial(train_setting, train)
        m = {k: model.get(k) for k in ("n_layer", "d_model", "n_head", "n_ctx", "vocab_size")}
    except Exception as exc:  # interpolation errors from resolvers carry the UsageError text
        raise UsageError(f"bad config: {exc}") from None
    data_name = str(data.get("name") or "default")
    synth = synthetic_params(data) if data_name == "synthetic" else {}
    meta = _data_meta(data_name, tuple(sorted(synth.items())))
    if m["vocab_size"] is None:
        m["vocab_size"] = int(meta["vocab_size"])
    shape = validate_shape(**m)
    if shape.vocab_size < meta["vocab_size"]:
        raise UsageError(
            f"model.vocab_size={shape.vocab_size} is smaller than the data's vocabulary "
            f"({meta['vocab_size']}); leave model.vocab_size=null to take the data's"
        )
    n = n_params(shape)

    tokens, per_param = train.get("tokens"), train.get("tokens_per_param")
    if (tokens is None) == (per_param is None):
        raise UsageError(
            "give the token budget as exactly one of train.tokens=D (e.g. 2e6 or 2M) "
            "or train.tokens_per_param=R (e.g. 20)"
        )
    budget = (
        _number(tokens, "train.tokens")
        if tokens is not None
        else _number(per_param, "train.tokens_per_param") * n
    )

    batch, lr = setting("batch_size"), setting("lr")
    laws = None
    if "law" in (batch, lr):
        if not setting("hparams"):
            raise UsageError("train.lr=law and train.batch_size=law need train.hparams=FILE.json "
                             "(written by `scaling hparams --json`)")
        laws = read_hparam_laws(setting("hparams"))
    if batch == "law":
        batch = laws.law_batch_size(shape, n, budget)
    elif batch in (None, "auto"):
        batch = auto_batch_size(shape, n, budget)
    else:
        batch = _number(batch, "train.batch_size", True)
    micro = setting("micro_batch_size")
    micro = None if micro in (None, "auto") else _number(micro, "train.micro_batch_size", True)
    if micro is not None and batch % micro:
        raise UsageError(f"train.batch_size={batch} is not a multiple of train.micro_batch_size={micro}")
    per_step = batch * shape.n_ctx
    if budget < per_step:
        raise UsageError(
            f"token budget {budget:.4g} is smaller than one batch ({batch} sequences x {shape.n_ctx} tokens "
            f"= {per_step} tokens); raise train.tokens or lower train.batch_size"
        )
    steps = round(budget / per_step)
    if steps < MIN_STEPS:
        raise UsageError(
            f"token budget {budget:.4g} gives only {steps} optimizer steps of {per_step} tokens; need at "
            f"least {MIN_STEPS}: raise train.tokens to >= {MIN_STEPS * per_step} or lower train.batch_size"
        )

    unique = data.get("unique_tokens")
    n_train = int(meta["n_train"])
    if unique is None:
        unique = n_train
    else:
        unique = _number(unique, "data.unique_tokens", True)
        if unique > n_train:
            raise UsageError(
                f"data.unique_tokens={unique} exceeds the {n_train} tokens of the training split "
                f"of {data_name}"
            )
        if unique < 2 * (shape.n_ctx + 1):
            raise UsageError(f"data.unique_tokens={unique} is less than two windows of n_ctx={shape.n_ctx}")

    if lr == "law":
        lr = laws.law_lr(n, budget)
    else:
        lr = auto_lr(shape, n) if lr in (None, "auto") else _number(lr, "train.lr")
    warmup = _in_range(setting("warmup_frac"), "train.warmup_frac", 0, 1, top_open=True)
    min_lr_ratio = _in_range(setting("min_lr_ratio"), "train.min_lr_ratio", 0, 1)
    seed = setting("seed")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise UsageError(f"train.seed must be a non-negative integer, got {seed!r}")
    # Checked here, not in the trainer, so that bad values fail before anything is written.
    threads = setting("threads")
    if threads is not None:
        _number(threads, "train.threads", integer=True)
    warmup_steps = max(1, round(warmup * steps))
    schedule, branch_from, branch_step, save_at = _plan_schedule(setting, steps, per_step, lr, warmup_steps,
                                                                 min_lr_ratio)  # fmt: skip
    return RunPlan(
        shape=shape,
        n_params=n,
        tokens=steps * per_step,
        steps=steps,
        batch_size=batch,
        micro_batch_size=micro,
        lr=lr,
        min_lr_ratio=min_lr_ratio,
        warmup_steps=warmup_steps,
        schedule=schedule,
        weight_decay=_in_range(setting("weight_decay"), "train.weight_decay", 0, math.inf, True),
        beta1=_in_range(setting("beta1"), "train.beta1", 0, 1, top_open=True),
        beta2=_in_range(setting("beta2"), "train.beta2", 0, 1, top_open=True),
        grad_clip=_number(setting("grad_clip"), "train.grad_clip"),
        seed=seed,
        evals=int(_number(setting("evals"), "train.evals", integer=True)),
        eval_tokens=int(_number(setting("eval_tokens"), "train.eval_tokens", integer=True)),
        checkpoint_every_s=float(
            _number(setting("checkpoint_every_s"), "train.checkpoint_every_s", allow_zero=True)
        ),
        data_name=data_name,
        unique_tokens=unique,
        data_meta=meta,
        save_at_steps=save_at,
        branch_from=branch_from,
        branch_step=branch_step,
    )


def _plan_schedule(
    setting, steps: int, per_step: int, lr: float, warmup_steps: int, min_lr_ratio: float
) -> tuple[Schedule, Path | None, int, tuple[int, ...]]:
    """The run's LR schedule, its parent and branch step (a cooldown branch), and the steps after which
    it keeps checkpoints (`train.save_at`), from the schedule keys; UsageError naming a bad one."""
    kind, shape = setting("schedule"), setting("decay_shape")
    if kind not in SCHEDULES:
        raise UsageError(f"train.schedule must be one of {', '.join(SCHEDULES)}, got {kind!r}")
    if shape not in DECAY_SHAPES:
        raise UsageError(f"train.decay_shape must be one of {', '.join(DECAY_SHAPES)}, got {shape!r}")
    decay_frac = _in_range(setting("decay_frac"), "train.decay_frac", 0, 1)
    if kind == "wsd" and decay_frac == 0:
        raise UsageError("train.decay_frac=0 never decays; use train.schedule=constant for that")
    decay_start = decay_start_for(kind, steps, decay_frac)
    save_at = setting("save_at") or []
    if isinstance(save_at, str | int | float):
        save_at = [save_at]
    save_steps = []
    for value in save_at:
        step = round(_number(value, "train.save_at") / per_step)
        if not 1 <= step <= steps:
            raise UsageError(
                f"train.save_at={value} is step {step} of {steps} ({per_step} tokens per step): give token "
                "counts inside the run, from its first step to its end"
            )
        save_steps.append(step)
    parent, branch_step = setting("branch_from"), 0
    if parent is None:
        if setting("branch_tokens") is not None:
            raise UsageError("train.branch_tokens needs train.branch_from=RUN_DIR (the parent run folder)")
    else:
        if kind != "wsd":
            raise UsageError(
                f"a cooldown branch (train.branch_from) decays like a wsd run: set train.schedule=wsd, "
                f"not {kind}"
            )
        tokens = setting("branch_tokens")
        if tokens is not None:
            decay_start = round(_number(tokens, "train.branch_tokens") / per_step)
        branch_step = decay_start
        if not warmup_steps <= branch_step < steps:
            raise UsageError(
                f"train.branch_tokens={tokens} is step {branch_step} of the branch's {steps} steps: it must "
                f"lie after the {warmup_steps} warmup steps and before train.tokens"
            )
        parent = Path(str(parent))
    schedule = Schedule(kind, lr, steps, warmup_steps, min_lr_ratio, decay_start, shape)
    return schedule, parent, branch_step, tuple(sorted(set(save_steps)))


def resolved_config(cfg: DictConfig, plan: RunPlan) -> dict[str, Any]:
    """The run's config as plain data with `auto` and null values replaced by what the run uses."""
    out = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(out, dict)
    out["model"].update({k: v for k, v in asdict(plan.shape).items()})
    out["train"].update(
        {"batch_size": plan.batch_size, "lr": plan.lr, "tokens": plan.tokens, "tokens_per_param": None}
    )
    out["data"]["unique_tokens"] = plan.unique_tokens
    return out


def identity(config: dict[str, Any]) -> dict[str, Any]:
    """The part of a resolved config that determines the run's result (execution keys removed)."""
    execution = execution_keys()
    train = {
        k: v
        for k, v in config.get("train", {}).items()
        if k not in execution and not (k in SCHEDULE_KEYS and v == train_default(k))
    }
    return {"model": config.get("model"), "data": config.get("data"), "train": train}


def identity_hash(config: dict[str, Any]) -> str:
    """A short hash of a resolved config's identity: equal for configs that train the same run."""
    text = json.dumps(identity(config), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def identity_changes(saved: dict[str, Any], resolved: dict[str, Any]) -> list[str]:
    """What differs between two resolved configs' identities, as `key: old -> new` (dotted keys, sorted)."""

    def flat(obj: Any, prefix: str, out: dict[str, Any]) -> dict[str, Any]:
        if isinstance(obj, dict):
            for key, value in obj.items():
                flat(value, f"{prefix}.{key}" if prefix else str(key), out)
        else:
            out[prefix] = obj
        return out

    old, new = flat(identity(saved), "", {}), flat(identity(resolved), "", {})
    missing = "(unset)"
    return [
        f"{key}: {old.get(key, missing)} -> {new.get(key, missing)}"
        for key in sorted(set(old) | set(new))
        if old.get(key, missing) != new.get(key, missing)
    ]


def run_folder_changes(run_dir: Path, resolved: dict[str, Any]) -> list[str]:
    """How the run saved in run_dir/config.yaml differs from `resolved` ([] when same, or no run yet).

    The trainer refuses a folder with changes; the sweeper applies the same check to every run of a sweep
    before it launches any. UsageError when config.yaml cannot be read.
    """
    path = Path(run_dir) / "config.yaml"
    if not path.exists():
        return []
    try:
        saved = OmegaConf.to_container(OmegaConf.load(path))
    except (ValueError, yaml.YAMLError, OmegaConfBaseException):  # ValueError: not UTF-8
        saved = None
    if not isinstance(saved, dict):
        raise UsageError(
            f"run folder {run_dir} has a damaged config.yaml; give another folder (hydra.run.dir=...) "
            "or delete this one"
        )
    return identity_changes(saved, resolved)


def compose_run_config(overrides: Sequence[str] = ()) -> DictConfig:
    """One run's config as `scaling-train OVERRIDES...` composes it, for notebooks and tests."""
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        return compose("config", overrides=list(overrides))
