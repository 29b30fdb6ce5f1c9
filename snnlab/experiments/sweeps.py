"""Grid sweeps over experiment configurations, on any ``concurrent.futures.Executor``.

Each grid point trains one run (logged in the run store when one is given) in a worker; the
result is the trade-off table (one row per run: the varied settings and the metrics of the model
as deployed) and its Pareto front.

Example:
    >>> from snnlab.training import ExperimentConfig
    >>> base = ExperimentConfig(hidden=[32], epochs=1, max_batches_per_epoch=3)
    >>> [c.neuron for c in expand_grid(base, {"neuron": ["ttfs", "multi_spike"]})]
    ['ttfs', 'multi_spike']
"""
from __future__ import annotations

import itertools
import multiprocessing
import os
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from snnlab.metrics.pareto import pareto_front
from snnlab.metrics.robustness import perturb, robustness_curve
from snnlab.training.config import ConfigError, ExperimentConfig

DEFAULT_OBJECTIVES = {"accuracy": "max", "spikes_per_sample": "min"}
METRIC_COLUMNS = ("accuracy", "loss", "spikes_per_sample", "synops_per_sample", "energy_per_sample_j",
                  "latency_steps")


def expand_grid(base: ExperimentConfig, grid: dict[str, list]) -> list[ExperimentConfig]:
    """Every combination of ``grid`` applied to ``base`` (validated; bad keys or values raise ``ConfigError``)."""
    if not isinstance(grid, dict) or not grid:
        raise ConfigError("sweep grid must be a non-empty dict {field: [values, ...]}")
    unknown = [k for k in grid if k not in ExperimentConfig.fields()]
    if unknown:
        raise ConfigError(f"sweep grid: unknown field(s) {unknown}; valid fields are {ExperimentConfig.fields()}")
    for k, v in grid.items():
        if not isinstance(v, (list, tuple)) or len(v) == 0:
            raise ConfigError(f"sweep grid: {k!r} needs a non-empty list of values, got {v!r}")
    keys = list(grid)
    return [ExperimentConfig.from_dict({**base.to_dict(), **dict(zip(keys, combo))})
            for combo in itertools.product(*(grid[k] for k in keys))]


def _robustness_list(robustness) -> list[tuple[str, float]]:
    """``None``, one ``(kind, level)`` or a list of them -> a checked list (``ValueError`` for a bad one)."""
    if robustness is None:
        return []
    if isinstance(robustness, tuple) and len(robustness) == 2 and isinstance(robustness[0], str):
        robustness = [robustness]
    out = []
    for r in robustness:
        if not isinstance(r, (tuple, list)) or len(r) != 2:
            raise ValueError(f"sweep: robustness entries are (perturbation, level) pairs, got {r!r}")
        kind, level = str(r[0]), float(r[1])
        try:
            perturb(torch.zeros(2, 1, 1), kind, level)  # the perturbation's own checks of kind and level
        except ValueError as exc:
            raise ValueError(f"sweep: robustness {kind}:{level:g}: {exc}") from None
        out.append((kind, level))
    return out


def run_one(config: dict, store_path: str | None = None, run_dir: str | None = None,
            robustness: Any = None, threads: int = 1, name: str | None = None) -> dict[str, Any]:
    """Train one configuration and return its row of the trade-off table (runs in a worker process).

    Never raises for a failed run: the row then has ``status="failed"`` and the ``error`` message.
    """
    from snnlab.experiments.store import RunStore
    from snnlab.training.trainer import Trainer

    torch.set_num_threads(max(1, int(threads)))
    cfg = ExperimentConfig.from_dict(config)
    store = RunStore(store_path) if store_path else None
    try:
        trainer = Trainer(cfg, run_dir=run_dir, store=store, progress=False, name=name)
    except Exception as exc:  # bad data folder, impossible model...: a failed row, not a crashed sweep
        if store is not None:
            store.set_status(store.create_run(cfg.to_dict(), name or cfg.label()), "failed", f"{type(exc).__name__}: {exc}")
        return {"run_id": None, "label": cfg.label(), "status": "failed", "error": f"{type(exc).__name__}: {exc}"}
    result = trainer.run(raise_errors=False)
    row: dict[str, Any] = {"run_id": trainer.run_id, "label": cfg.label(), "status": trainer.state,
                           "error": trainer.error}
    if result is not None:
        deployed = result["rounded"] or result["final"]
        row.update({k: deployed.get(k) for k in METRIC_COLUMNS})
        for kind, level in _robustness_list(robustness):
            try:
                curve = robustness_curve(trainer.model, trainer.test_loader, kind, [level], readout=cfg.readout,
                                         max_batches=cfg.eval_max_batches, device=trainer.device)
            except Exception as exc:  # noqa: BLE001 - the trained run stays in the table
                row["error"] = f"robustness {kind}:{level:g}: {type(exc).__name__}: {exc}"
                continue
            row[f"robust_accuracy_{kind}_{level:g}"] = float(curve["accuracy"].iloc[0])
    return row


@dataclass
class SweepResult:
    """A sweep's trade-off ``table`` (one row per run) and its Pareto ``front``."""

    table: pd.DataFrame
    front: pd.DataFrame
    objectives: dict[str, str]


def _as_executor(executor: Any) -> Executor:
    """Accept a ``concurrent.futures.Executor`` or a ``dask.distributed.Client``."""
    if executor is None or isinstance(executor, Executor):
        return executor
    if hasattr(executor, "get_executor"):  # a dask.distributed Client
        return executor.get_executor()
    raise TypeError(f"sweep: executor must be a concurrent.futures.Executor or a dask Client, got {type(executor).__name__}")


def sweep(config: ExperimentConfig, grid: dict[str, list], executor: Any = None, store_path: str | os.PathLike | None = None,
          run_root: str | os.PathLike | None = None, max_workers: int | None = None,
          objectives: dict[str, str] | None = None, robustness: Any = None,
          progress: bool = True) -> SweepResult:
    """Train every grid point of ``grid`` over ``config`` and return the trade-off table and Pareto front.

    Args:
        executor: where runs execute: ``None`` = a local process pool (``max_workers`` processes,
            default: the CPU count), any ``concurrent.futures.Executor``, or a ``dask.distributed.Client``.
        store_path: the run store every run logs into (so the dashboard can watch them arrive).
        run_root: a folder for each run's checkpoint (``run_root/<index>``); None = no checkpoints.
        objectives: ``{metric: "max"|"min"}`` for the front (default accuracy up, spikes per sample down).
        robustness: optional ``(perturbation, level)`` or a list of them: also measure accuracy under each
            (perturbations of :mod:`snnlab.metrics.robustness`: jitter, deletion, insertion, gaussian).
    """
    configs = expand_grid(config, grid)
    robustness = _robustness_list(robustness)  # checked before anything trains
    objectives = dict(objectives or DEFAULT_OBJECTIVES)
    jobs = []
    for i, cfg in enumerate(configs):
        run_dir = str(Path(run_root) / f"{i:03d}") if run_root is not None else None
        values = ", ".join(f"{k}={cfg.to_dict()[k]}" for k in grid)  # runs of a sweep told apart by name too
        jobs.append((cfg.to_dict(), str(store_path) if store_path else None, run_dir, robustness, 1,
                     f"{cfg.label()} [{values}]"))
    owned = executor is None
    pool = _as_executor(executor)
    if owned:
        workers = max_workers or min(len(jobs), os.cpu_count() or 1)
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
    from tqdm.auto import tqdm

    rows: list[dict] = [{} for _ in jobs]
    try:
        futures = {pool.submit(run_one, *job): i for i, job in enumerate(jobs)}
        for fut in tqdm(as_completed(futures), total=len(futures), desc="sweep", disable=not progress):
            rows[futures[fut]] = fut.result()
    finally:
        if owned:
            pool.shutdown()
    varied = {k: [cfg.to_dict()[k] for cfg in configs] for k in grid}
    table = pd.concat([pd.DataFrame(varied), pd.DataFrame(rows)], axis=1)
    ok = table[table["status"] == "finished"] if "status" in table else table
    front = pareto_front(ok.dropna(subset=list(objectives)), objectives) if len(ok) else ok.copy()
    return SweepResult(table=table, front=front, objectives=objectives)
