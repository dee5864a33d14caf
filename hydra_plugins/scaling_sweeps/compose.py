"""Each point of a sweep composed as Hydra composes it, the config-group choices once per distinct set.

Hydra's `load_sweep_config` builds a fresh config repository and defaults tree for every point, about
80 ms of CPU each here: 90 % of a 200-point dry run. Points that differ only in plain values (`train.lr=...`,
`+sweep.x=...`) share one defaults tree, so `JobComposer` composes once per distinct tuple of group
overrides (`model=...`, `+sweep=...`, `~data`) and applies the value overrides to a copy of that config
with Hydra's own override code, in Hydra's order. `tests/test_sweep_compose.py` checks that every job's
config, run folder and `.hydra/` files come out byte for byte as from Hydra's own composition.
"""

from __future__ import annotations

import copy

from hydra._internal.config_loader_impl import ConfigLoaderImpl, get_overrides_dirname
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from omegaconf import DictConfig


class JobComposer:
    """overrides -> the job's config, as `load_sweep_config(master, overrides)` composes it, with
    HydraConfig set to it (so that `${hydra:job...}` in it resolves as in the job: a cooldown branch names
    its parent's folder by its own overrides).

    Parameters
    ----------
    loader : the sweep's Hydra config loader (`hydra_context.config_loader`).
    master : the sweep's own config (the sweeper's `self.config`, composed in MULTIRUN mode).
    reuse : False composes every job afresh with Hydra (the baseline of the benchmark and the tests).
    """

    def __init__(self, loader: ConfigLoaderImpl, master: DictConfig, reuse: bool = True) -> None:
        self.loader = loader
        self.master = master
        self.reuse = reuse
        self._parser = OverridesParser.create()
        # Which keys are config groups, as Hydra decides it for these jobs: the repository on the search
        # path of the sweep's primary config and its hydra overrides (constant over the sweep).
        _, self._repo = loader._parse_overrides_and_create_caching_repo(
            master.hydra.job.config_name, list(master.hydra.overrides.hydra)
        )
        self._bases: dict[tuple[str, ...], DictConfig] = {}  # group overrides -> composed config
        self._parsed: dict[str, Override] = {}

    def __call__(self, overrides: list[str]) -> DictConfig:
        cfg = self._compose(overrides) if self.reuse else self.compose_fully(overrides)
        HydraConfig.instance().set_config(cfg)
        return cfg

    def compose_fully(self, overrides: list[str]) -> DictConfig:
        """Hydra's own composition of one job: a fresh repository and defaults tree."""
        return self.loader.load_sweep_config(self.master, overrides)

    def _compose(self, overrides: list[str]) -> DictConfig:
        try:
            parsed = [self._parse(line) for line in overrides]
            # Composed by Hydra in full: `hydra.*` overrides (they feed what Hydra computes after composing:
            # the search path, hydra.overrides.hydra, env_set, the override_dirname settings) and sweep
            # syntax (`a=1,2`, refused by Hydra for a job).
            if not any(o.is_hydra_override() or o.is_sweep_override() for o in parsed):
                return self._apply(parsed)
        except Exception:  # a bad override: Hydra composes the job and words the error itself
            pass
        return self.compose_fully(overrides)

    def _parse(self, line: str) -> Override:
        if line not in self._parsed:  # the points of a sweep share their overrides: each parsed once
            (self._parsed[line],) = self._parser.parse_overrides([line])
        return self._parsed[line]

    def _apply(self, parsed: list[Override]) -> DictConfig:
        # Hydra's own split (defaults_list.Overrides): a config group's choice, unless its value is a dict,
        # shapes the defaults tree; anything else is a config override, applied to the composed config.
        is_value = [
            isinstance(o.value(), dict) or not self._repo.group_exists(o.key_or_group) for o in parsed
        ]
        values = [o for o, value in zip(parsed, is_value, strict=True) if value]
        groups = tuple(o.input_line for o, value in zip(parsed, is_value, strict=True) if not value)
        if groups not in self._bases:
            self._bases[groups] = self.compose_fully(list(groups))
        # A copy, with the resolver cache Hydra copied from the master (pickle would take a third of the
        # time, but the sources load no pickle: tests/test_security.py).
        cfg = copy.deepcopy(self._bases[groups])
        # After the master's hydra overrides, as in Hydra's composition, which applies them first.
        ConfigLoaderImpl._apply_overrides_to_config(values, cfg)
        # What Hydra derives from the job's overrides: all of them, in the order given (none is hydra.*).
        cfg.hydra.overrides.task = [o.input_line for o in parsed]
        names = cfg.hydra.job.config.override_dirname
        cfg.hydra.job.override_dirname = get_overrides_dirname(
            overrides=parsed, kv_sep=names.kv_sep, item_sep=names.item_sep, exclude_keys=names.exclude_keys
        )
        return cfg
