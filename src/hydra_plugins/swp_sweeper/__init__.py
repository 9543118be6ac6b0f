"""Hydra sweeper plugin of the swp project (Hydra finds sweepers only under ``hydra_plugins``)."""
