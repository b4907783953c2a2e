"""Task runner selection: threads (default), Dask or Ray, from the build config."""

from __future__ import annotations

from pipeline.errors import ConfigError
from pipeline.stages.build import RunnerConfig


def task_runner(cfg: RunnerConfig):
    """The Prefect task runner ``cfg`` asks for."""
    if cfg.kind == "threads":
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner(max_workers=cfg.max_workers)
    if cfg.kind == "dask":
        try:
            from prefect_dask import DaskTaskRunner
        except ImportError as exc:
            raise ConfigError(
                ["runner.kind=dask needs prefect-dask: pip install 'lengthwise[dask]'"], "runner"
            ) from exc
        if cfg.address:
            return DaskTaskRunner(address=cfg.address)
        return DaskTaskRunner(
            cluster_kwargs={
                "n_workers": cfg.max_workers,
                "threads_per_worker": 1,
                "processes": True,
                "dashboard_address": None,
            }
        )
    try:
        from prefect_ray import RayTaskRunner
    except ImportError as exc:
        raise ConfigError(
            ["runner.kind=ray needs prefect-ray: pip install 'lengthwise[ray]'"], "runner"
        ) from exc
    if cfg.address:
        return RayTaskRunner(address=cfg.address)
    return RayTaskRunner(init_kwargs={"num_cpus": cfg.max_workers, "include_dashboard": False})
