"""Hydra plugins of the `scaling` toolkit (Hydra loads plugins only from the `hydra_plugins` namespace).

- `sweeper.ScalingSweeper` (`hydra/sweeper=scaling`): checks the whole sweep before launch, skips finished
  runs, ends with a summary; the logic is in `scaling.training.sweep`.
- `compose.JobComposer`: each point's config as Hydra composes it, for the sweeper's check before launch,
  composed once per set of config-group choices.
- `slurm.ScalingSlurmLauncher` (`hydra/launcher=slurm`): hydra-submitit-launcher's SLURM launcher that
  reports a cancelled or killed job instead of failing the whole sweep, and gives a multi-GPU run one task
  per GPU (DDP).
"""
