"""The ``snnlab`` command line: train, sweep, list runs, serve the dashboard, run the demo.

Every experiment flag comes from :class:`~snnlab.training.ExperimentConfig` (one source of truth);
``snnlab train --help`` lists them all with their documentation.
"""
from __future__ import annotations

import argparse
import difflib
import math
import json
import os
import shlex
import signal
import sys
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # (imported where used: the CLI starts without torch)
    import torch

    from snnlab.training import ExperimentConfig

EPILOG = """examples:
  snnlab demo                                    train a small SNN on the embedded digits (about a minute)
  snnlab train --neuron ttfs --hidden 128 --epochs 5
  snnlab train --dataset delay_task --delays --max-delay 30 --num-steps 60
  snnlab train --run-dir runs/a --resume --epochs 10   continue the run in runs/a for 10 epochs in all
  snnlab sweep --grid neuron=ttfs,multi_spike --grid mask_p=0,0.3 --epochs 3
  snnlab sweep --grid noise_scale=0.1,0.3 --neuron noisy --dask local
  snnlab runs                                    list the newest runs in the store
  snnlab runs --status failed --limit 0          every failed run
  snnlab runs show RUN_ID                        one run's config and results (the start of its id will do)
  snnlab runs delete RUN_ID --yes --files        remove a run from the store, with its checkpoint and run folder
  snnlab export runs/a --nir a.nir               the trained network as a NIR graph
  snnlab dashboard                               the live-training dashboard on http://127.0.0.1:5006
  snnlab info                                    versions, GPUs, backends, extras and datasets of this machine
"""


class _Signalled(KeyboardInterrupt):
    """SIGINT, SIGTERM or SIGHUP turned into an interrupt; ``signum`` says which (the exit status is 128 + signum)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _exit_status(exc: BaseException) -> int:
    """128 + the signal number of an interrupt (130 for Ctrl-C, 143 for SIGTERM).

    Example:
        >>> _exit_status(KeyboardInterrupt()), _exit_status(_Signalled(signal.SIGTERM))
        (130, 143)
    """
    return 128 + int(getattr(exc, "signum", None) or signal.SIGINT)


def _raise_signalled(signum: int) -> None:
    raise _Signalled(signum)


def _stopping_signals() -> tuple[int, ...]:
    """The signals that stop a training or sweep gracefully: SIGINT (Ctrl-C), SIGTERM (``kill``, a batch
    scheduler) and SIGHUP (the terminal or ssh session closing), unless SIGHUP is ignored (``nohup``: the run goes
    on)."""
    from snnlab.training.interrupts import hangup_signal

    hup = hangup_signal()
    return (signal.SIGINT, signal.SIGTERM) + (() if hup is None else (hup,))


def _graceful_signals(first: Callable[[int], bool] = lambda signum: False,
                      later: Callable[[int], None] = _raise_signalled):
    """Within the block, SIGINT, SIGTERM and SIGHUP (:func:`_stopping_signals`) call ``first(signum)`` the first
    time; when it returns True the work winds down by itself, otherwise (and on any later signal) ``later(signum)``
    runs (by default it raises :class:`_Signalled`; a trainer's ``interrupt`` waits for the end of an optimiser step).
    Yields the list of signals received. Outside the main thread signals are left alone."""
    from snnlab.training.interrupts import handle_signals

    return handle_signals(first, later, signals=_stopping_signals(), only_over_default=False)


def _drop_output(*streams) -> None:
    """Point each of ``streams`` (default stdout) at ``os.devnull``: its reader has gone (``| head``, a closed pager,
    a hung-up terminal), so nothing more is said there, and Python's flush at exit raises no error."""
    for stream in streams or (sys.stdout,):
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(devnull, stream.fileno())
            finally:
                os.close(devnull)
        except (OSError, ValueError, AttributeError):  # (no file descriptor: a test's captured output)
            pass


def _say(text: str, file=None) -> None:
    """``print(text, file=file)`` (default stderr), dropped where the stream's reader has gone (a closed pipe, a
    hung-up terminal: after SIGHUP the stop report must not fail the stop)."""
    file = sys.stderr if file is None else file
    try:
        print(text, file=file, flush=True)
    except OSError as exc:
        from snnlab.training.progress import GONE_ERRNOS  # (here: the package imports torch; runs commands do not)

        if exc.errno not in GONE_ERRNOS:  # (another failure, e.g. a full disk behind 2>log, is not the reader gone)
            raise
        _drop_output(file)


def _int_at_least(low: int, what: str) -> Callable[[str], int]:
    """An argparse type: an integer ``>= low`` (``what`` names it in the error)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be {'at least 1' if low == 1 else f'{low} or more'}, got {value}")
        return value
    return parse


_positive_int = _int_at_least(1, "a positive integer")
_count = _int_at_least(0, "a whole number")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not value >= 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds, got {text}")
    return value


def _store(path: str | None):
    """The run store ``train`` / ``sweep`` record in: ``path``, else ``$SNNLAB_STORE`` or ``runs/snnlab.sqlite``.
    When it cannot be created or opened for writing (e.g. in a read-only folder) the error names the fix."""
    import sqlite3

    from snnlab.experiments import RunStore, default_store_path
    from snnlab.experiments.store import StoreError

    where = Path(path).expanduser() if path else default_store_path()  # (--store=~/x: bash leaves that ~)
    try:
        return RunStore(where, read_only=False)
    except (OSError, sqlite3.Error, StoreError) as exc:
        hint = ("pass --store PATH (a writable SQLite file; or set SNNLAB_STORE) or --no-store to run without "
                "recording in the store")
        if isinstance(exc, StoreError):
            raise StoreError(f"{exc}; {hint}") from exc
        if str(exc).startswith("RunStore: "):  # the store's own message names the store and the reason
            raise OSError(f"{str(exc)[len('RunStore: '):]}; {hint}") from exc
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise OSError(f"cannot create or open the run store {where} ({type(exc).__name__}: {reason}); "
                      f"{hint}") from exc


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _print_result(title: str, result: dict) -> None:
    print(f"\n{title}")
    for key in ("accuracy", "loss", "spikes_per_sample", "activation_sparsity", "synops_per_sample",
                "energy_per_sample_j", "latency_steps"):
        if result.get(key) is not None:
            print(f"  {key:<22} {_fmt(result[key])}")
    for layer, n in (result.get("spikes_per_layer") or {}).items():
        print(f"  spikes/sample layer {layer:<3} {_fmt(n)}")


def _checkpoint_in(run_dir: str | None) -> Path | None:
    from snnlab.training.run_folder import CHECKPOINT_NAME

    path = Path(run_dir) / CHECKPOINT_NAME if run_dir else None
    return path if path is not None and path.exists() else None


#: the command line's words for a run folder another run saved into after the checks (the trainer's refusal,
#: :class:`~snnlab.training.run_folder.RunFolderTaken`, gives the Python API's)
_TAKEN_HINT = ("; from the command line: --resume continues the run saved there, --overwrite starts this one there "
               "(replacing it), or give this run another --run-dir")


def _load_run_dir_checkpoint(path: Path, resume: bool) -> dict:
    """The checkpoint in --run-dir for its metadata and configuration (tensors mapped, history undecoded); one that
    cannot be read names the way to start a new run there instead."""
    from snnlab.training import CheckpointError, load_checkpoint

    try:
        return load_checkpoint(path, mmap=True, history=False)
    except CheckpointError as exc:
        hint = "--overwrite (without --resume) starts a new run there" if resume else (
            "--overwrite starts a new run there (replacing it), or give this run another --run-dir")
        raise CheckpointError(f"{exc}; {hint}") from exc


def _refuse_custom_resume(path: Path, ck: dict) -> None:
    """A ``ValueError`` for ``--resume`` of a run trained with a model or data passed to the Trainer from Python: the
    command line would rebuild both from the configuration (another network, or the configured dataset), and go on
    training that where the weights happen to fit."""
    from snnlab.training.model import custom_parts

    parts = custom_parts(ck)
    if parts:
        kwargs = {"model": "model=...", "data": "train_loader=..., test_loader=..."}
        raise ValueError(f"--resume: the checkpoint {path} is of a run whose {' and '.join(parts)} "
                         f"{'were' if len(parts) > 1 else 'was'} passed to the Trainer from Python (label "
                         f"{ck.get('label')!r}): the command line would rebuild "
                         f"{'them' if len(parts) > 1 else 'it'} from the configuration, which does not describe "
                         f"{'them' if len(parts) > 1 else 'it'}; resume it in Python: Trainer(cfg, "
                         f"{', '.join(kwargs[p] for p in parts)}, resume={str(path.parent)!r})")


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from snnlab.config_args import config_from_args
    from snnlab.training import ExperimentConfig, Trainer

    if getattr(args, "resume", False) and not args.run_dir:
        raise ValueError("--resume needs --run-dir, the folder of the checkpoint to continue")
    if args.run_dir:  # --run-dir=~/runs/a (bash expands no ~ after "="), or a quoted "~/..."
        args.run_dir = os.path.expanduser(args.run_dir)
    if args.run_dir:  # a file given as the folder, or a folder named checkpoint.pt in it: said before any read
        from snnlab.training.run_folder import check_run_folder

        check_run_folder(args.run_dir, who="--run-dir")
    from snnlab.training.run_folder import refuse_busy_run_folder

    refuse_busy_run_folder(args.run_dir)  # (its checkpoint changes under another training: not read then)
    existing = _checkpoint_in(args.run_dir)
    base = saved = ck = None
    if getattr(args, "resume", False):
        if existing is None:
            raise FileNotFoundError(f"--resume: no checkpoint in --run-dir {args.run_dir!r}")
        ck = _load_run_dir_checkpoint(existing, resume=True)  # its metadata and configuration
        if not isinstance(ck.get("config_json"), str):
            from snnlab.training import CheckpointError

            raise CheckpointError(f"--resume: the checkpoint {existing} has no saved configuration (config_json): it "
                                  "was not written by snnlab's Trainer, or by a too old snnlab; --overwrite (without "
                                  "--resume) starts a new run there, or give this run another --run-dir")
        _refuse_custom_resume(existing, ck)
        saved = ExperimentConfig.from_saved(ck["config_json"])
        base = saved.to_dict()
    elif existing is not None and not getattr(args, "overwrite", False):
        ck = _load_run_dir_checkpoint(existing, resume=False)  # for its metadata
        state = "finished" if ck.get("finished") else f"stopped after {ck.get('step')} steps"
        raise ValueError(f"--run-dir {args.run_dir} already holds the checkpoint of run {ck.get('run_id')} ({state}): "
                         f"--resume continues it (flags given override its configuration, e.g. --epochs, except "
                         f"those that shape the model: `snnlab train --help` says which), "
                         f"--overwrite starts a new run there")
    cfg = config_from_args(args, base)  # the checkpoint's configuration, then --config, then the flags given
    if saved is not None:  # flags that the checkpoint's model cannot take, or fewer --epochs than it trained:
        from snnlab.config_args import field_flag  # refused before anything runs or is written
        from snnlab.training.resume import check_resume_config

        check_resume_config(saved, cfg, existing,
                            describe=lambda field, old, new: f"{_as_flag(field, new)} (the checkpoint's: "
                                                             f"{_as_flag(field, old)})", name=field_flag, checkpoint=ck)
    if args.save_config:
        Path(args.save_config).expanduser().write_text(cfg.to_json())
    if args.threads:  # (on another count than a resumed checkpoint's: the Trainer warns)
        torch.set_num_threads(args.threads)
    elif ck is not None:
        _take_checkpoint_threads(ck, cfg.device)
    store = None if args.no_store else _store(args.store)
    current: list = []

    def stop_gracefully(signum: int) -> bool:  # the first Ctrl-C / SIGTERM: stop at the next step, checkpoint
        if not current:
            return False
        current[0].stop(reason=f"interrupted ({signal.Signals(signum).name})")
        return True

    def interrupt(signum: int) -> None:  # a later signal: at once, but never inside an optimiser step
        if not current:
            raise _Signalled(signum)
        current[0].interrupt(_Signalled(signum))

    from snnlab.training.run_folder import RunFolderTaken

    with _graceful_signals(stop_gracefully, interrupt) as received:
        try:
            trainer = Trainer(cfg, run_dir=args.run_dir, store=store, progress=not args.quiet, name=args.name,
                              resume=existing if base is not None else None,
                              overwrite=getattr(args, "overwrite", False))
            current.append(trainer)
            _say(f"run {trainer.run_id}: {cfg.label()}" + (f" (store: {store.path})" if store else "")
                 + (_resumed_text(trainer, ck) if ck is not None else ""), file=sys.stdout)  # (no reader: trains on)
            result = trainer.run(raise_errors=False)
        except KeyboardInterrupt as exc:  # a second signal: the trainer saved a checkpoint where it was
            if not current:
                raise
            return _report_stopped(trainer, args, _exit_status(exc))
        except RunFolderTaken as exc:  # another run saved there after the checks above: the command line's advice
            raise RunFolderTaken(f"{exc}{_TAKEN_HINT}", run_id=exc.run_id) from exc
    if result is None:
        if trainer.state == "stopped":
            return _report_stopped(trainer, args, 128 + (received[0] if received else signal.SIGINT))
        print(f"run {trainer.run_id} {trainer.state}: {trainer.error or ''}", file=sys.stderr)
        return 1
    rounded = result["rounded"]  # (a run that learned delays: its final evaluation, then that after rounding them)
    _print_result("test results" + (" with the learned (fractional) delays" if rounded is not None else ""),
                  result["final"])
    if rounded is not None:
        _print_result("test results with integer (rounded) delays" + (": the run's summary in the store "
                      "(delays_rounded)" if store is not None else ""), rounded)
    if trainer.store_writes_pending:
        again = (f"; {shlex.join(_resume_command(args))} writes its status and final results again (not the missing "
                 "metric rows)") if args.run_dir else ""
        print(f"error: the run trained, but {trainer.store_writes_pending} writes to the run store {store.path} failed "
              f"({trainer.store_error}): its record of run {trainer.run_id} is incomplete; the checkpoint holds the "
              f"result{again}", file=sys.stderr)
        return 1
    return 0


def _as_flag(field: str, value) -> str:
    """A config field's value as the ``snnlab train`` flag that sets it.

    Example:
        >>> _as_flag("hidden", [64, 32]), _as_flag("delays", False), _as_flag("tau_syn", None)
        ('--hidden 64,32', '--no-delays', '--tau-syn None')
    """
    from snnlab.config_args import field_flag

    flag = field_flag(field)
    if isinstance(value, bool):
        return flag if value else f"--no-{flag[2:]}"
    if isinstance(value, (list, tuple)):
        return f"{flag} {','.join(map(str, value))}"
    if isinstance(value, dict):
        return f"{flag} {shlex.quote(json.dumps(value))}"
    return f"{flag} {value}"


def _resume_help() -> str:
    """``--resume``'s help: what flags may change on a resume and what stays the checkpoint's
    (:data:`snnlab.training.resume_rule.FIXED_ON_RESUME`, the rule every resume follows)."""
    from snnlab.config_args import field_flag
    from snnlab.training.resume_rule import fixed_on_resume_text

    fixed = fixed_on_resume_text(field_flag)
    return ("continue the run whose checkpoint is in --run-dir. Flags given (and --config) override its configuration: "
            "--epochs (no fewer than it trained), learning rates and schedules, --tau-mem, --threshold, --neuron, --surrogate, --dropout, "
            "--mask-p, ... (--batch-size only at an epoch boundary). What sets the model's parameters or the optimiser's "
            f"state stays the checkpoint's, and a flag changing it is refused: {fixed}")


def _resumed_text(trainer, ckpt: dict) -> str:
    """The start line's account of a resume, with epochs counted from 1 as the progress bar counts them:
    ", resumed after 3 of 5 epochs (step 9)", ", resumed during epoch 4/5 (step 35)", or, with nothing left to train,
    ", already finished after 3 of 3 epochs (step 9): nothing left to train"."""
    from snnlab.training.resume import trained_epochs

    done, partial = trained_epochs(ckpt)
    if partial or done < trainer.cfg.epochs:
        return f", resumed {trainer.position()}"
    if ckpt.get("finished"):
        return f", already finished {trainer.position()}: nothing left to train, its results are written again"
    return f", resumed {trainer.position()}: nothing left to train, the run finishes here"


def _take_checkpoint_threads(ck: dict, device: str) -> None:
    """``snnlab train --resume`` without ``--threads``: a run on the CPU (``device`` as configured) trains on as many
    torch threads as the checkpoint's run did (a resume repeats the uninterrupted run bit for bit only so), saying so
    in one line where that is not this process's default, and that it is slower here where this machine has fewer
    cores. A run on a GPU keeps the default (its threads do not change its numbers)."""
    import os

    import torch

    from snnlab.training.resume import checkpoint_threads
    from snnlab.training.runtime import resolve_device

    trained = checkpoint_threads(ck)
    if trained is None or trained == torch.get_num_threads():
        return
    try:
        if resolve_device(device).type != "cpu":
            return
    except (ValueError, RuntimeError):  # (a device not here: the Trainer says so)
        return
    cores = os.cpu_count() or trained
    slower = (f"; more than this machine's {cores} cores, so slower here" if trained > cores else "")
    _say(f"resuming on {trained} torch thread(s), as the checkpoint's run trained (so it repeats bit for bit; "
         f"default here: {torch.get_num_threads()}{slower}); --threads N overrides")
    torch.set_num_threads(trained)


def _resume_command(args: argparse.Namespace) -> list[str]:
    """The command that resumes the run of ``snnlab train`` ``args`` in its run folder and run store, with its
    ``--threads`` (a resumed run repeats the uninterrupted one bit for bit only with the same number of threads) and
    ``--quiet``.

    Example:
        >>> _resume_command(argparse.Namespace(run_dir="runs/a b", store="s.sqlite", no_store=False))
        ['snnlab', 'train', '--resume', '--run-dir', 'runs/a b', '--store', 's.sqlite']
        >>> _resume_command(argparse.Namespace(run_dir="r", no_store=True, threads=1, quiet=True))
        ['snnlab', 'train', '--resume', '--run-dir', 'r', '--no-store', '--threads', '1', '--quiet']
    """
    again = ["snnlab", "train", "--resume", "--run-dir", str(args.run_dir)]
    if getattr(args, "no_store", False):
        again.append("--no-store")
    elif getattr(args, "store", None):
        again += ["--store", str(args.store)]
    if getattr(args, "threads", None) is not None:
        again += ["--threads", str(args.threads)]
    if getattr(args, "quiet", False):
        again.append("--quiet")
    return again


def _report_stopped(trainer, args: argparse.Namespace, status: int) -> int:
    """Tell where an interrupted run stands (epochs counted from 1, as the progress bar counts them) and how to
    resume it; returns ``status`` (128 + the signal)."""
    where = f"run {trainer.run_id} stopped {trainer.position()}"
    ckpt = trainer.checkpoint_path
    if ckpt is not None and ckpt.exists():
        _say(f"{where}; checkpoint saved: {ckpt}\nresume with: {shlex.join(_resume_command(args))}")
    else:
        _say(f"{where}; no checkpoint saved (give --run-dir to make a run resumable)")
    return status


def cmd_demo(args: argparse.Namespace) -> int:
    ns = argparse.Namespace(config=None, dataset="digits", hidden=[64], epochs=args.epochs, num_steps=20,
                            batch_size=64, lr=5e-3, run_dir=None, store=None, no_store=True, quiet=False,
                            name="demo", threads=None, save_config=None)
    print("snnlab demo: a 64-64-10 spiking network learns the 8x8 digits shipped with scikit-learn\n"
          "(latency-coded spikes, LIF neurons, surrogate gradients). Next: `snnlab dashboard`.")
    return cmd_train(ns)


def cmd_sweep(args: argparse.Namespace) -> int:
    from snnlab.config_args import config_from_args, parse_grid
    from snnlab.experiments import SweepInterrupted, sweep
    from snnlab.experiments.sweeps import default_workers

    cfg = config_from_args(args)
    grid = parse_grid(args.grid)
    n_runs = math.prod(len(values) for values in grid.values())
    executor = None
    cluster = client = None
    if args.dask:
        from snnlab.extras import require

        require("dask.distributed", extra="cluster", feature="snnlab sweep --dask")
        from dask.distributed import Client, LocalCluster

        if args.dask == "local":  # like the process pool: --workers, default the CPU count (at most one per run)
            workers = args.workers or default_workers(n_runs)
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=None)
            client = Client(cluster)
        else:
            client = Client(args.dask)
        executor = client
    robustness = []
    for item in args.robustness or []:
        kind, _, level = item.partition(":")
        try:
            robustness.append((kind, float(level)))
        except ValueError:
            raise ValueError(f"--robustness expects KIND:LEVEL like gaussian:0.5, got {item!r}") from None
    interrupted: SweepInterrupted | None = None
    try:
        with _graceful_signals():  # SIGTERM behaves like Ctrl-C: stop the runs (checkpoints), keep the rows
            result = sweep(cfg, grid, executor=executor,
                           store_path=None if args.no_store else _store(args.store).path, run_root=args.run_root,
                           max_workers=args.workers, robustness=robustness, progress=not args.quiet, out=args.out,
                           threads=args.threads)
    except SweepInterrupted as exc:
        interrupted, result = exc, exc.result
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    cols = [c for c in result.table.columns if c not in ("error",)]
    print(result.table[cols].to_string(index=False))
    print("\nPareto front (" + ", ".join(f"{k} {v}" for k, v in result.objectives.items()) + "):")
    print(result.front[[c for c in cols if c in result.front]].to_string(index=False))
    if args.out:
        print(f"\ntable written to {args.out}")
    if result.reused or result.resumed:
        print(f"from {args.run_root}: {len(result.reused)} finished run(s) reused, {len(result.resumed)} resumed "
              "from their checkpoints" + (" (with --robustness a finished run is reopened to measure it, without "
                                          "training)" if robustness and result.resumed else ""), file=sys.stderr)
    failed = result.table[result.table["status"] != "finished"]
    for _, row in failed.iterrows():
        error, values = row.get("error"), ", ".join(f"{k}={row[k]}" for k in grid)
        print(f"run {row.get('label')} [{values}]: {row['status']}" + (f": {error}" if isinstance(error, str) else ""),
              file=sys.stderr)
    if interrupted is not None:
        hint = (f"rerun the same command to resume: finished runs are reused, stopped ones resume from "
                f"{args.run_root}" if args.run_root else
                "without --run-root nothing was checkpointed: give --run-root to make a sweep resumable")
        print(f"sweep interrupted; {hint}", file=sys.stderr)
        return _exit_status(interrupted)
    return 0 if failed.empty else 1


RUNS_LIMIT = 50  # `snnlab runs` / `runs compare` show the newest 50 runs unless --limit says otherwise (0: all)
RUNS_WAIT = 5.0  # seconds `snnlab runs` waits for a store another process holds locked (--timeout)
NAME_WIDTH, MESSAGE_WIDTH, CELL_WIDTH = 40, 60, 24  # the widest name, message (its last line) and other cell


def _char_width(ch: str) -> int:

    if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def _text_width(text: str) -> int:
    """Terminal columns of ``text`` (wide East Asian characters and emoji take two, combining marks none)."""
    return len(text) if text.isascii() else sum(_char_width(ch) for ch in text)


def _ellipsis() -> str:
    try:
        "\u2026".encode(getattr(sys.stdout, "encoding", None) or "utf-8")
        return "\u2026"
    except (UnicodeEncodeError, LookupError):
        return "..."


def _clip(text: str, width: int) -> str:
    """``text`` cut to ``width`` terminal columns, an ellipsis marking the cut.

    Example:
        >>> _clip("a-rather-long-run-name", 10), _clip("short", 10)
        ('a-rather-\u2026', 'short')
    """
    if _text_width(text) <= width:
        return text
    mark = _ellipsis()
    if text.isascii():
        return text[:max(0, width - len(mark))] + mark
    room, out = max(0, width - len(mark)), []
    for ch in text:
        room -= _char_width(ch)
        if room < 0:
            break
        out.append(ch)
    return "".join(out) + mark


def _cell(value, last_line: bool = False) -> str:
    """One table cell: numbers to 4 significant digits, missing values empty, control characters (tabs, newlines)
    as spaces; ``last_line``: only the last non-empty line (an error's traceback ends with the error)."""

    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    text = str(value)
    if last_line:
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        text = lines[-1] if lines else ""
    return "".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in text)


def _table(frame, widths: dict[str, int], width: int | None, shrink: list[tuple[str, int]],
           keep: int) -> tuple[list[str], list[str]]:
    """The lines of ``frame`` as a plain-text table: each column at most ``widths[col]`` (else CELL_WIDTH)
    columns wide; with ``width`` (the terminal's) and too wide, each ``(column, least)`` of ``shrink`` in turn
    narrows that column down to ``least``, then columns beyond the first ``keep`` are left out from the right.
    Returns the lines and the columns left out."""
    import numbers

    cols = list(frame.columns)
    cells = {c: [_cell(v, last_line=(c == "message")) for v in frame[c].tolist()] for c in cols}
    numeric = {c for c in cols if frame[c].map(lambda v: v is None or isinstance(v, numbers.Number)
                                               and not isinstance(v, bool)).all() and c != "run_id"}
    size = {c: min(widths.get(c, CELL_WIDTH), max([_text_width(c)] + [_text_width(t) for t in cells[c]])) for c in cols}
    left_out: list[str] = []
    if width is not None:
        excess = sum(size.values()) + 2 * (len(cols) - 1) - width
        for c, least in shrink:
            if excess > 0 and c in size and size[c] > least:
                cut = min(excess, size[c] - least)
                size[c] -= cut
                excess -= cut
        while excess > 0 and len(cols) > keep:
            c = cols.pop()
            excess -= size.pop(c) + 2
            left_out.insert(0, c)

    def row(texts: list[str]) -> str:
        parts = []
        for c, t in zip(cols, texts):
            t = _clip(t, size[c])
            pad = " " * (size[c] - _text_width(t))
            parts.append(pad + t if c in numeric else t + pad)
        return "  ".join(parts).rstrip()

    return [row(cols)] + [row([cells[c][i] for c in cols]) for i in range(len(frame))], left_out


def _statuses(values: list[str] | None) -> list[str]:
    from snnlab.experiments.store import SHOWN_STATUSES

    wanted = [v.strip() for item in values or [] for v in item.split(",") if v.strip()]
    unknown = [v for v in wanted if v not in SHOWN_STATUSES]
    if unknown:
        raise ValueError(f"--status: unknown status {', '.join(map(repr, unknown))}; choose from "
                         f"{', '.join(SHOWN_STATUSES)}")
    return wanted


def _local_minute(t: float) -> str:
    """A store time (seconds since the epoch) as this machine's local ``YYYY-MM-DD HH:MM``."""
    import datetime

    try:
        return datetime.datetime.fromtimestamp(float(t)).strftime("%Y-%m-%d %H:%M")
    except (TypeError, ValueError, OverflowError, OSError):
        return ""


def _newest(frame, statuses: list[str], limit: int):
    """Rows with one of ``statuses`` (all when empty), newest first (``frame`` is oldest first), at most ``limit``
    (0: all); returns them and how many matched."""
    if statuses:
        frame = frame[frame["status"].isin(statuses)]
    frame = frame.iloc[::-1]
    return (frame.head(limit) if limit else frame), len(frame)


def _shown_note(shown: int, matched: int, what: str, statuses: list[str], left_out: list[str], width) -> None:
    """What the table leaves out, on stderr (stdout stays the table, for pipes)."""
    notes = []
    if shown < matched:
        notes.append(f"the newest {shown} of {matched} {what}" + (f" with status {', '.join(statuses)}" if statuses
                                                                  else "") + "; --limit 0 shows all")
    if left_out:
        notes.append(f"{len(left_out)} column(s) left out at width {width}: {', '.join(left_out)}; --wide shows all")
    for note in notes:
        print(f"({note})", file=sys.stderr)


def _runs_output(args: argparse.Namespace) -> int:
    from snnlab.experiments import RunStore, default_store_path

    path = Path(args.store).expanduser() if args.store else default_store_path()
    if args.action == "delete":
        if getattr(args, "status", None):  # (a filter would read as "delete the failed ones": the ids decide)
            raise ValueError("runs delete deletes the runs named, and takes no --status: list them with "
                             "`snnlab runs --status ...`, then name them; nothing deleted")
        return _delete_runs(args, path)
    if getattr(args, "yes", False) or getattr(args, "files", False) or getattr(args, "force", False):
        raise ValueError("--yes, --files and --force are options of `snnlab runs delete`")
    statuses = _statuses(getattr(args, "status", None))
    limit = getattr(args, "limit", RUNS_LIMIT)
    if not path.exists():  # reading only: never create a store (an --store typo would look like an empty one)
        if args.store:
            raise FileNotFoundError(f"--store: no run store at {path}")
        if args.run_ids:  # (runs asked for by id: not there, as in a store without them)
            raise FileNotFoundError(f"no run(s) {', '.join(args.run_ids)}: there is no run store at {path} "
                                    "(snnlab train or the dashboard create it; --store or $SNNLAB_STORE names another)")
        print(f"no runs yet: {path} does not exist (snnlab train or the dashboard create it)")
        return 0
    # read-only: a listing never changes the store (not even an old store's journal mode); a locked one is an
    # error after --timeout seconds
    store = RunStore(path, timeout=getattr(args, "timeout", RUNS_WAIT), read_only=True)
    try:
        return _print_runs(args, store, statuses, limit)
    finally:
        store.close()


RUNS_CANDIDATES = 10  # an ambiguous run id prefix or name lists at most this many of the runs it matches


def _resolve_run_ids(wanted: list[str], listed) -> tuple[list[str], list[str]]:
    """The run ids that ``wanted`` name (each a whole id, else the one run whose id starts with it or whose whole name it
    is), in the order given without repeats, and the words that name no run. ``ValueError`` listing the candidates
    for a word that fits several runs: a prefix of several ids, a name several runs have, or an id prefix of one run
    and the name of another (a run named ``1`` or ``cafe``). ``listed`` is :meth:`RunStore.list_runs`' table.

    Example:
        >>> import pandas as pd
        >>> listed = pd.DataFrame({"run_id": ["be89aa", "be12cc", "0f3d11"], "name": ["a", "b", "b"],
        ...                        "status": ["finished"] * 3})
        >>> _resolve_run_ids(["0f", "be8", "a", "0f3d11", "zz"], listed)
        (['0f3d11', 'be89aa'], ['zz'])
        >>> _resolve_run_ids(["be"], listed)
        Traceback (most recent call last):
        ...
        ValueError: run id prefix 'be' fits 2 runs: be89aa (a, finished), be12cc (b, finished); give more of the id
        >>> _resolve_run_ids(["0f"], pd.DataFrame({"run_id": ["0f3d11", "be89aa"], "name": ["x", "0f"],
        ...                                         "status": ["finished", "died"]}))
        Traceback (most recent call last):
        ...
        ValueError: run id prefix or name '0f' fits 2 runs: 0f3d11 (x, finished), be89aa (0f, died); give a whole run id
    """
    ids, names = listed["run_id"].tolist(), listed["name"].tolist()
    statuses = listed["status"].tolist() if "status" in listed else [""] * len(ids)
    found, unknown = [], []
    for word in wanted:
        if word in ids:
            found.append(word)
            continue
        by_id = [i for i, r in enumerate(ids) if word and r.startswith(word)]
        by_name = [i for i, n in enumerate(names) if n == word]
        fits = list(dict.fromkeys(by_id + by_name))  # (a run whose name starts its own id counts once)
        how = "run id prefix" if not by_name else "run name" if not by_id else "run id prefix or name"
        if len(fits) == 1:
            found.append(ids[fits[0]])
        elif fits:
            shown = ", ".join(f"{ids[i]} ({names[i]}, {statuses[i]})" for i in fits[:RUNS_CANDIDATES])
            more = f" and {len(fits) - RUNS_CANDIDATES} more" if len(fits) > RUNS_CANDIDATES else ""
            fix = {"run id prefix": "give more of the id", "run name": "give a run id"}.get(how, "give a whole run id")
            raise ValueError(f"{how} {word!r} fits {len(fits)} runs: {shown}{more}; {fix}")
        else:
            unknown.append(word)
    return list(dict.fromkeys(found)), unknown


def _print_runs(args: argparse.Namespace, store, statuses: list[str], limit: int) -> int:
    import shutil

    from snnlab.experiments.store import varying_columns

    wide = getattr(args, "wide", False)
    width = None if wide else shutil.get_terminal_size((100, 24)).columns
    name_width = 10**6 if wide else NAME_WIDTH  # --wide: whole names (their label's last words tell runs apart)
    if args.action == "list":
        runs, matched = _newest(store.list_runs(), statuses, limit)
        if runs.empty:
            print(f"no runs{' with status ' + ', '.join(statuses) if statuses else ''} in {store.path}")
            return 0
        runs = runs.assign(created=runs["created"].map(_local_minute))  # this machine's time, as the dashboard
        lines, left_out = _table(runs[["run_id", "name", "status", "created", "message"]],
                                 {"name": name_width, "message": MESSAGE_WIDTH, "created": 16, "run_id": 32},
                                 width, shrink=[("message", 30), ("name", 24), ("message", 12), ("name", 12)], keep=3)
        sys.stdout.write("\n".join(lines) + "\n")
        sys.stdout.flush()
        _shown_note(len(runs), matched, "runs", statuses, left_out, width)
    elif args.action == "show":
        if not args.run_ids:
            raise ValueError("runs show needs one or more run ids (`snnlab runs` lists them)")
        run_ids, unknown = _resolve_run_ids(args.run_ids, store.list_runs())
        if unknown:
            raise KeyError(f"no run {unknown[0]!r} in {store.path} (`snnlab runs` lists them)")
        runs = [store.get_run(run_id) for run_id in run_ids]  # every id checked before printing
        for run in runs:
            print(json.dumps(run, indent=2, default=str))
    elif args.action == "compare":
        with store.snapshot():  # the ids checked and the results read from one state of the store
            listed = store.list_runs()
            table = store.summaries()
        run_ids, unknown = _resolve_run_ids(args.run_ids, listed)
        if unknown:
            raise ValueError(f"no run(s) {', '.join(unknown)} in {store.path} (`snnlab runs` lists them)")
        with_results = set(table["run_id"]) if "run_id" in table else set()
        matched = len(table)
        if not table.empty and run_ids:  # in the order asked for
            table = table[table["run_id"].isin(run_ids)]
            table = table.iloc[sorted(range(len(table)), key=lambda i: run_ids.index(table["run_id"].iloc[i]))]
            matched = len(table)
        elif not table.empty:
            table, matched = _newest(table, statuses, limit)
        _without_results_note(listed, with_results, run_ids, statuses)
        if table.empty:
            print(f"no finished runs with results{' among ' + ', '.join(run_ids) if run_ids else ''}"
                  f"{' with status ' + ', '.join(statuses) if statuses and not run_ids else ''} in {store.path}")
            return 1 if run_ids else 0  # the runs asked for cannot be compared
        # the trade-off's two axes, then the settings that differ between the runs, then the other results: the
        # columns left out at the terminal's width are the last ones
        configs = varying_columns(table, [c for c in table.columns if c.startswith("config.")])
        results = [c for c in table.columns if not c.startswith("config.") and c not in ("run_id", "name", "status")]
        axes = [c for c in ("accuracy", "spikes_per_sample") if c in results]
        order = ["run_id", "name", "status", *axes, *configs, *[c for c in results if c not in axes]]
        lines, left_out = _table(table[order],
                                 {"name": name_width, "run_id": 32}, width, shrink=[("name", 24)], keep=3)
        sys.stdout.write("\n".join(lines) + "\n")
        sys.stdout.flush()
        _shown_note(len(table), matched, "runs with results", statuses if not args.run_ids else [], left_out, width)
    sys.stdout.flush()
    return 0


def _without_results_note(listed, with_results: set[str], run_ids: list[str], statuses: list[str]) -> None:
    """Say on stderr which runs ``runs compare`` leaves out for having no results (failed, running, died...): each
    id asked for, with its status; without ids, how many of the store's runs (of ``statuses``), by status."""
    has = listed["run_id"].isin(with_results)
    if run_ids:
        missing = listed[listed["run_id"].isin(run_ids) & ~has]
        if not missing.empty:
            which = ", ".join(f"{r} ({s})" for r, s in zip(missing["run_id"], missing["status"]))
            print(f"(left out {len(missing)} run(s) without results: {which})", file=sys.stderr)
        return
    missing = listed[~has & (listed["status"].isin(statuses) if statuses else True)]
    if not missing.empty:
        counts = missing["status"].value_counts()
        by = ", ".join(f"{n} {status}" for status, n in counts.items())
        print(f"({len(missing)} run(s) without results left out: {by}; `snnlab runs` lists them)", file=sys.stderr)


def cmd_runs(args: argparse.Namespace) -> int:
    """``snnlab runs [list|show|compare|delete]``: read-only but for ``delete`` (:func:`_delete_runs`); a reader of
    the output that stops early (``| head``) ends it quietly (exit status 0, as for every command: :func:`main`); a
    store locked by another process is an error after ``--timeout`` seconds (main's one line for store errors)."""
    return _runs_output(args)


def _remove_run_files(run_id: str, checkpoint: str | None) -> bool:
    """``runs delete --files`` for one deleted run (:func:`snnlab.experiments.run_files.remove_run_files`): says what
    it removed (stdout) and what it kept and why (stderr); returns False when a removal failed."""
    from snnlab.experiments.run_files import ERROR, REMOVED, remove_run_files

    result = remove_run_files(run_id, checkpoint)
    for kind, text in result.lines:
        if kind == REMOVED:
            print(text)
        elif kind == ERROR:
            print(f"snnlab runs: error: {text}", file=sys.stderr)
        else:
            print(text, file=sys.stderr)
    return result.ok


def _delete_runs(args: argparse.Namespace, path: Path) -> int:
    """``snnlab runs delete RUN [RUN ...] [--yes] [--files] [--force]``: delete runs (a run id, a unique start of one, or
    a name only one run has) from the store at ``path``, with their metrics; all or nothing (an unknown or ambiguous
    id, or a run still running, deletes none; ``--force`` deletes runs shown running or paused too, for those known
    to have stopped that the store cannot tell). Asks first on a terminal; without one (a script) ``--yes`` must say
    so. With ``--files`` also each run's checkpoint and its run folder
    (:func:`snnlab.experiments.run_files.remove_run_files`). Returns the exit status:
    0 done, 1 not confirmed (nothing deleted) or a file that could not be removed.

    Example:
        >>> import tempfile, os
        >>> from snnlab.experiments import RunStore
        >>> store_path = os.path.join(tempfile.mkdtemp(), "runs.sqlite")
        >>> run = RunStore(store_path).create_run({}, name="old")
        >>> main(["runs", "delete", run[:6], "--yes", "--store", store_path])  # doctest: +ELLIPSIS
        deleted run ... (old, created)
        0
    """
    from snnlab.experiments import RunStore

    if not args.run_ids:
        raise ValueError("runs delete needs one or more run ids (`snnlab runs` lists them)")
    if not path.exists():  # (never creates a store)
        raise FileNotFoundError(f"{'--store: ' if args.store else ''}no run store at {path}; nothing deleted")
    store = RunStore(path, timeout=getattr(args, "timeout", RUNS_WAIT), read_only=False)
    try:
        listed = store.list_runs()
        run_ids, unknown = _resolve_run_ids(args.run_ids, listed)
        if unknown:
            raise ValueError(f"no run(s) {', '.join(unknown)} in {store.path} (`snnlab runs` lists them); "
                             "nothing deleted")
        rows = listed.set_index("run_id").loc[run_ids]
        live = rows[rows["status"].isin(("running", "paused"))]
        if not live.empty and not args.force:
            which = ", ".join(f"{r} ({s})" for r, s in zip(live.index, live["status"]))
            raise ValueError(f"run(s) {which} may still be running: stop them first (a run whose process has gone "
                             "shows died, and can be deleted; --force deletes runs known to have stopped that still show "
                             "running, e.g. from another host); nothing deleted")
        described = {r: f"{r} ({row['name']}, {row['status']})" for r, row in rows.iterrows()}
        if not args.yes:
            if not sys.stdin or not sys.stdin.isatty():
                raise ValueError("runs delete asks before deleting and stdin is not a terminal: pass --yes to delete "
                                 f"{', '.join(run_ids)}; nothing deleted")
            files = " and their checkpoints and run folders (--files)" if args.files else ""
            print(f"about to delete {len(run_ids)} run(s) from {store.path}{files}:", file=sys.stderr)
            for text in described.values():
                print(f"  {text}", file=sys.stderr)
            sys.stderr.write("delete them? [y/N] ")
            sys.stderr.flush()
            if sys.stdin.readline().strip().lower() not in ("y", "yes"):
                print("nothing deleted", file=sys.stderr)
                return 1
        deleted = store.delete_runs(run_ids, force=args.force)
    finally:
        store.close()
    for run_id in deleted:
        print(f"deleted run {described[run_id]}")
    sys.stdout.flush()
    ok = True
    if args.files:
        for run_id, checkpoint in deleted.items():
            ok = _remove_run_files(run_id, checkpoint) and ok
    return 0 if ok else 1


def _export_label(ckpt: dict, cfg: ExperimentConfig, model: torch.nn.Module) -> str:
    """What ``snnlab export`` says it wrote: the configuration's label, or for a run trained on data of the user's
    own (which its ``cfg.dataset`` is not) the network's layer sizes read from the model and "custom data"."""
    from snnlab.training.model import custom_parts, synapse_weights

    if "data" not in custom_parts(ckpt):
        return cfg.label()
    synapses = [w for _, w in synapse_weights(model.state_dict())]  # (the weights model_from_checkpoint reads)
    sizes = [synapses[0].shape[1], *cfg.hidden, synapses[-1].shape[0]]
    return f"{'-'.join(str(int(n)) for n in sizes)} network trained on custom data (not {cfg.dataset!r})"


def _write_atomically(path: Path, write: Callable, who: str) -> None:
    """Write a file whole or not at all: ``write(buffer)`` serialises into memory, then the bytes go to a temporary
    file beside ``path`` that replaces it (a full disk, a quota: an ``OSError`` naming ``path`` and the reason; no
    partial file is left, and a file already at ``path`` is kept as it was).

    Example:
        >>> import tempfile
        >>> target = Path(tempfile.mkdtemp()) / "a.bin"
        >>> _write_atomically(target, lambda f: f.write(b"data"), who="--out")
        >>> target.read_bytes(), sorted(p.name for p in target.parent.iterdir())
        (b'data', ['a.bin'])
    """
    import contextlib
    import errno
    import io

    from snnlab.data.cache import write_atomically

    buffer = io.BytesIO()
    write(buffer)
    real = Path(os.path.realpath(path))  # (a symlink's target is written, as a plain write would; the link is kept)

    def write_file(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            with contextlib.suppress(FileNotFoundError):  # a file replaced keeps its permissions (not the umask's)
                os.chmod(f.fileno(), os.stat(real).st_mode & 0o7777)
            f.write(buffer.getbuffer())

    try:
        write_atomically(real, write_file, fsync=True)  # (a full disk can refuse the data only at the fsync)
    except OSError as exc:  # (the temporary file is already removed)
        reason = "no space left on device" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
        kept = "; the file already there is kept as it was" if path.exists() else "; nothing written"
        error = type(exc)(f"{who}: cannot write {path}: {reason}{kept}")
        error.errno = exc.errno
        raise error from exc


def cmd_export(args: argparse.Namespace) -> int:
    """``snnlab export RUN --nir FILE``: a trained run's network as a NIR graph (see :mod:`snnlab.interop.nir`)."""
    from snnlab.extras import require
    from snnlab.interop.nir import to_nir
    from snnlab.training.model import model_and_checkpoint

    nir = require("nir", extra="interop", feature="snnlab export")
    out = Path(args.nir).expanduser()  # (--nir=~/a.nir: bash leaves that ~)
    if not out.parent.is_dir():
        raise FileNotFoundError(f"--nir: the folder {out.parent} does not exist")
    model, cfg, ckpt = model_and_checkpoint(Path(args.run).expanduser())  # (a model of the user's own: refused)
    graph = to_nir(model, dt=args.dt)
    _write_atomically(out, lambda f: nir.write(f, graph), who="--nir")
    kinds = [type(graph.nodes[k]).__name__ for k in graph.nodes if k not in ("input", "output")]
    taus = "learned" if cfg.learn_tau else f"{cfg.tau_mem:g} steps = {cfg.tau_mem * args.dt:g} s"
    print(f"snnlab export: wrote {out} ({_export_label(ckpt, cfg, model)}; {len(kinds)} nodes: "
          f"{', '.join(kinds)}; dt = {args.dt:g} s, "
          f"tau_mem {taus}{'' if cfg.tau_syn is None else f', tau_syn {cfg.tau_syn:g} steps'})")
    if cfg.neuron == "noisy" or cfg.mask_p > 0:
        print("snnlab export: the graph holds the deterministic network the run evaluates with (noise and spike masks "
              "act in training only and have no NIR node)")
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    from snnlab.dashboard.serve import require_panel, serve_dashboard, startup_line

    require_panel()  # before the "open ..." line
    print(startup_line(args.port, args.address, args.store), flush=True)
    return serve_dashboard(port=args.port, address=args.address, show=args.show, store_path=args.store)


def cmd_info(args: argparse.Namespace) -> int:
    import json

    from snnlab.system_info import format_system_info, system_info

    info = system_info(data_root=args.data_root)
    print(json.dumps(info, indent=1) if args.json else format_system_info(info))
    return 0


#: the commands whose flags come from :class:`~snnlab.training.ExperimentConfig` (its module imports torch)
CONFIG_COMMANDS = ("train", "sweep")


def version_text() -> str:
    """What ``snnlab --version`` prints: ``snnlab`` and ``snnlab.__version__``, the version ``snnlab info`` reports
    too. (That literal is the one place of the version, which pyproject.toml reads; the installed package's metadata
    can lag behind it in an editable install, or describe another copy than the one imported.)

    Example:
        >>> import snnlab
        >>> version_text() == f"snnlab {snnlab.__version__}"
        True
    """
    import snnlab

    return f"snnlab {snnlab.__version__}"


def build_parser(config_flags: bool = True) -> argparse.ArgumentParser:
    """The ``snnlab`` parser. ``config_flags=False`` leaves the experiment flags (and ``--resume``'s help, which names
    some) out of the :data:`CONFIG_COMMANDS`, so that building it imports no torch: :func:`main` builds it so to parse
    the other commands."""
    def config_arguments(p: argparse.ArgumentParser) -> None:
        if config_flags:
            from snnlab.config_args import add_config_arguments

            add_config_arguments(p)

    parser = _Parser(prog="snnlab", description="snnlab: the interactive lab for spiking neural networks.",
                                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=version_text(),
                        help="print snnlab's version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser("demo", help="train a small SNN on the embedded digits and print accuracy and spikes")
    demo.add_argument("--epochs", type=int, default=3, help="training epochs [3]")
    demo.set_defaults(func=cmd_demo)

    def store_flags(p):
        p.add_argument("--store", help="run store (SQLite file) [$SNNLAB_STORE or runs/snnlab.sqlite]")
        p.add_argument("--no-store", action="store_true", help="do not record the run(s) in the store")

    train = sub.add_parser("train", help="train one configuration", formatter_class=argparse.RawDescriptionHelpFormatter,
                           description="Train one configuration; results go to the run store so the dashboard sees them.")
    config_arguments(train)
    store_flags(train)
    train.add_argument("--run-dir", help="folder for the checkpoint (resumable with --resume)")
    again = train.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help=_resume_help() if config_flags else None)
    again.add_argument("--overwrite", action="store_true", help="start a new run in a --run-dir that holds a checkpoint")
    train.add_argument("--name", help="run name in the store [the config's label]")
    train.add_argument("--threads", type=_positive_int, help=(
        "torch CPU threads [all cores; with --resume, the checkpoint's]; a run repeats bit for bit only on the same "
        "number (a sweep's runs use 1)"))
    train.add_argument("--quiet", action="store_true", help="no progress bars")
    train.add_argument("--save-config", metavar="FILE", help="write the configuration as JSON")
    train.set_defaults(func=cmd_train)

    sw = sub.add_parser("sweep", help="train a grid of configurations and print the trade-off table",
                        description="Train every combination of the --grid values over the base configuration "
                                    "given by the other flags, then print the trade-off table and its Pareto front.")
    sw.add_argument("--grid", action="append", required=True, metavar="FIELD=V1,V2",
                    help="a field and its values, e.g. neuron=ttfs,multi_spike (repeat for more fields; "
                         "';' separates list and dict values: hidden=64;128,128)")
    sw.add_argument("--workers", type=_positive_int,
                    help="parallel worker processes, also of --dask local [CPU count, at most one per run]")
    sw.add_argument("--dask", metavar="ADDRESS", help="run on a dask.distributed scheduler ('local' = a LocalCluster)")
    sw.add_argument("--robustness", metavar="KIND:LEVEL", action="append",
                    help="also measure accuracy under a perturbation (jitter, deletion, insertion, gaussian), "
                         "e.g. jitter:2 (repeatable)")
    sw.add_argument("--run-root", help="folder for each run's checkpoint (a subfolder per configuration); "
                                       "rerunning a sweep with the same --run-root reuses finished runs and "
                                       "resumes interrupted ones")
    sw.add_argument("--out", metavar="CSV", help="write the trade-off table as CSV (updated as runs end)")
    sw.add_argument("--threads", type=_positive_int, default=1,
                    help="torch CPU threads of each run (runs train side by side in --workers processes; a run "
                         "repeats bit for bit, or resumes so, only on the same number) [1]")
    sw.add_argument("--quiet", action="store_true", help="no progress bar")
    config_arguments(sw)
    store_flags(sw)
    sw.set_defaults(func=cmd_sweep)

    runs = sub.add_parser("runs", help="list, show, compare or delete runs in the store",
                          description="List (the default), show or compare the runs in the store, newest first (compare with "
                                      "runs named: in the order given). "
                                      f"Names are cut to {NAME_WIDTH} characters (--wide: whole), messages to the last "
                                      f"line of their text ({MESSAGE_WIDTH} characters), and the table to the terminal's "
                                      "width; what is left out is said on stderr (compare: the runs without results "
                                      "too; exit status 1 when none of the runs asked for has results). The store is "
                                      "opened read-only: listing never changes it. `runs delete RUN...` deletes runs "
                                      "and their metrics from the store (all or none: not a running one), after asking "
                                      "on a terminal (--yes: without asking, as a script must say; exit status 1 when "
                                      "not confirmed); the store file keeps its size (SQLite reuses the space for new "
                                      "runs; `sqlite3 STORE VACUUM` shrinks it).")
    runs.add_argument("action", nargs="?", default="list", choices=["list", "show", "compare", "delete"])
    runs.add_argument("run_ids", nargs="*", metavar="RUN",
                      help="runs to show / compare (compare: in this order) / delete: a run id, a unique start of one, "
                           "or a run's name when only one run has it")
    runs.add_argument("--yes", action="store_true", help="delete: do not ask (needed where stdin is not a terminal)")
    runs.add_argument("--force", action="store_true",
                      help="delete: also runs shown running or paused, for runs known to have stopped that the store "
                           "cannot tell (an older store's, one that died on another host)")
    runs.add_argument("--files", action="store_true",
                      help="delete: also remove each run's checkpoint (when it still holds that run) and its run folder "
                           "when the folder holds nothing but snnlab's files (checkpoint.pt, config.json; a folder "
                           "with anything else is kept, and said so)")
    runs.add_argument("--store", help="run store (SQLite file) [$SNNLAB_STORE or runs/snnlab.sqlite]")
    runs.add_argument("--status", action="append", metavar="STATUS",
                      help="only runs with this status (finished, failed, running, stopped, died: a running run "
                           "whose process on this host is gone, ...; repeat or comma-separate for several)")
    runs.add_argument("--limit", type=_count, default=RUNS_LIMIT, metavar="N",
                      help=f"the newest N runs (list, and compare without ids) [{RUNS_LIMIT}]; 0: all")
    runs.add_argument("--wide", action="store_true",
                      help="all columns and whole names, not cut to the terminal's width")
    runs.add_argument("--timeout", type=_seconds, default=RUNS_WAIT, metavar="SECONDS",
                      help=f"how long to wait for a store another process holds locked (opening it waits at least 1 s: "
                           f"another session's close holds it briefly) [{RUNS_WAIT:g}]")
    runs.set_defaults(func=cmd_runs)

    export = sub.add_parser("export", help="write a trained run's network as a NIR graph (other simulators, hardware)",
                            description="Write the network of a training checkpoint as a NIR graph (Neuromorphic "
                                        "Intermediate Representation), which snnTorch, Norse, Lava, Sinabs and "
                                        "neuromorphic toolchains read. Needs pip install \"snnlab[interop]\". A "
                                        "subtract-reset neuron becomes a membrane, a threshold and a reset loop; TTFS "
                                        "(max_spikes), noise or masks at inference and ALIF have no NIR form.")
    export.add_argument("run", help="the run folder (holding checkpoint.pt) or the checkpoint file")
    export.add_argument("--nir", required=True, help="the NIR file to write (HDF5, e.g. model.nir)")
    export.add_argument("--dt", type=float, default=1e-3,
                        help="seconds per time step: NIR time constants are tau_mem * dt [1e-3; snnTorch reads 1e-4]")
    export.set_defaults(func=cmd_export)

    dash = sub.add_parser("dashboard", help="serve the live-training dashboard (Panel) on localhost",
                          description="Serve the snnlab dashboard, a Panel web app, and print its address "
                                      "(http://localhost:5006/app by default; Ctrl-C stops the server). In a browser "
                                      "tab you configure and train a network live (spike rasters, membranes, curves), "
                                      "compare the runs of the run store (--store) and explore their trade-offs, and "
                                      "launch sweeps. Each tab trains on its own; closing a tab stops its training "
                                      "(a checkpoint is kept) and cancels its pending sweep runs. It listens on "
                                      "127.0.0.1 (this machine only) unless --address says otherwise; it needs pip "
                                      "install \"snnlab[lab]\".")
    dash.add_argument("--port", type=int, default=5006, help="port to serve on [5006]")
    dash.add_argument("--address", default="127.0.0.1", help="bind address [127.0.0.1: this machine only]")
    dash.add_argument("--show", action="store_true", help="open a browser tab")
    dash.add_argument("--store", help="run store (SQLite file) [$SNNLAB_STORE or runs/snnlab.sqlite]")
    dash.set_defaults(func=cmd_dashboard)

    info = sub.add_parser("info", help="what this machine offers snnlab: versions, GPUs, backends, extras, datasets "
                                       "(paste it into a bug report)")
    info.add_argument("--data-root", help="the data folder to look for datasets in [the shared data folder]")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(func=cmd_info)
    parser.command_parsers = dict(sub.choices)  # (main reports a subcommand's unknown arguments with its usage)
    return parser


class _Parser(argparse.ArgumentParser):
    """argparse's parser, whose usage errors also name the unknown options :func:`main` found on the command line
    (``typos``, set on the parser that parses them): a typo can make argparse report something else first
    (``runs --stauts failed`` takes ``failed`` for the action, ``sweep --gird ...`` says ``--grid`` is missing)."""

    typos = ""

    def error(self, message: str):
        if self.typos and not message.startswith("unrecognized arguments"):
            message = f"{message} ({self.typos})"
        super().error(message)


def _long_options(parser: argparse.ArgumentParser) -> list[str]:
    return [o for action in parser._actions for o in action.option_strings if o.startswith("--")]


def _typed_options(words: list[str]) -> list[str]:
    """The long options in ``words`` before a ``--`` (after it every word is a value), ``--name=value`` as ``--name``."""
    out = []
    for word in words:
        if word == "--":
            break
        if word.startswith("--"):
            out.append(word.split("=", 1)[0])
    return out


def _unknown_options(parser: argparse.ArgumentParser, words: list[str]) -> list[str]:
    """The long options in ``words`` that ``parser`` does not know, neither whole nor as an abbreviation.

    Example:
        >>> p = argparse.ArgumentParser(prog="x")
        >>> _ = p.add_argument("--hidden")
        >>> _unknown_options(p, ["--hid", "3", "--hiden=3", "-1", "--", "--other"])
        ['--hiden']
    """
    options = _long_options(parser)
    return [word for word in _typed_options(words)
            if word not in options and not (parser.allow_abbrev and any(o.startswith(word) for o in options))]


def _did_you_mean(parser: argparse.ArgumentParser, typed: list[str]) -> str:
    """`` (did you mean --hidden?)`` for the options in ``typed`` close to one of ``parser``'s (a typo: ``--hiden``),
    or, on the top-level parser, to one of a command's (``snnlab --hidden``: it goes after the command); else ``""``."""
    options, commands = _long_options(parser), getattr(parser, "command_parsers", {})
    hints = []
    for word in typed:
        close = difflib.get_close_matches(word, [o for o in options if o != word], n=1, cutoff=0.75)
        if close:
            hint = close[0]
        else:  # an option of a command, given before it
            near = {name: difflib.get_close_matches(word, _long_options(p), n=1, cutoff=0.75)
                    for name, p in commands.items()}
            near = {name: m[0] for name, m in near.items() if m}
            if not near:
                continue
            option = max(set(near.values()), key=list(near.values()).count)
            hint = f"snnlab {'/'.join(n for n, o in near.items() if o == option)} {option}, after the command"
        hints.append(hint if len(typed) == 1 else f"{hint} for {word}")
    return f" (did you mean {', '.join(hints)}?)" if hints else ""


def _unrecognized(parser: argparse.ArgumentParser, extra: list[str]) -> str:
    """argparse's "unrecognized arguments" message for ``extra``, with a "did you mean" for each option that is close
    to one of ``parser``'s (a typo: ``--hiden`` for ``--hidden``).

    Example:
        >>> p = argparse.ArgumentParser(prog="x")
        >>> _ = p.add_argument("--hidden")
        >>> _unrecognized(p, ["--hiden=32", "7"])
        'unrecognized arguments: --hiden=32 7 (did you mean --hidden?)'
        >>> _unrecognized(p, ["--", "--hidden"])  # after --, values: no option to suggest
        'unrecognized arguments: -- --hidden'
    """
    return f"unrecognized arguments: {' '.join(extra)}" + _did_you_mean(parser, _typed_options(extra))


def _command_index(argv: list[str]) -> int:
    """The index of the command word in ``argv`` (the first word that is not an option; after a ``--``, none:
    ``len(argv)``)."""
    at = next((i for i, word in enumerate(argv) if not word.startswith("-")), len(argv))
    return len(argv) if at < len(argv) and "--" in argv[:at] else at


#: the top-level options that parse without the experiment flags (argparse acts on each and exits)
_NO_CONFIG_OPTIONS = ("-h", "--help", "--version")


def _needs_config_flags(argv: list[str]) -> bool:
    """Whether parsing ``argv`` needs the experiment flags (:func:`build_parser`'s ``config_flags``): for a
    :data:`CONFIG_COMMANDS` command, and for options before the command (but ``--help`` and ``--version``), whose "did
    you mean" may name one of theirs. ``snnlab runs ...``, ``snnlab --help``, ``snnlab --version``, ``snnlab info
    --help`` ... parse without them.

    Example:
        >>> _needs_config_flags(["runs", "list"]), _needs_config_flags(["--help"]), _needs_config_flags(["train", "-h"])
        (False, False, True)
        >>> _needs_config_flags(["--version"])
        False
        >>> _needs_config_flags(["--hidden", "3", "runs"])  # (snnlab train --hidden, after the command?)
        True
    """
    at = _command_index(argv)
    return (at < len(argv) and argv[at] in CONFIG_COMMANDS) or any(w not in _NO_CONFIG_OPTIONS for w in argv[:at])


def _note_typos(parser: argparse.ArgumentParser, argv: list[str]) -> None:
    """Set ``typos`` (see :class:`_Parser`) on the parser that will parse each unknown long option in ``argv``: the
    top-level parser for those before the command, the command's parser for those after it."""
    commands = parser.command_parsers
    at = _command_index(argv)
    parts = [(parser, argv[:at])]
    if at < len(argv) and argv[at] in commands:
        parts.append((commands[argv[at]], argv[at + 1:]))
    for p, words in parts:
        unknown = _unknown_options(p, words)
        if unknown:
            hint = _did_you_mean(p, unknown)  # " (did you mean ...?)"
            p.typos = f"unrecognized arguments: {' '.join(unknown)}" + (f"; {hint[2:-1]}" if hint else "")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``snnlab`` command. A reader of its output that stops early (``| head``, a pager quit) ends
    it quietly, with exit status 0, as ``head`` itself leaves it (not 141: a script's ``set -o pipefail`` passes);
    what is left to print is dropped, and a training or sweep goes on to its end."""
    try:
        status = _parse_and_run(argv)
    except BrokenPipeError:  # (from any command, or --help)
        status = 0
    except KeyboardInterrupt as exc:  # Ctrl-C while starting (torch importing for the flags): 130, as later
        status = _exit_status(exc)
    _settle_output()
    return status


def _parse_and_run(argv: list[str] | None) -> int:
    """:func:`main`'s work: parse ``argv`` (default the command line's) and run the command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(config_flags=_needs_config_flags(argv))  # (without torch for commands that need none)
    _note_typos(parser, argv)
    try:
        args, extra = parser.parse_known_args(argv)
        command = getattr(args, "command", None)
        own = parser.command_parsers.get(command, parser)  # a subcommand's errors come with its own usage
        if (extra and command == "runs" and args.action in ("show", "compare", "delete")
                and not any(e.startswith("-") for e in extra)):
            args.run_ids = list(args.run_ids) + extra  # ids after --store (argparse ends a '*' positional early)
        elif command == "runs" and args.action == "list" and (args.run_ids or extra) and \
                not any(e.startswith("-") for e in extra):
            own.error(f"unrecognized arguments: {' '.join([*args.run_ids, *extra])}: `runs list` takes no run ids "
                      "(`snnlab runs show RUN` shows one run, `snnlab runs compare RUN...` compares runs)")
        elif extra:
            own.error(_unrecognized(own, extra))
    except SystemExit as exc:  # --help (0) or a usage error (2, message already printed)
        return int(exc.code or 0)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    return _run_command(args)


def _run_command(args: argparse.Namespace) -> int:
    """Run the parsed command; its errors as one line on stderr and an exit status (2: bad input, 1: it failed,
    128 + n: stopped by signal n). A ``BrokenPipeError`` (the output's reader has gone) is :func:`main`'s."""
    import sqlite3

    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:
        raise
    except (FileNotFoundError, KeyError, ValueError) as exc:  # (ValueError: a ConfigError too)
        text = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc  # str(KeyError) adds quotes
        _say(f"snnlab {args.command}: error: {text}")
        return 2
    except ImportError as exc:  # an optional dependency (an extra) is not installed: the message says which
        _say(f"snnlab {args.command}: error: {exc}")
        return 1
    except (RuntimeError, TypeError, OSError) as exc:  # e.g. --device cuda without a GPU, a bad data_kwargs key
        _say(f"snnlab {args.command}: error: {type(exc).__name__}: {exc}")
        return 1
    except sqlite3.Error as exc:  # a locked or damaged run store
        from snnlab.experiments.store import default_store_path, sqlite_advice

        where = getattr(args, "store", None) or default_store_path()
        _say(f"snnlab {args.command}: error: run store {where}: {type(exc).__name__}: {exc}{sqlite_advice(exc)}")
        return 1
    except KeyboardInterrupt as exc:
        return _exit_status(exc)


def _settle_output() -> None:
    """Flush stdout and stderr; one whose reader has gone (a closed pipe, a hung-up terminal) is pointed at
    ``os.devnull``, so that Python's own flush at exit neither prints an error nor changes the exit status."""
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            _drop_output(stream)


if __name__ == "__main__":
    sys.exit(main())
