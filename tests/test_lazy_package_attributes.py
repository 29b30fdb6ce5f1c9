"""One PEP 562 helper (``snnlab._lazy.module_attributes``) makes the lazy names and modules of ``snnlab``,
``snnlab.experiments``, ``snnlab.training``, ``snnlab.core`` and ``snnlab.kernels`` alike."""
import json
import subprocess
import sys

import snnlab
import snnlab.experiments
import snnlab.training


def fresh(code: str):
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_every_public_module_of_snnlab_is_an_attribute_listed_by_dir_without_torch():
    """``snnlab.cli`` works after ``import snnlab`` as ``snnlab.core`` does (it was an
    AttributeError unless imported first), and listing them imports nothing."""
    code = ("import json, sys, snnlab\n"
            "names = dir(snnlab)\n"
            "listed = {'cli', 'core', 'experiments', 'LIF', 'surrogates'} <= set(names)\n"
            "no_torch = 'torch' not in sys.modules\n"
            "print(json.dumps([listed, no_torch, snnlab.cli.__name__, 'torch' not in sys.modules]))\n")
    assert fresh(code) == [True, True, "snnlab.cli", True]


def test_a_lazy_name_is_kept_in_the_package_after_first_access():
    code = ("import json, snnlab, snnlab.experiments\n"
            "before = 'RunStore' in vars(snnlab.experiments)\n"
            "snnlab.experiments.RunStore\n"
            "print(json.dumps([before, 'RunStore' in vars(snnlab.experiments),\n"
            "                  snnlab.surrogates is __import__('snnlab.core.surrogates').core.surrogates,\n"
            "                  'surrogates' in vars(snnlab)]))\n")
    assert fresh(code) == [False, True, True, True]


def test_an_experiments_module_whose_import_fails_is_no_attribute_but_import_says_why():
    """As ``snnlab.viz`` without holoviews: ``hasattr`` answers False and ``import`` raises the ImportError."""
    code = ("import json, sys\n"
            "sys.modules['torch'] = None  # (the sweeps need torch; the run store does not)\n"
            "import snnlab.experiments as e\n"
            "ok = [hasattr(e, 'sweeps'), hasattr(e, 'store'), 'sweeps' in dir(e)]\n"
            "try:\n"
            "    import snnlab.experiments.sweeps\n"
            "except ImportError as exc:\n"
            "    ok.append(not isinstance(exc, AttributeError))\n"
            "print(json.dumps(ok))\n")
    assert fresh(code) == [False, True, True, True]


def test_unknown_names_still_name_the_package():
    for package, name in ((snnlab, "no_such_layer"), (snnlab.experiments, "no_such_thing"),
                          (snnlab.training, "no_such_trainer")):
        try:
            getattr(package, name)
        except AttributeError as exc:
            assert f"module {package.__name__!r} has no attribute {name!r}" in str(exc)
        else:
            raise AssertionError(f"{package.__name__}.{name} resolved")


def test_the_packages_share_the_one_helper():
    """Each lazy package's ``__getattr__`` and ``__dir__`` come from ``snnlab._lazy.module_attributes`` (the helper
    lived in the kernels layer, which the top package and the others reached into)."""
    code = ("import json, snnlab, snnlab.core, snnlab.experiments, snnlab.kernels, snnlab.training\n"
            "packages = [snnlab, snnlab.core, snnlab.experiments, snnlab.kernels, snnlab.training]\n"
            "made = [(f.__module__, f.__qualname__) for p in packages for f in (p.__getattr__, p.__dir__)]\n"
            "print(json.dumps(made))\n")
    made = [["snnlab._lazy", f"module_attributes.<locals>.{name}"] for name in ("__getattr__", "__dir__")]
    assert fresh(code) == made * 5


def test_a_lazy_training_name_is_kept_and_a_module_is_an_attribute():
    code = ("import json, snnlab.training as t\n"
            "before = 'ExperimentConfig' in vars(t)\n"
            "cfg = t.ExperimentConfig\n"
            "print(json.dumps([before, 'ExperimentConfig' in vars(t), cfg is t.config.ExperimentConfig,\n"
            "                  t.lr_schedule.__name__, 'presets' in dir(t)]))\n")
    assert fresh(code) == [False, True, True, "snnlab.training.lr_schedule", True]
