"""snnlab info: the machine report (versions, GPUs, backends, extras, datasets found)."""
import json
import re
import sys
import tomllib
import wave
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from shd_files import write_shd_layout  # noqa: E402

from snnlab import __version__  # noqa: E402
from snnlab.cli import main  # noqa: E402
from snnlab.data.neuromorphic import NEUROMORPHIC_DATASETS, write_nmnist_bin  # noqa: E402
from snnlab.kernels.dispatch import resolve_backend  # noqa: E402
from snnlab.kernels.lif_cpu import cpu_kernel_error  # noqa: E402
from snnlab.system_info import EXTRA_PACKAGES, format_system_info, system_info  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _data_folder(root: Path) -> None:
    """SHD, N-MNIST, DVS Gesture and FSDD in their loaders' layouts (SSC and POKER-DVS left out)."""
    (root / "SHD").mkdir()
    write_shd_layout(root / "SHD" / "shd_train.h5", 2, 20)
    digit = root / "NMNIST" / "Train" / "3"
    digit.mkdir(parents=True)
    write_nmnist_bin(digit / "00001.bin", np.array([1]), np.array([2]), np.array([10]), np.array([1]))
    user = root / "ibmGestureTrain" / "user01_led"
    user.mkdir(parents=True)
    np.save(user / "0.npy", np.array([[1, 2, 1, 0.0]]))
    rec = root / "fsdd" / "recordings"
    rec.mkdir(parents=True)
    with wave.open(str(rec / "0_jackson_0.wav"), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(8000)
        w.writeframes(np.zeros(800, np.int16).tobytes())


def test_the_report_finds_the_datasets_where_their_loaders_look(tmp_path):
    _data_folder(tmp_path)
    info = system_info(data_root=tmp_path)
    assert info["data_root"] == str(tmp_path)
    assert set(info["datasets"]) == set(NEUROMORPHIC_DATASETS) | {"fsdd"}
    assert info["datasets"]["shd"] == str(tmp_path / "SHD" / "shd_train.h5")
    assert info["datasets"]["nmnist"] == str(tmp_path / "NMNIST" / "Train")
    assert info["datasets"]["dvsgesture"] == str(tmp_path / "ibmGestureTrain")
    assert info["datasets"]["fsdd"] == str(tmp_path / "fsdd" / "recordings")
    assert info["datasets"]["ssc"] is None and info["datasets"]["pokerdvs"] is None
    # what it says is found, the loaders load
    from snnlab.data.audio import load_fsdd
    from snnlab.data.neuromorphic import load_dvs_gesture, load_nmnist, load_shd

    assert len(load_shd(tmp_path, "train", n_time_bins=4)) == 2
    assert len(load_nmnist(tmp_path, "train", n_time_bins=4)) == 1
    assert len(load_dvs_gesture(tmp_path, "train", n_time_bins=4)) == 1
    assert len(load_fsdd(tmp_path, split="all")) == 1


def test_the_report_states_versions_backends_and_gpus():
    info = system_info(data_root="/nonexistent")
    assert info["snnlab"] == __version__ and info["torch"]["version"] == torch.__version__
    assert info["torch"]["threads"] == torch.get_num_threads()
    assert info["kernels"]["auto_backend"]["cpu float32"] == resolve_backend("auto", "cpu", torch.float32)
    expected = "available" if cpu_kernel_error() is None else "unavailable"
    assert info["kernels"]["compiled_cpu_loop"].startswith(expected)
    assert len(info["gpus"]) == (torch.cuda.device_count() if torch.cuda.is_available() else 0)
    assert info["extras"]["lab"]["panel"] is not None  # the test environment has every extra
    assert json.loads(json.dumps(info)) == info  # plain data


def test_every_extra_of_pyproject_is_reported():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for extra, requirements in extras.items():
        if extra == "dev":
            continue
        names = {re.match(r"[A-Za-z0-9_.-]+", r).group(0).replace("-", "_").lower() for r in requirements}
        assert names <= set(EXTRA_PACKAGES[extra]), (extra, names)
    assert set(EXTRA_PACKAGES) == set(extras) - {"dev"}


def test_the_command_prints_text_and_json(tmp_path, capsys):
    _data_folder(tmp_path)
    assert main(["info", "--data-root", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"snnlab {__version__}") and f"shd: {tmp_path / 'SHD' / 'shd_train.h5'}" in text
    assert "ssc: not found" in text and "backend='auto' takes: cpu float32 ->" in text
    assert main(["info", "--json", "--data-root", str(tmp_path)]) == 0
    assert json.loads(capsys.readouterr().out)["datasets"]["nmnist"] == str(tmp_path / "NMNIST" / "Train")
    assert format_system_info(system_info(data_root=tmp_path)) == text.rstrip("\n")
