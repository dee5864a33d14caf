"""Token data: the built-in corpus, a user's text (`scaling prepare`), a synthetic source, and batching.

A prepared data folder holds `train.bin` and `val.bin` (uint16 tokens, memory-mapped) and `meta.json`
(written last, so a folder without it is not prepared). Tokenisation is byte-level (vocabulary 256).
The split is deterministic: the token stream is cut into blocks and every tenth block is held out, so the
validation text is spread over the whole corpus rather than being its last chapters.

The built-in corpus and synthetic sources are prepared once into a cache folder (`$SCALING_CACHE`, else
`$XDG_CACHE_HOME/scaling`, else `~/.cache/scaling`); every file is written atomically, so concurrent runs
preparing the same data never see each other's half-written files.

Torch-free: batches come out as numpy arrays; the trainer moves them to its device.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from scaling.errors import UsageError
from scaling.io import FOLDER_MODE, atomic_write_bytes, atomic_write_json

FORMAT = "scaling-tokens/1"
VAL_EVERY = 10  # every tenth block goes to the validation split
MAX_BLOCK = 32_768  # tokens per split block
MIN_TOKENS = 2_000
HASH_LIMIT = 1 << 30  # token files up to 1 GiB are checked against their hash on every load
BUILTIN = "shakespeare.txt.gz"


@dataclass(frozen=True)
class TokenData:
    """A prepared token folder: memory-mapped splits and their meta (vocabulary, counts, entropies)."""

    folder: Path
    meta: dict[str, Any]
    train: np.ndarray
    val: np.ndarray

    @property
    def vocab_size(self) -> int:
        return int(self.meta["vocab_size"])

    @property
    def unigram_entropy(self) -> float:
        """Entropy of the training split's token frequencies, nats/token: the loss of a unigram model."""
        return float(self.meta["unigram_entropy"])

    @property
    def entropy_rate(self) -> float | None:
        """True entropy rate of the source in nats/token (synthetic sources only): the irreducible loss E."""
        rate = self.meta.get("entropy_rate")
        return None if rate is None else float(rate)


def cache_dir() -> Path:
    """Where prepared built-in and synthetic data live."""
    if os.environ.get("SCALING_CACHE"):
        return Path(os.environ["SCALING_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "scaling"


def _sha256(data: bytes | np.ndarray) -> str:
    return hashlib.sha256(memoryview(data).cast("B") if isinstance(data, np.ndarray) else data).hexdigest()


def _block(n_tokens: int) -> int:
    return min(MAX_BLOCK, max(64, n_tokens // 100))


def split_tokens(tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic train/validation split: blocks of min(32768, n/100) tokens, every tenth held out."""
    block = _block(len(tokens))
    index = np.arange(len(tokens)) // block
    held_out = index % VAL_EVERY == VAL_EVERY - 1
    return tokens[~held_out], tokens[held_out]


def unigram_entropy(tokens: np.ndarray, vocab_size: int) -> float:
    """Entropy of the empirical token distribution, nats/token."""
    p = np.bincount(tokens, minlength=vocab_size) / len(tokens)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def write_prepared(
    out: Path, tokens: np.ndarray, vocab_size: int, source: str, source_sha256: str, **extra: Any
) -> TokenData:
    """Split `tokens`, write the token files and then the meta (the commit marker) into `out`."""
    if len(tokens) < MIN_TOKENS:
        raise UsageError(f"{source}: only {len(tokens)} tokens; need at least {MIN_TOKENS} (bytes of text)")
    train, val = split_tokens(np.ascontiguousarray(tokens, dtype=np.uint16))
    out.mkdir(parents=True, exist_ok=True)
    (out / "meta.json").unlink(missing_ok=True)  # the folder is unprepared until the new meta lands
    atomic_write_bytes(out / "train.bin", train.tobytes())
    atomic_write_bytes(out / "val.bin", val.tobytes())
    meta = {
        "format": FORMAT,
        "tokenizer": "bytes" if vocab_size == 256 else "ids",
        "vocab_size": vocab_size,
        "n_tokens": len(tokens),
        "n_train": len(train),
        "n_val": len(val),
        "split": f"blocks of {_block(len(tokens))} tokens, every {VAL_EVERY}th held out",
        "source": source,
        "source_sha256": source_sha256,
        "train_sha256": _sha256(train),
        "val_sha256": _sha256(val),
        "unigram_entropy": unigram_entropy(train, vocab_size),
        "entropy_rate": None,
        **extra,
    }
    atomic_write_json(out / "meta.json", meta)
    return load_prepared(out)


def load_prepared(folder: str | os.PathLike, *, fix: str | None = None) -> TokenData:
    """Open a prepared folder, checking that its token files are what its meta says. `fix` is the advice
    every error ends with (default: prepare the folder again)."""
    folder = Path(folder)
    command = f"`scaling prepare TEXT... --out {folder}`"
    fix = fix or f"rerun {command}"
    try:
        if not folder.is_dir():
            raise UsageError(f"data folder {folder} does not exist; prepare it with {command}")
        meta = json.loads((folder / "meta.json").read_text())
    except FileNotFoundError:
        raise UsageError(f"{folder} is not a prepared data folder (no meta.json); {fix}") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UsageError(f"{folder}/meta.json is corrupt; {fix}") from None
    except OSError as exc:  # another user's folder (no permission), an I/O error
        raise UsageError(f"cannot read data folder {folder} ({exc.strerror or exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise UsageError(f"{folder}/meta.json is not a {FORMAT} meta file; {fix}")
    splits = {}
    for split in ("train", "val"):
        path = folder / f"{split}.bin"
        count = meta[f"n_{split}"]
        try:
            if not path.is_file() or path.stat().st_size != 2 * count:
                raise UsageError(f"token file {path} is missing or not {count} tokens long (corrupt); {fix}")
            tokens = np.memmap(path, dtype=np.uint16, mode="r") if count else np.zeros(0, np.uint16)
        except OSError as exc:
            raise UsageError(f"cannot read token file {path} ({exc.strerror or exc})") from None
        if 2 * count <= HASH_LIMIT and _sha256(tokens) != meta[f"{split}_sha256"]:
            raise UsageError(f"token file {path} does not match its hash in meta.json (corrupt); {fix}")
        splits[split] = tokens
    return TokenData(folder, meta, splits["train"], splits["val"])


def prepare_text(paths: list[str | os.PathLike], out: str | os.PathLike) -> TokenData:
    """Byte-tokenise text files (concatenated in the given order) into the prepared folder `out`."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"`out` {out} is a file; give a folder")
    if out.resolve().is_relative_to(cache_dir().resolve()):
        raise UsageError(
            f"`out` {out} is inside the data cache {cache_dir()}, which holds the built-in and synthetic "
            "data under names of their own; give a folder outside it"
        )
    if out.is_dir() and any(out.iterdir()) and not (out / "meta.json").exists():
        raise UsageError(f"`out` {out} is a non-empty folder that is not prepared data; give a new folder")
    chunks = []
    for path in paths:
        try:
            chunks.append(Path(path).read_bytes())
        except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
            raise UsageError(f"cannot read text file {path}: {exc.strerror}") from None
    text = b"".join(chunks)
    tokens = np.frombuffer(text, dtype=np.uint8).astype(np.uint16)
    names = ", ".join(Path(p).name for p in paths)
    return write_prepared(out, tokens, 256, f"bytes of {names}", _sha256(text))


def _cached(key: str, source_sha256: str, build) -> TokenData:
    """The cache entry `key` of the data whose source hashes to `source_sha256`, built on first use.

    An entry is checked against its name: data of another source in it (a folder copied or prepared
    over) is refused, never trained on under the wrong name. Entries are as readable as the umask allows
    (group and others usually), so one SCALING_CACHE can serve several users."""
    folder = cache_dir() / key
    fix = f"delete the entry (rm -r {folder}); the next run rebuilds it"
    try:
        data = load_prepared(folder, fix=fix)
    except UsageError:
        if not _unbuilt(folder):
            raise  # a complete but corrupt or unreadable cache entry: report it rather than hide it
    else:
        if data.meta.get("source_sha256") != source_sha256:
            raise UsageError(
                f"data cache entry {folder} holds {data.meta.get('source')!r} (source sha256 "
                f"{str(data.meta.get('source_sha256'))[:12]}), not the data its name stands for; {fix}"
            )
        return data
    # Runs starting together build the same entry: each builds in a private folder, the first rename wins,
    # so no run ever sees (or deletes) another's half-written files.
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{key}."))
    except OSError as exc:
        raise UsageError(
            f"cannot write the data cache {folder.parent} ({exc.strerror or exc}); "
            "set SCALING_CACHE to a folder you can write"
        ) from None
    try:
        build(staging)
        os.chmod(staging, FOLDER_MODE)  # mkdtemp's folder is private; an entry is for every reader
        for _ in range(2):
            try:
                os.rename(staging, folder)
                break
            except OSError:
                if (folder / "meta.json").exists():
                    break  # another run installed the same entry first
                shutil.rmtree(folder, ignore_errors=True)  # what an interrupted older build left
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return load_prepared(folder, fix=fix)


def _unbuilt(folder: Path) -> bool:
    """True when a cache entry has no meta.json (never built, or its build was interrupted)."""
    try:
        (folder / "meta.json").stat()
    except FileNotFoundError:
        return True
    except OSError:  # there but unreadable (another user's private entry): not ours to rebuild
        return False
    return False


def builtin_corpus() -> TokenData:
    """The built-in corpus (Shakespeare, 5.06 MB of ASCII, see docs/training.md), prepared on first use."""
    try:
        raw = resources.files("scaling").joinpath("corpus", BUILTIN).read_bytes()
        text = gzip.decompress(raw)
    except (FileNotFoundError, OSError, EOFError) as exc:
        raise UsageError(
            f"the built-in corpus scaling/corpus/{BUILTIN} is missing or damaged ({exc}); "
            "reinstall the package (`make setup`) or use data.name=PATH of a `scaling prepare` folder"
        ) from None
    digest = _sha256(text)

    def build(folder: Path) -> TokenData:
        tokens = np.frombuffer(text, dtype=np.uint8).astype(np.uint16)
        return write_prepared(folder, tokens, 256, f"built-in {BUILTIN}", digest)

    return _cached(f"shakespeare-{digest[:12]}", digest, build)


@dataclass(frozen=True)
class MarkovSource:
    """A random sparse Markov chain of order `order` over `vocab_size` tokens, with an exact entropy rate.

    Each context (the last `order` tokens) has `successors` random next tokens with Dirichlet(1)
    probabilities, mixed with a uniform distribution of weight `noise` (which makes the chain ergodic).
    """

    # Defaults: a sparse bigram source (E = 1.89 nats/token) that tiny models learn on a CPU, with a
    # strong dependence on N (10k -> 3.32, 100k -> 2.08, 1M -> 1.99 nats/token after 1M tokens).
    # Order-2 tables of this size stay far above E at those budgets.
    vocab_size: int = 256
    order: int = 1
    successors: int = 8
    noise: float = 0.02
    seed: int = 0

    def __post_init__(self) -> None:
        V = self.vocab_size
        if not (2 <= V <= 65536 and self.order >= 1 and 1 <= self.successors <= V):
            raise UsageError(
                "synthetic source needs 2 <= vocab_size <= 65536, order >= 1, 1 <= successors <= vocab_size"
            )
        if V**self.order > 1 << 22:
            raise UsageError(f"synthetic source has {V}^{self.order} contexts; keep it under 4M (2^22)")
        if not 0 < self.noise <= 1:
            raise UsageError(f"synthetic noise must lie in (0, 1], got {self.noise}")

    def transitions(self) -> np.ndarray:
        """Next-token probabilities, one row per context (contexts numbered base vocab_size)."""
        rng = np.random.default_rng([self.seed, 0])
        n_ctx, V = self.vocab_size**self.order, self.vocab_size
        P = np.full((n_ctx, V), self.noise / V)
        succ = np.argsort(rng.random((n_ctx, V)), axis=1)[:, : self.successors]
        weights = rng.dirichlet(np.ones(self.successors), size=n_ctx)
        np.add.at(P, (np.arange(n_ctx)[:, None], succ), (1 - self.noise) * weights)
        return P

    def stationary(self, P: np.ndarray) -> np.ndarray:
        """Stationary distribution over contexts, by power iteration (the noise makes it converge)."""
        n_ctx, V = P.shape
        nxt = (np.arange(n_ctx)[:, None] * V + np.arange(V)[None, :]) % n_ctx
        pi = np.full(n_ctx, 1.0 / n_ctx)
        for _ in range(100_000):
            new = np.bincount(nxt.ravel(), weights=(pi[:, None] * P).ravel(), minlength=n_ctx)
            if np.abs(new - pi).sum() < 1e-15:
                return new
            pi = new
        return pi

    def entropy_rate(self) -> float:
        """H = sum over contexts of pi(context) H(next | context), nats/token."""
        P = self.transitions()
        pi = self.stationary(P)
        return float(-(pi[:, None] * P * np.log(P)).sum())

    def sample(self, n_tokens: int, chains: int = 64) -> np.ndarray:
        """`n_tokens` tokens from `chains` independent stationary runs of the chain, concatenated.

        Running chains side by side vectorises the sampling; the chains-1 seams are a 1e-5 fraction of
        a few-million-token sample.
        """
        P = self.transitions()
        cum = np.cumsum(P, axis=1)
        n_ctx, V = P.shape
        rng = np.random.default_rng([self.seed, 1])
        length = math.ceil(n_tokens / chains)
        ctx = rng.choice(n_ctx, size=chains, p=self.stationary(P))
        out = np.empty((chains, length), dtype=np.uint16)
        for t in range(length):
            tok = np.minimum((cum[ctx] < rng.random(chains)[:, None]).sum(axis=1), V - 1)
            out[:, t] = tok
            ctx = (ctx * V + tok) % n_ctx
        return out.reshape(-1)[:n_tokens]


def synthetic(tokens: int = 5_000_000, **params: Any) -> TokenData:
    """Prepared (cached) tokens from a `MarkovSource(**params)`; meta holds its exact `entropy_rate`."""
    source = MarkovSource(**params)
    spec = {"generator": "markov/1", "tokens": int(tokens), **source.__dict__}
    key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]

    def build(folder: Path) -> TokenData:
        sample = source.sample(int(tokens))
        return write_prepared(
            folder,
            sample,
            source.vocab_size,
            f"synthetic order-{source.order} Markov chain",
            key,
            entropy_rate=source.entropy_rate(),
            synthetic=spec,
        )

    return _cached(f"synthetic-{key}", key, build)


def load_data(name: str, synthetic_params: dict[str, Any] | None = None) -> TokenData:
    """`default` (the built-in corpus), `synthetic` (a MarkovSource), or the path of a prepared folder."""
    if name == "default":
        return builtin_corpus()
    if name == "synthetic":
        return synthetic(**(synthetic_params or {}))
    return load_prepared(Path(name).expanduser())


class WindowSampler:
    """The deterministic order in which training windows are seen, epoch by epoch.

    The training tokens are cut into M non-overlapping windows of n_ctx + 1 tokens; epoch e visits them in
    a random permutation and at a random offset, both seeded by (seed, e). Position k of the stream is
    window k mod M of epoch k // M, so resuming needs only the number of windows consumed.
    """

    def __init__(self, tokens: np.ndarray, n_ctx: int, seed: int) -> None:
        self.tokens, self.n_ctx, self.seed = tokens, n_ctx, seed
        self.windows_per_epoch = len(tokens) // n_ctx - 1  # fits any offset below n_ctx
        if self.windows_per_epoch < 1:
            raise UsageError(
                f"the training split has {len(tokens)} tokens, fewer than two windows of n_ctx={n_ctx}; "
                "use more data or a smaller model.n_ctx"
            )
        self._epoch: tuple[int, np.ndarray, int] | None = None

    def _order(self, epoch: int) -> tuple[np.ndarray, int]:
        if self._epoch is None or self._epoch[0] != epoch:
            rng = np.random.default_rng([self.seed, epoch])
            self._epoch = (epoch, rng.permutation(self.windows_per_epoch), int(rng.integers(self.n_ctx)))
        return self._epoch[1], self._epoch[2]

    def starts(self, first: int, count: int) -> np.ndarray:
        """Start offsets (in tokens) of stream windows first .. first + count - 1."""
        out = np.empty(count, dtype=np.int64)
        for j, k in enumerate(range(first, first + count)):
            perm, offset = self._order(k // self.windows_per_epoch)
            out[j] = offset + perm[k % self.windows_per_epoch] * self.n_ctx
        return out

    def batch(self, first: int, count: int) -> np.ndarray:
        """(count, n_ctx + 1) int64 tokens: inputs are [:, :-1], targets [:, 1:]."""
        return gather(self.tokens, self.starts(first, count), self.n_ctx + 1)


def gather(tokens: np.ndarray, starts: np.ndarray, length: int) -> np.ndarray:
    return tokens[starts[:, None] + np.arange(length)].astype(np.int64)


def eval_starts(tokens: np.ndarray, n_ctx: int, max_tokens: int) -> np.ndarray:
    """Starts of the held-out windows used at every evaluation: evenly spread over the split."""
    count = min(max(1, max_tokens // n_ctx), (len(tokens) - 1) // n_ctx)
    if count < 1:
        raise UsageError(
            f"the validation split has {len(tokens)} tokens, less than one window of n_ctx={n_ctx}; "
            "use more data or a smaller model.n_ctx"
        )
    return np.linspace(0, len(tokens) - n_ctx - 1, count).astype(np.int64)
