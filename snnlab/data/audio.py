"""Audio -> spikes with a cochlea-like front end, and the Free Spoken Digit Dataset (FSDD).

Pipeline (all vectorised over a batch of recordings with ``torch``):

1. short-time Fourier transform (Hann window, hop = recording length / ``num_steps``);
2. a gammatone-like filterbank: ``n_channels`` band-pass filters with centre frequencies equally
   spaced on the ERB-rate scale (Glasberg & Moore 1990) and the magnitude response of a 4th-order
   gammatone filter, applied to the power spectrum;
3. half-wave rectification (band energies are non-negative; negative values from numerical noise
   are clipped) and compression: ``"log"`` (dB, clipped to a ``dynamic_range_db`` window below the
   recording's peak) or ``"power"`` (``energy ** 0.3``, like loudness), normalised to ``[0, 1]``;
4. spike encoding per channel: ``"integrate"`` (integrate-and-fire, sustained firing with rate
   proportional to the envelope, as the inner hair cells / SHD's cochlea model) or ``"delta"``
   (level-crossing / send-on-delta: a spike each time the envelope rises past another multiple of
   ``threshold``; fully vectorised).

The output is time-major ``[T, B, C]`` or SHD-like ``(times in seconds, units)`` via
:func:`spikes_to_events`. SHD itself has ``n_channels=700``.
"""
from __future__ import annotations

import math
import os
import re
import struct
import wave
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from snnlab.core.validation import all_finite, as_flag, as_number, check_non_negative, check_positive, is_integer

from .cache import files_cache_params

__all__ = [
    "find_fsdd",
    "read_wav",
    "erb_space",
    "gammatone_filterbank",
    "Cochlea",
    "audio_to_spikes",
    "spikes_to_events",
    "FSDDDataset",
    "load_fsdd",
    "fsdd_root",
]


def read_wav(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read a PCM ``.wav`` file (8/16/32-bit) with the stdlib ``wave`` module; returns ``(mono float32 in [-1, 1], rate)``.

    Multi-channel files are averaged to mono. A file that is not such a WAV (another format such as 24-bit or
    float WAV, a truncated or corrupt file) raises ``ValueError`` naming it; a missing file ``FileNotFoundError``.

    Example:
        >>> x, sr = read_wav(fsdd_root() / "recordings" / "0_george_0.wav")  # doctest: +SKIP
        >>> sr, x.dtype  # doctest: +SKIP
        (8000, dtype('float32'))
    """
    try:
        return _decode_wav(path)
    except (wave.Error, EOFError, ValueError, struct.error) as e:
        raise ValueError(f"read_wav: {path}: cannot read it as a WAV file ({_reason(e)}); supported are "
                         "uncompressed PCM WAV files with 8, 16 or 32-bit samples, any number of channels") from e


def _reason(e: Exception) -> str:
    """Why a WAV file could not be read, from the error of the ``wave`` module, ``struct`` or :func:`_decode_wav`."""
    if isinstance(e, EOFError):
        return "the file ends early" + (f": {e}" if str(e) else "")
    if isinstance(e, ValueError):
        return str(e)
    return f"{'wave' if isinstance(e, wave.Error) else 'struct'}.error: {e}"


def _decode_wav(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """The samples of :func:`read_wav`, with the ``wave`` module's and NumPy's own errors."""
    with wave.open(str(path), "rb") as w:
        sr, width, ch, n = w.getframerate(), w.getsampwidth(), w.getnchannels(), w.getnframes()
        raw = w.readframes(n)
    if len(raw) % (width * ch):
        raise ValueError(f"its data is {len(raw)} bytes, not a whole number of {ch}-channel {8 * width}-bit frames: "
                         "the file is truncated")
    if width == 1:
        x = (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    elif width == 2:
        x = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    elif width == 4:
        x = np.frombuffer(raw, dtype="<i4").astype(np.float32) / 2147483648.0
    else:
        raise ValueError(f"unsupported sample width {width} bytes")
    if ch > 1:
        x = x.reshape(-1, ch).mean(1)
    return x, sr


def _hz_to_erb_rate(f: np.ndarray | float) -> np.ndarray:
    return 21.4 * np.log10(1.0 + 0.00437 * np.asarray(f, dtype=np.float64))


def _erb_rate_to_hz(e: np.ndarray) -> np.ndarray:
    return (10.0 ** (np.asarray(e) / 21.4) - 1.0) / 0.00437


def erb_space(f_min: float, f_max: float, n: int) -> np.ndarray:
    """``n`` centre frequencies (Hz) equally spaced on the ERB-rate scale from ``f_min`` to ``f_max``.

    Example:
        >>> f = erb_space(100, 4000, 5)
        >>> round(float(f[0])), round(float(f[-1])), bool((np.diff(f) > 0).all())
        (100, 4000, True)
    """
    if n < 1 or not (0 < f_min < f_max):
        raise ValueError(f"erb_space: need n >= 1 and 0 < f_min < f_max, got n={n}, f_min={f_min}, f_max={f_max}")
    return _erb_rate_to_hz(np.linspace(_hz_to_erb_rate(f_min), _hz_to_erb_rate(f_max), n))


def gammatone_filterbank(
    n_channels: int, sample_rate: int, n_fft: int, f_min: float = 50.0, f_max: float | None = None, order: int = 4
) -> torch.Tensor:
    """Power-spectrum weights ``[n_channels, n_fft // 2 + 1]`` of gammatone-like band-pass filters.

    Channel ``c`` has centre ``fc`` (ERB-spaced) and power response
    ``(1 + ((f - fc) / (1.019 * ERB(fc)))**2) ** -order`` with ``ERB(f) = 24.7 * (4.37 f / 1000 + 1)``;
    each row is normalised to unit sum so channels are comparable.

    Example:
        >>> W = gammatone_filterbank(32, 8000, 256)
        >>> W.shape, bool(torch.allclose(W.sum(1), torch.ones(32)))
        (torch.Size([32, 129]), True)
    """
    f_max = 0.95 * sample_rate / 2 if f_max is None else float(f_max)
    if f_max > sample_rate / 2:
        raise ValueError(f"gammatone_filterbank: f_max={f_max} exceeds the Nyquist frequency {sample_rate / 2}")
    fc = erb_space(f_min, f_max, n_channels)[:, None]
    f = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)[None, :]
    erb = 24.7 * (4.37 * fc / 1000.0 + 1.0)
    w = (1.0 + ((f - fc) / (1.019 * erb)) ** 2) ** (-float(order))
    w /= w.sum(1, keepdims=True)
    return torch.from_numpy(w.astype(np.float32))


class Cochlea:
    """Cochlea-like audio-to-spike front end for batches of waveforms.

    Args:
        n_channels: number of frequency channels (SHD uses 700).
        sample_rate: input sample rate in Hz.
        num_steps: output time steps ``T`` for ``duration`` seconds.
        duration: seconds per recording; longer inputs are cut, shorter ones zero-padded. It must hold more
            than half an FFT window (``n_fft // 2`` samples: 128 at 8 kHz with the default ``win_ms``), else
            ``ValueError``.
        f_min, f_max: frequency range of the centre frequencies (``f_max`` default 0.95 * Nyquist):
            ``0 < f_min < f_max <= sample_rate / 2``.
        win_ms: STFT window length in milliseconds.
        compression: ``"log"`` or ``"power"``.
        dynamic_range_db: range kept below the peak by the log compression (> 0).
        encoding: ``"integrate"`` or ``"delta"``.
        threshold: delta threshold (``"delta"``, default 0.1) or firing threshold of the integrator
            (``"integrate"``, default 1.0); > 0.
        gain: envelope scaling per step for ``"integrate"`` (``1`` = at most one spike per step); finite, >= 0.
        binary: clamp spike counts to 0/1 per step.

    Every number must be finite; ``sample_rate``, ``duration``, ``win_ms``, ``dynamic_range_db`` and ``threshold``
    must be > 0. A setting outside its range raises ``ValueError`` naming it (``TypeError`` for a non-number), at
    construction, never NaN spikes.

    Example:
        >>> coch = Cochlea(n_channels=32, sample_rate=8000, num_steps=50, duration=0.5)
        >>> t = torch.arange(4000) / 8000
        >>> coch(torch.sin(2 * math.pi * 1000 * t)[None]).shape
        torch.Size([50, 1, 32])
    """

    def __init__(
        self,
        n_channels: int = 64,
        sample_rate: int = 8000,
        num_steps: int = 100,
        duration: float = 1.0,
        f_min: float = 50.0,
        f_max: float | None = None,
        win_ms: float = 25.0,
        compression: str = "log",
        dynamic_range_db: float = 60.0,
        encoding: str = "integrate",
        threshold: float | None = None,
        gain: float = 0.5,
        binary: bool = True,
    ) -> None:
        if compression not in ("log", "power"):
            raise ValueError(f"Cochlea: compression must be 'log' or 'power', got {compression!r}")
        if encoding not in ("integrate", "delta"):
            raise ValueError(f"Cochlea: encoding must be 'integrate' or 'delta', got {encoding!r}")
        binary = as_flag(binary, "binary", "Cochlea")
        if threshold is None:
            threshold = 0.1 if encoding == "delta" else 1.0  # envelopes lie in [0, 1]
        for name, v in (("num_steps", num_steps), ("n_channels", n_channels)):
            if not is_integer(v) or v < 1:
                raise ValueError(f"Cochlea: {name} must be an int >= 1, got {v!r}")
        num_steps, n_channels = int(num_steps), int(n_channels)
        # NaN, inf or a value <= 0 in any of these would give NaN envelopes, hence NaN (or, cast, all-zero) spikes
        for name, v in (("sample_rate", sample_rate), ("duration", duration), ("win_ms", win_ms),
                        ("dynamic_range_db", dynamic_range_db), ("threshold", threshold), ("f_min", f_min)):
            check_positive(v, name, "Cochlea")
        check_non_negative(gain, "gain", "Cochlea")  # a negative gain would drive the integrator to -1 "spikes"
        nyquist = float(sample_rate) / 2
        top = 0.95 * nyquist if f_max is None else as_number(f_max, "f_max", "Cochlea")
        if f_max is not None and not (math.isfinite(top) and top <= nyquist):
            raise ValueError(f"Cochlea: f_max must be a finite frequency <= sample_rate / 2 = {nyquist:g} Hz (the "
                             f"Nyquist frequency), got {f_max!r}")
        if not float(f_min) < top:
            which = f"f_max={f_max!r}" if f_max is not None else f"the default f_max 0.95 * sample_rate / 2 = {top:g}"
            raise ValueError(f"Cochlea: f_min={f_min!r} Hz must be below {which} Hz")
        self.n_channels, self.sample_rate, self.num_steps, self.duration = n_channels, sample_rate, num_steps, duration
        self.compression, self.dynamic_range_db = compression, float(dynamic_range_db)
        self.encoding, self.threshold, self.gain, self.binary = encoding, float(threshold), float(gain), binary
        self.n_samples = int(round(duration * sample_rate))
        self.hop = self.n_samples / num_steps  # samples between frame centres (frame i at floor(i * hop))
        self.win = max(8, int(round(win_ms * 1e-3 * sample_rate)))
        self.n_fft = 1 << max(8, math.ceil(math.log2(self.win)))
        if self.n_samples <= self.n_fft // 2:  # the reflect padding of the STFT needs more samples than it adds
            raise ValueError(
                f"Cochlea: duration={duration!r} s is {self.n_samples} samples at {sample_rate} Hz, but the "
                f"{win_ms!r} ms analysis window (FFT size {self.n_fft}) needs more than {self.n_fft // 2}; lengthen "
                f"duration (shorter recordings are zero-padded to it: audio_to_spikes(..., duration=...)) or "
                f"shorten win_ms")
        self.window = torch.hann_window(self.win)
        left = (self.n_fft - self.win) // 2  # the window centred in n_fft samples, as torch.stft pads it
        self._fft_window = torch.nn.functional.pad(self.window, (left, self.n_fft - self.win - left))
        self.weights = gammatone_filterbank(n_channels, sample_rate, self.n_fft, f_min, f_max)
        self.center_frequencies = erb_space(f_min, 0.95 * sample_rate / 2 if f_max is None else f_max, n_channels)

    def _fit(self, waves: torch.Tensor) -> torch.Tensor:
        n = waves.shape[-1]
        if n >= self.n_samples:
            return waves[..., : self.n_samples]
        return torch.nn.functional.pad(waves, (0, self.n_samples - n))

    def envelope(self, waves: torch.Tensor) -> torch.Tensor:
        """Compressed band envelopes in ``[0, 1]``, time-major ``[T, B, C]`` for waveforms ``[B, N]``.

        Example:
            >>> Cochlea(n_channels=8, num_steps=10, duration=0.1).envelope(torch.randn(2, 800)).shape
            torch.Size([10, 2, 8])
        """
        waves = torch.as_tensor(waves, dtype=torch.float32)
        if waves.dim() == 1:
            waves = waves[None]
        if waves.dim() != 2:
            raise ValueError(f"Cochlea: waves must be [B, N] or [N], got shape {tuple(waves.shape)}")
        if not all_finite(waves):
            raise ValueError("Cochlea: waves contain NaN or inf")
        x = self._fit(waves)
        # A short-time spectrum centred at sample floor(i * n_samples / T) for every step i, so that the T
        # steps cover the whole recording whether or not T divides its length (torch.stft's whole-sample
        # hop would leave the end out); where T divides it, these are exactly torch.stft's centred frames.
        pad = self.n_fft // 2
        padded = torch.nn.functional.pad(x[:, None], (pad, pad), mode="reflect")[:, 0]  # [B, N + n_fft]
        starts = torch.arange(self.num_steps) * self.n_samples // self.num_steps
        frames = padded[:, starts[:, None] + torch.arange(self.n_fft)]  # [B, T, n_fft]
        spec = torch.fft.rfft(frames * self._fft_window, dim=-1)  # [B, T, F]
        power = spec.real.square() + spec.imag.square()
        bands = torch.einsum("cf,btf->tbc", self.weights, power)  # [T, B, C]
        bands = bands.clamp_min(0.0)  # half-wave rectification of the band energy
        peak = bands.amax(dim=(0, 2), keepdim=True)  # per recording
        if self.compression == "log":
            db = 10.0 * torch.log10(bands + 1e-12) - 10.0 * torch.log10(peak + 1e-12)
            env = (1.0 + db / self.dynamic_range_db).clamp(0.0, 1.0)
        else:
            env = (bands / (peak + 1e-12)).pow(0.3)
        return torch.where(peak > 1e-10, env, torch.zeros_like(env))  # silent input -> no spikes

    def encode(self, env: torch.Tensor) -> torch.Tensor:
        """Spikes ``[T, B, C]`` from envelopes ``[T, B, C]`` in ``[0, 1]`` with the configured encoder.

        Example:
            >>> env = torch.linspace(0, 1, 11)[:, None, None]
            >>> int(Cochlea(encoding="delta", threshold=0.25).encode(env).sum())
            4
        """
        if self.encoding == "delta":
            level = torch.floor(env / self.threshold + 1e-6)
            prev = torch.cat([torch.zeros_like(level[:1]), level[:-1]])
            spikes = (level - prev).clamp_min(0.0)
        else:
            acc = torch.zeros_like(env[0])
            out = []
            for t in range(env.shape[0]):
                acc = acc + self.gain * env[t]
                s = torch.floor(acc / self.threshold)
                acc = acc - s * self.threshold
                out.append(s)
            spikes = torch.stack(out)
        return spikes.clamp_max(1.0) if self.binary else spikes

    def __call__(self, waves: torch.Tensor) -> torch.Tensor:
        return self.encode(self.envelope(waves))


def audio_to_spikes(wave_: np.ndarray | torch.Tensor, sample_rate: int, **cochlea_kwargs: object) -> torch.Tensor:
    """Convert one waveform ``[N]`` to spikes ``[T, C]`` (``duration`` defaults to the whole recording).

    The waveform must be 1-D (:func:`read_wav` averages a multi-channel file to one): a multi-channel array
    ``[N, channels]`` (as ``scipy.io.wavfile`` or ``soundfile`` return it) raises ``ValueError`` -- average its
    channels first, ``x.mean(axis=1)`` -- and a batch of recordings ``[B, N]`` goes to :class:`Cochlea` itself.

    Example:
        >>> t = np.arange(8000) / 8000
        >>> audio_to_spikes(np.sin(2 * np.pi * 440 * t), 8000, n_channels=16, num_steps=20).shape
        torch.Size([20, 16])
    """
    check_positive(sample_rate, "sample_rate", "audio_to_spikes")  # (before the default duration divides by it)
    w = torch.as_tensor(np.asarray(wave_), dtype=torch.float32)
    if w.dim() != 1:
        raise ValueError(
            f"audio_to_spikes: expected one waveform of shape [N], got shape {tuple(w.shape)}. For a "
            f"multi-channel recording [N, channels] (as scipy.io.wavfile / soundfile return it) average the channels "
            f"first: x.mean(axis=1) (read_wav does this); for a batch of recordings [B, N] call "
            f"Cochlea(sample_rate=..., duration=...)(waves), which gives [T, B, C].")
    if w.shape[0] == 0 and "duration" not in cochlea_kwargs:
        raise ValueError("audio_to_spikes: the waveform is empty (0 samples); pass duration= to get the spikes of "
                         "that much silence")
    cochlea_kwargs.setdefault("duration", w.shape[0] / sample_rate)
    return Cochlea(sample_rate=sample_rate, **cochlea_kwargs)(w[None])[:, 0]  # type: ignore[arg-type]


def spikes_to_events(spikes: torch.Tensor, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """SHD-style events from a raster ``[T, C]``: ``(times float32 seconds, units uint16)`` sorted by time.

    A count ``k > 1`` in a bin gives ``k`` events at that time. ``dt`` (seconds per step) must be a finite
    number > 0 and the raster 2-D with at most 65536 channels (units are stored as uint16, as in SHD files).

    Example:
        >>> times, units = spikes_to_events(torch.tensor([[0, 1], [1, 0]]), dt=0.01)
        >>> times.tolist(), units.tolist()
        ([0.0, 0.009999999776482582], [1, 0])
    """
    fn = "spikes_to_events"
    check_positive(dt, "dt", fn)
    spikes = torch.as_tensor(spikes)
    if spikes.dim() != 2:
        raise ValueError(f"{fn}: spikes must be a raster [T, C] (time steps, channels), got shape "
                         f"{tuple(spikes.shape)}; for a batch [T, B, C] convert each spikes[:, b]")
    if spikes.is_complex():
        raise TypeError(f"{fn}: spikes must be real spike counts, got dtype {spikes.dtype}")
    if spikes.is_floating_point() and not all_finite(spikes):
        raise ValueError(f"{fn}: spikes contains NaN or inf; a count must be a finite number")
    if spikes.shape[1] > 2**16:
        raise ValueError(f"{fn}: spikes has {spikes.shape[1]} channels, but units are stored as uint16 (at most "
                         f"{2**16} channels, 0..65535); a unit >= 65536 would wrap around")
    s = spikes.round().long().clamp_min(0).cpu().numpy()
    t_idx, c_idx = np.nonzero(s)
    reps = s[t_idx, c_idx]
    t_idx, c_idx = np.repeat(t_idx, reps), np.repeat(c_idx, reps)
    return (t_idx * dt).astype(np.float32), c_idx.astype(np.uint16)


# ----------------------------------------------------------------------------------------------
# Free Spoken Digit Dataset
# ----------------------------------------------------------------------------------------------
_FSDD_NAME = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)\.wav$")
_FSDD_SUBFOLDERS = (".", "fsdd", "free-spoken-digit-dataset")  # where recordings/ may lie under root


def _fsdd_candidates(root: Path) -> list[Path]:
    return [root / sub / "recordings" for sub in _FSDD_SUBFOLDERS]


def find_fsdd(root: str | os.PathLike) -> Path | None:
    """The ``recordings`` folder :func:`load_fsdd` would read under ``root``, or None where there is none.

    Example:
        >>> find_fsdd("/nonexistent") is None
        True
    """
    return next((c for c in _fsdd_candidates(Path(root).expanduser()) if c.is_dir()), None)


def fsdd_root() -> Path:
    """Default FSDD folder: ``fsdd`` in :func:`~snnlab.data.shared_data_root` (``$SNNLAB_SHARED_DATA/fsdd``).

    Example:
        >>> fsdd_root().name
        'fsdd'
    """
    from .neuromorphic import shared_data_root

    return shared_data_root() / "fsdd"


class FSDDDataset(Dataset):
    """Spike-encoded spoken digits; items ``(spikes float32 [T, C], digit int64)``.

    Spikes are stored as ``uint8`` ``[N, T, C]``; ``speakers`` and ``files`` give the metadata.

    Example:
        >>> ds = load_fsdd(split="test", n_channels=32, num_steps=50)  # doctest: +SKIP
        >>> ds[0][0].shape  # doctest: +SKIP
        torch.Size([50, 32])
    """

    def __init__(self, spikes: torch.Tensor, labels: torch.Tensor, speakers: list[str], files: list[str],
                 cochlea: Cochlea) -> None:
        self.spikes, self.labels, self.speakers, self.files, self.cochlea = spikes, labels, speakers, files, cochlea

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.spikes[i].float(), self.labels[i]

    def to_events(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """SHD-like ``(times, units)`` of sample ``i``."""
        return spikes_to_events(self.spikes[i], self.cochlea.duration / self.cochlea.num_steps)


def _round_robin_by_digit(entries: list[tuple[Path, int, str]]) -> list[tuple[Path, int, str]]:
    """The entries reordered as digit 0, 1, ..., 9, 0, 1, ... (each digit's files in their sorted order)."""
    by_digit: dict[int, list] = {}
    for e in entries:
        by_digit.setdefault(e[1], []).append(e)
    queues = [by_digit[d] for d in sorted(by_digit)]
    return [q[i] for i in range(max(map(len, queues), default=0)) for q in queues if i < len(q)]


def load_fsdd(
    root: str | os.PathLike | None = None,
    split: str = "train",
    n_channels: int = 64,
    num_steps: int = 100,
    duration: float = 1.0,
    batch_size: int = 256,
    cache_dir: str | os.PathLike | None = None,
    limit: int | None = None,
    **cochlea_kwargs: object,
) -> FSDDDataset:
    """Load FSDD ``root/recordings/{digit}_{speaker}_{index}.wav`` and convert it to spikes.

    ``root`` may also be a data folder holding ``fsdd/recordings`` (one data root for every dataset, as
    :func:`~snnlab.data.shared_data_root`) or a clone ``free-spoken-digit-dataset/recordings``; default
    :func:`fsdd_root`.

    Official split: ``index`` 0-4 is the test set, 5-49 the training set (``split="all"`` for both).
    Recordings are converted in batches of ``batch_size`` with :class:`Cochlea`; with
    ``cache_dir`` the converted tensors are stored once and reused. ``limit`` keeps ``limit`` files
    taken in turn from each digit (so a subset has every class) -- handy for quick experiments. The cache
    key holds every file's path, size and modification time, so a changed recording is converted again.

    Example:
        >>> ds = load_fsdd(split="test", n_channels=700, num_steps=100)  # doctest: +SKIP
        >>> len(ds), ds[0][0].shape  # doctest: +SKIP
        (300, torch.Size([100, 700]))
    """
    root = fsdd_root() if root is None else Path(root).expanduser()
    candidates = _fsdd_candidates(root)
    rec = find_fsdd(root) or candidates[0]
    if split not in ("train", "test", "all"):
        raise ValueError(f"load_fsdd: unknown split {split!r}; choose 'train', 'test' or 'all'")
    if not rec.is_dir():
        raise FileNotFoundError(
            f"FSDD: folder {rec} not found (also looked in {', '.join(str(c) for c in candidates[1:])}). "
            "Put the Free Spoken Digit Dataset recordings there as "
            "recordings/{digit}_{speaker}_{index}.wav (8 kHz mono WAV), from "
            "https://github.com/Jakobovski/free-spoken-digit-dataset , or pass the folder holding them as "
            "root= / data_root= (snnlab train --data-root PATH) or set SNNLAB_SHARED_DATA to a folder holding "
            "fsdd/recordings. snnlab never downloads datasets."
        )
    entries = []
    for f in sorted(rec.iterdir()):
        m = _FSDD_NAME.match(f.name)
        if not m:
            continue
        idx = int(m.group(3))
        if split == "all" or (split == "test") == (idx < 5):
            entries.append((f, int(m.group(1)), m.group(2)))
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"load_fsdd: limit must be an int >= 1 (or None for every file), got {limit!r}")
        entries = _round_robin_by_digit(entries)[:limit]
    if not entries:
        raise FileNotFoundError(f"FSDD: no {{digit}}_{{speaker}}_{{index}}.wav files for split {split!r} in {rec}")
    cochlea = Cochlea(n_channels=n_channels, num_steps=num_steps, duration=duration, **cochlea_kwargs)  # type: ignore[arg-type]
    labels = torch.tensor([e[1] for e in entries], dtype=torch.long)
    files = [str(e[0]) for e in entries]
    speakers = [e[2] for e in entries]

    def convert() -> torch.Tensor:
        out = torch.empty((len(entries), num_steps, n_channels), dtype=torch.uint8)
        for s in range(0, len(entries), batch_size):
            chunk = entries[s : s + batch_size]
            waves = torch.zeros((len(chunk), cochlea.n_samples))
            for j, (f, _, _) in enumerate(chunk):
                x, sr = read_wav(f)
                if sr != cochlea.sample_rate:
                    raise ValueError(f"{f}: sample rate {sr} Hz, expected {cochlea.sample_rate} Hz (pass sample_rate=)")
                x = x[: cochlea.n_samples]
                waves[j, : len(x)] = torch.from_numpy(x)
            out[s : s + len(chunk)] = cochlea(waves).clamp(0, 255).to(torch.uint8).transpose(0, 1)
        return out

    if cache_dir is not None:
        from .cache import DiskCache

        params = {**files_cache_params(files, cache_dir), "n_channels": n_channels, "num_steps": num_steps,
                  "duration": duration, "frames": 2,
                  **{k: str(v) for k, v in cochlea_kwargs.items()}}
        spikes = DiskCache(cache_dir, "fsdd", params).get_or_compute(0, convert)
    else:
        spikes = convert()
    return FSDDDataset(spikes, labels, speakers, files, cochlea)
