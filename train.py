"""The one entrypoint: `python train.py pruner=swp prune_rate=0.6` (see README.md).

Everything lives in the installable `swp` package: `swp.cli.main` holds the failure policy
(exit codes, error.json, sweep behaviour) and `swp.cli.run(cfg)` is the library API.
"""

import hydra
from omegaconf import DictConfig

from swp import cli


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    return cli.main(cfg)


if __name__ == "__main__":
    main()
