"""The ``snnlab`` command starts without torch where it needs no tensors; ``import snnlab`` imports its public names
(PEP 562) on first access.

Each import check runs in a fresh interpreter (this one has torch loaded already) and prints its findings as JSON.
"""
from __future__ import annotations

import ast
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

import snnlab
from snnlab.experiments import RunStore

PACKAGE = Path(snnlab.__file__).parent


def fresh(code: str, **env: str | None) -> dict:
    """Run ``code`` in a fresh interpreter (``env`` changes its environment: None removes a variable) and return the
    JSON it printed last."""
    environ = dict(os.environ)
    for key, value in env.items():
        environ.pop(key, None) if value is None else environ.__setitem__(key, value)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environ, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture
def store(tmp_path) -> tuple[str, list[str]]:
    """A run store holding a finished run with results and a created one; returns its path and their ids."""
    path = str(tmp_path / "runs.sqlite")
    s = RunStore(path)
    try:
        done = s.create_run({"neuron": "lif", "hidden": [64]}, name="done")
        s.set_summary(done, {"accuracy": 0.9, "spikes_per_sample": 12.0})
        s.set_status(done, "finished")
        fresh_run = s.create_run({"neuron": "ttfs", "hidden": [32]}, name="new")
    finally:
        s.close()
    return path, [done, fresh_run]


def test_commands_that_need_no_tensors_never_import_torch(store):
    path, (done, new) = store
    commands = [[], ["--help"], ["runs", "--help"], ["demo", "--help"], ["export", "--help"], ["dashboard", "--help"],
                ["info", "--help"], ["runs", "list", "--store", path], ["runs", "--store", path, "--status", "finished"],
                ["runs", "show", done[:6], "--store", path], ["runs", "compare", "--store", path],
                ["runs", "--status", "bogus", "--store", path],  # a usage error
                ["runs", "delete", new, "--yes", "--store", path], ["runs", "list", "--store", path]]
    code = (
        "import contextlib, io, json, sys\n"
        "import snnlab.cli\n"
        "found = [['import snnlab.cli', None, 'torch' in sys.modules]]\n"
        f"for argv in {commands!r}:\n"
        "    out = io.StringIO()\n"
        "    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):\n"
        "        rc = snnlab.cli.main(argv)\n"
        "    found.append([' '.join(argv), rc, 'torch' in sys.modules, out.getvalue()])\n"
        "print(json.dumps(found))\n")
    found = fresh(code)
    assert [(what, torch) for what, _, torch, *_ in found if torch] == []  # each command, and all of them in turn
    outputs = {what: (rc, text) for what, rc, _, *text in found[1:]}
    assert outputs["--help"][0] == 0 and "runs" in outputs["--help"][1][0]
    assert outputs[f"runs show {done[:6]} --store {path}"][0] == 0  # the commands did their work
    assert outputs[f"runs --status bogus --store {path}"][0] == 2
    assert outputs[f"runs delete {new} --yes --store {path}"] == (0, [f"deleted run {new} (new, created)\n"])
    assert new not in outputs[f"runs list --store {path}"][1][0] and done in outputs[f"runs list --store {path}"][1][0]


def test_train_and_sweep_still_parse_their_experiment_flags():
    from snnlab.cli import _needs_config_flags, build_parser

    assert _needs_config_flags(["train", "--hidden", "32"]) and _needs_config_flags(["sweep", "--help"])
    assert _needs_config_flags(["--hiden", "3"])  # its "did you mean" names `snnlab train/sweep --hidden`
    assert not _needs_config_flags(["runs", "--hidden"]) and not _needs_config_flags(["-h"])
    assert build_parser().parse_args(["train", "--hidden", "32", "--epochs", "2"]).hidden == [32]
    light = build_parser(config_flags=False)
    assert light.parse_args(["runs", "show", "abc", "--wide"]).run_ids == ["abc"]
    assert "--hidden" not in light.command_parsers["train"].format_help()


#: a fresh interpreter's watch on the import of torch: it prints ``stage`` (a global of the code; to the real stdout,
#: also where the code redirects it) and ends the process there, so torch never loads (the tests stay fast)
WATCH_TORCH = (
    "import json, os, sys\n"
    "class Watch:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name == 'torch':\n"
    "            print(json.dumps(stage), file=sys.__stdout__, flush=True)\n"
    "            os._exit(0)\n"
    "sys.meta_path.insert(0, Watch())\n")


def test_import_snnlab_imports_torch_on_first_use_of_a_layer_only():
    code = WATCH_TORCH + (
        "stage = 'import snnlab'\n"
        "import snnlab\n"
        "stage = 'dir(snnlab), snnlab.__version__'\n"
        "dir(snnlab), snnlab.__version__\n"
        "stage = 'the run store'\n"
        "import snnlab.experiments\n"
        "from snnlab.experiments import RunStore, default_store_path\n"
        "stage = 'snnlab.LIF'\n"
        "snnlab.LIF\n"
        "stage = None\n"
        "print(json.dumps('torch never imported'))\n")
    assert fresh(code) == "snnlab.LIF"


def test_the_lazy_names_are_the_layers_themselves():
    import snnlab.core.adaptive
    import snnlab.core.neurons
    import snnlab.core.surrogates
    import snnlab.experiments
    import snnlab.experiments.sweeps
    from snnlab import ALIF, surrogates
    from snnlab.experiments import sweep

    assert snnlab.LIF is snnlab.core.neurons.LIF and snnlab.__getattr__("LIF") is snnlab.core.neurons.LIF
    assert surrogates is snnlab.surrogates is snnlab.core.surrogates and callable(snnlab.surrogates.register)
    assert ALIF is snnlab.core.adaptive.ALIF and sweep is snnlab.experiments.sweeps.sweep
    star: dict = {}
    exec("from snnlab import *", star)
    assert set(snnlab.__all__) <= set(star) and star["LIF"] is snnlab.LIF
    assert set(snnlab.__all__) <= set(dir(snnlab))
    assert set(snnlab.experiments.__all__) <= set(dir(snnlab.experiments))


def test_thp_setting_is_made_before_torch_is_imported_through_any_snnlab_module():
    code = WATCH_TORCH + (
        "stage = None\n"
        "import snnlab.core.neurons  # (which imports the package snnlab first)\n"
        "print(json.dumps('torch never imported'))\n")
    code = code.replace("json.dumps(stage)", "json.dumps(os.environ.get('THP_MEM_ALLOC_ENABLE'))")
    assert fresh(code, THP_MEM_ALLOC_ENABLE=None) == "1"
    assert fresh(code, THP_MEM_ALLOC_ENABLE="0") == "0"  # the opt-out stays the user's


def test_unknown_attributes_raise_attribute_error_naming_them():
    import snnlab.experiments

    with pytest.raises(AttributeError, match="'snnlab' has no attribute 'no_such_layer'"):
        snnlab.no_such_layer  # noqa: B018
    with pytest.raises(AttributeError, match="'snnlab.experiments' has no attribute 'no_such_thing'"):
        snnlab.experiments.no_such_thing  # noqa: B018
    assert not hasattr(snnlab, "Trainer")


def test_models_pickle_under_their_module_paths():
    net = snnlab.Sequential(snnlab.DelayedLinear(3, 4, max_delay=2), snnlab.LIF())
    back = pickle.loads(pickle.dumps(net))
    assert type(back[1]) is snnlab.core.neurons.LIF and type(back) is snnlab.core.network.Sequential
    assert snnlab.LIF.__module__ == "snnlab.core.neurons"


@pytest.mark.parametrize("package", ["__init__.py", "experiments/__init__.py", "training/__init__.py"])
def test_the_names_type_checkers_see_are_the_lazy_ones(package):
    """The ``if TYPE_CHECKING:`` imports (what type checkers and IDEs read) name the same objects from the same
    modules as the run-time table, and ``__all__`` lists them."""
    tree = ast.parse((PACKAGE / package).read_text())
    block = next(node for node in tree.body if isinstance(node, ast.If) and getattr(node.test, "id", "") ==
                 "TYPE_CHECKING")
    base = ".".join(["snnlab", *Path(package).parent.parts])
    seen = {}
    for node in block.body:
        module = f"{base}.{node.module}" if node.level else node.module
        for alias in node.names:
            seen[alias.name] = f"{module}.{alias.name}"
    module = sys.modules[f"{base}"]
    table = {name: f"{where}.{name}" for name, where in module._LAZY.items()}
    table.update(getattr(module, "_LAZY_MODULES", {}))
    assert seen == table
    assert set(module.__all__) - {"__version__"} == set(table)


def test_the_subpackages_and_core_modules_are_reachable_as_attributes_after_import_snnlab():
    """``import snnlab`` used to import the whole core, so ``snnlab.core.neurons`` worked without importing it:
    it still does, and so do the other subpackages (each imported on first access)."""
    code = ("import json, snnlab\n"
            "ok = [snnlab.core.neurons.LIF is snnlab.LIF, snnlab.core.delays.DelayedLinear is snnlab.DelayedLinear,\n"
            "      snnlab.training.ExperimentConfig.__name__ == 'ExperimentConfig',\n"
            "      snnlab.metrics.__name__ == 'snnlab.metrics', 'kernels' in dir(snnlab)]\n"
            "try:\n"
            "    snnlab.core.no_such_module\n"
            "except AttributeError as e:\n"
            "    ok.append(\"'snnlab.core' has no attribute 'no_such_module'\" in str(e))\n"
            "print(json.dumps(ok))\n")
    assert fresh(code) == [True] * 6


def test_the_experiments_modules_are_reachable_as_attributes_after_import_snnlab_experiments():
    """The package imported its modules (``snnlab.experiments.sweeps.process_pool`` worked after ``import
    snnlab.experiments``); the lazy package imports them on first access, and the run store's without torch."""
    code = WATCH_TORCH + (
        "stage = None\n"
        "import snnlab.experiments\n"
        "ok = [snnlab.experiments.store.RunStore is snnlab.experiments.RunStore,\n"
        "      callable(snnlab.experiments.run_files.remove_run_files), 'sweeps' in dir(snnlab.experiments)]\n"
        "print(json.dumps(ok))\n")
    assert fresh(code) == [True, True, True]  # (no torch: the watch would have printed null)
    code = ("import json, snnlab.experiments\n"
            "print(json.dumps(snnlab.experiments.sweeps.sweep is snnlab.experiments.sweep))\n")
    assert fresh(code) is True


def test_dir_and_hasattr_of_the_core_as_before():
    """``dir(snnlab.core)`` listed the core's modules (``import snnlab`` imported them); ``hasattr`` with a name that
    is no module name answers False instead of raising ModuleNotFoundError."""
    code = ("import json, sys, snnlab.core\n"
            "names = dir(snnlab.core)\n"
            "ok = [{'neurons', 'delays', 'surrogates'} <= set(names), 'torch' not in sys.modules,\n"
            "      hasattr(snnlab.core, 'neurons.LIF'), hasattr(snnlab.core, 'no.such'), hasattr(snnlab.core, '')]\n"
            "print(json.dumps(ok))\n")
    assert fresh(code) == [True, True, False, False, False]


def test_introspection_of_snnlab_without_an_optional_extra_installed():
    """``dir(snnlab)`` lists the subpackages, which introspection then looks up: without ``snnlab[lab]`` (holoviews),
    ``hasattr(snnlab, "viz")``, ``inspect.getmembers(snnlab)`` and ``help(snnlab)`` raised the ImportError of
    ``snnlab.viz``; they answer as they did when ``import snnlab`` did not list it, and ``import snnlab.viz`` still
    says what to install."""
    code = ("import inspect, json, pydoc, sys\n"
            "sys.modules['holoviews'] = None  # (as where it is not installed)\n"
            "import snnlab\n"
            "ok = [hasattr(snnlab, 'viz'), 'LIF' in dict(inspect.getmembers(snnlab)), 'LIF' in pydoc.render_doc(snnlab)]\n"
            "try:\n"
            "    snnlab.viz\n"
            "except AttributeError as e:\n"
            "    ok.append('snnlab[lab]' in str(e))\n"
            "try:\n"
            "    import snnlab.viz\n"
            "except ImportError as e:\n"
            "    ok.append('snnlab[lab]' in str(e) and not isinstance(e, AttributeError))\n"
            "print(json.dumps(ok))\n")
    assert fresh(code) == [False, True, True, True, True]


def test_the_kernels_modules_are_reachable_as_attributes_after_import_snnlab():
    """``snnlab.kernels.dispatch`` worked after ``import snnlab`` (which imported it through the core): it still
    does, and ``dir`` lists the kernels' modules without importing them."""
    code = ("import json, sys, snnlab\n"
            "listed = 'dispatch' in dir(snnlab.kernels) and 'torch' not in sys.modules\n"
            "print(json.dumps([listed, snnlab.kernels.dispatch.__name__, hasattr(snnlab.kernels, 'no_such_module')]))\n")
    assert fresh(code) == [True, "snnlab.kernels.dispatch", False]


def test_version_prints_snnlab_and_its_version_without_importing_torch():
    """``snnlab --version`` and ``python -m snnlab --version``: ``snnlab <version>``, exit status 0, no torch."""
    code = ("import contextlib, io, json, sys\n"
            "import snnlab.cli\n"
            "out = io.StringIO()\n"
            "with contextlib.redirect_stdout(out):\n"
            "    rc = snnlab.cli.main(['--version'])\n"
            "print(json.dumps([rc, out.getvalue(), 'torch' in sys.modules]))\n")
    assert fresh(code) == [0, f"snnlab {snnlab.__version__}\n", False]
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "snnlab", "--version"], capture_output=True,
                          text=True, timeout=120)
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert (done.returncode, done.stdout) == (0, f"snnlab {snnlab.__version__}\n")
    assert "snnlab.cli" in imported and "torch" not in imported


def test_version_is_the_one_snnlab_info_reports(monkeypatch, capsys, tmp_path):
    """Both read ``snnlab.__version__`` (not the installed metadata, which an editable install can leave behind)."""
    from snnlab.cli import main

    monkeypatch.setattr(snnlab, "__version__", "9.8.7")
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == "snnlab 9.8.7\n"
    assert main(["info", "--data-root", str(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith("snnlab 9.8.7  (Python ")


def help_text(command: str) -> str:
    """What ``snnlab <command> --help`` prints in this interpreter (which has torch loaded), 100 columns wide."""
    import contextlib
    import io

    from snnlab.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main([command, "--help"]) == 0
    return out.getvalue()


@pytest.mark.parametrize("command", ["train", "sweep"])
def test_train_and_sweep_help_import_neither_torch_nor_numpy_and_print_the_same_text(command, monkeypatch):
    """Their flags come from ExperimentConfig, whose allowed values (resets, surrogates, readouts, sigma schedules,
    learning-rate schedules) and ``--resume``'s rule are read from torch-free homes; the text is the one printed
    where torch is loaded (it once imported torch, then numpy, to build it)."""
    monkeypatch.setenv("COLUMNS", "100")
    code = WATCH_TORCH.replace("name == 'torch'", "name in ('torch', 'numpy')") + (
        "import contextlib, io\n"
        "stage = 'snnlab.cli'\n"
        "import snnlab.cli\n"
        f"stage = '{command} --help'\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        f"    rc = snnlab.cli.main(['{command}', '--help'])\n"
        "print(json.dumps([rc, out.getvalue()]))\n")
    found = fresh(code, COLUMNS="100")
    assert found == [0, help_text(command)]  # (else the stage that imported torch or numpy)
    text = found[1]
    assert "--reset {subtract,zero}" in text and "--sigma-schedule {linear,cosine,exponential}" in text
    assert "--readout {membrane_sum,membrane_max,softmax_sum,spike_count,first_spike}" in text
    assert "--surrogate {atan,fast_sigmoid,triangle,sigmoid,gaussian,logistic}" in text


def test_the_configuration_works_without_torch_and_takes_tensors_once_torch_is_imported():
    """``import snnlab.training.config`` and ``from snnlab.training import ExperimentConfig`` import neither torch nor
    numpy; configurations build, label, save and load there. Imported afterwards, a tensor or a NumPy scalar given to a
    field is still stored as the Python number it holds, and an array or a NaN in one is refused as before."""
    code = WATCH_TORCH.replace("name == 'torch'", "name in ('torch', 'numpy')") + (
        "stage = 'import snnlab.training.config'\n"
        "import snnlab.training.config\n"
        "stage = 'from snnlab.training import ExperimentConfig'\n"
        "from snnlab.training import ConfigError, ExperimentConfig, PRESETS\n"
        "stage = 'a configuration'\n"
        "cfg = ExperimentConfig(hidden=[32], epochs=2, lr=0.01, reset='zero', readout='spike_count')\n"
        "again = ExperimentConfig.from_json(cfg.to_json(), validate=False)\n"
        "found = [cfg.label(), again.to_dict() == cfg.to_dict(), 'dcls_shd' in PRESETS]\n"
        "sys.meta_path.pop(0)  # (from here on, with torch and numpy)\n"
        "import numpy as np, torch\n"
        "cfg.epochs, cfg.lr = torch.tensor(4), np.float32(0.5)\n"
        "found += [cfg.epochs, type(cfg.epochs).__name__, cfg.lr, cfg.to_dict()['num_steps']]\n"
        "for bad in (torch.ones(2), np.array([float('nan')])):\n"
        "    try:\n"
        "        cfg.tau_mem = bad\n"
        "    except ConfigError as e:\n"
        "        found.append(str(e))\n"
        "print(json.dumps(found))\n")
    assert fresh(code) == [
        "digits 64-32-10 multi_spike atan T20 spike_count", True, True, 4, "int", 0.5, 20,
        "bad value for 'tau_mem': tau_mem must be a number, got an array of shape (2,)",
        "bad value for 'tau_mem': tau_mem must be a finite number, got nan"]


def test_the_training_package_imports_its_names_on_first_access():
    """``import snnlab.training`` imports no torch; each name is its module's (and kept once looked up), every module
    is an attribute as when the package imported them, and ``dir`` and ``from snnlab.training import *`` list
    ``__all__``."""
    code = WATCH_TORCH + (
        "stage = 'import snnlab.training, dir()'\n"
        "import snnlab.training as t\n"
        "names = dir(t)\n"
        "sys.meta_path.pop(0)  # (the names below import torch)\n"
        "star = {}\n"
        "exec('from snnlab.training import *', star)\n"
        "import snnlab.training.trainer, snnlab.training.checkpoint\n"
        "print(json.dumps([set(t.__all__) <= set(names), {'trainer', 'resume', 'config'} <= set(names),\n"
        "                  set(t.__all__) <= set(star), star['Trainer'] is t.trainer.Trainer,\n"
        "                  'Trainer' in vars(t), t.load_checkpoint is t.checkpoint.load_checkpoint,\n"
        "                  t.resume.check_resume_config.__module__, hasattr(t, 'no_such_name')]))\n")
    assert fresh(code) == [True, True, True, True, True, True, "snnlab.training.resume", False]


def test_the_choices_have_one_home_that_the_layers_and_the_configuration_share():
    """RESETS, the readouts, the surrogate names (and their registry) and the rule of what a resume keeps are
    written once, in torch-free modules the layers re-export; the configuration offers exactly those values."""
    import snnlab.core.delays
    import snnlab.core.neurons
    import snnlab.core.readout
    import snnlab.kernels.lif_common
    import snnlab.kernels.surrogate_math
    import snnlab.training.resume
    from snnlab.core import choices
    from snnlab.kernels import neuron_choices
    from snnlab.training import ExperimentConfig, resume_rule

    assert snnlab.core.neurons.RESETS is snnlab.kernels.lif_common.RESETS is neuron_choices.RESETS
    assert snnlab.core.readout.READOUTS is choices.READOUTS
    assert snnlab.core.readout.SPIKE_READOUTS is choices.SPIKE_READOUTS
    assert snnlab.kernels.surrogate_math.CUSTOM_SURROGATES is neuron_choices.CUSTOM_SURROGATES
    assert snnlab.kernels.surrogate_math.check_known_surrogate is neuron_choices.check_known_surrogate
    assert snnlab.training.resume.FIXED_ON_RESUME is resume_rule.FIXED_ON_RESUME
    assert snnlab.training.resume.fixed_on_resume_text is resume_rule.fixed_on_resume_text
    assert choices.SIGMA_SCHEDULES == snnlab.core.delays.DelaySchedule.KINDS  # (delays.py still writes its own)
    objects = {k: v["objects"] for k, v in ExperimentConfig.schema().items() if "objects" in v}
    assert objects["reset"] == list(neuron_choices.RESETS) and objects["readout"] == list(choices.READOUTS)
    assert objects["surrogate"] == list(neuron_choices.SURROGATE_NAMES)
    assert objects["sigma_schedule"] == list(snnlab.core.delays.DelaySchedule.KINDS)
