"""On-the-fly, deterministic training data: ``CohortDataset``.

Each item is one subject, generated from ``(seed, subject_id)`` alone, so the
same id gives the same arrays on any machine. Splits use disjoint id ranges
(train ``0..``, val ``500_000..``, test ``1_000_000..``).

k-space of an item is what the streaming chain holds for a completed buffer:
fully sampled, noise-prewhitened (with the subject's true noise covariance),
readout oversampling removed, coil-compressed to ``n_virtual_coils`` with the
matrix from the buffer's own calibration region, then divided by the RMS of
virtual coil 0 over that calibration region. Each ``(phase, slice)`` buffer is
normalised on its own (:func:`simulator.kspace.virtual_coil_buffer`), because a
streaming chain sees one buffer at a time. No undersampling mask is applied:
training draws masks with :mod:`simulator.sampling`.

Sharded caching: with ``cache_dir`` set, items are stored ``shard_size`` to an
``.npz`` file named by a hash of every setting; missing shards are built on
first access, or all at once with :meth:`CohortDataset.build_cache`.

Speed: about 0.13 CPU-seconds per "ed_es" item at the default size. Run data
generation with ``OPENBLAS_NUM_THREADS=1`` (set before NumPy is imported, e.g.
in the environment of DataLoader workers): the per-buffer SVDs and products are
tiny, and OpenBLAS' thread pool made an item 6x slower on a 2-core machine
(``benchmarks/bench_simulator.py``).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from kmtr_stream.errors import ConfigError
from simulator.cohort import make_subject
from simulator.config import SIMULATOR_VERSION, SimConfig
from simulator.kspace import ifft2c, rss, virtual_coil_buffer
from simulator.noise import complex_normal, prewhitening_matrix
from simulator.scan import coil_kspace, scanner_rng, scanner_setup

#: First subject id of each split; splits never overlap while n_subjects < 500_000.
SPLIT_OFFSETS: dict[str, int] = {"train": 0, "val": 500_000, "test": 1_000_000}
_MAX_PER_SPLIT = 500_000
_KEYS = ("kspace", "image", "labels", "phenotypes", "diagnosis", "phases", "voxel_size_mm")


def subject_id_for(split: str, index: int) -> int:
    """Global subject id of item ``index`` of ``split``."""
    if split not in SPLIT_OFFSETS:
        raise ConfigError(f"split must be one of {tuple(SPLIT_OFFSETS)}, got {split!r}")
    return SPLIT_OFFSETS[split] + int(index)


def training_item(
    subject_id: int, seed: int, cfg: SimConfig, n_virtual_coils: int = 4, phases: str = "ed_es"
) -> dict[str, np.ndarray]:
    """Generate one training item as NumPy arrays (see :class:`CohortDataset`).

    Only the returned phases are rendered ("ed_es": ED = phase 0 and ES, found
    from the cheap label maps of all phases).
    """
    if phases not in ("ed_es", "all"):
        raise ConfigError(f"phases must be 'ed_es' or 'all', got {phases!r}")
    if not 1 <= n_virtual_coils <= cfg.n_coils:
        raise ConfigError(f"n_virtual_coils must be in 1..{cfg.n_coils}, got {n_virtual_coils}")
    subject = make_subject(subject_id, seed, cfg)
    idx = [0, subject.es_phase] if phases == "ed_es" else list(range(cfg.n_phases))
    # A randomized subject brings its own coil count (compressed to the same virtual coils).
    if subject.params.n_coils:
        cfg = replace(cfg, n_coils=max(subject.params.n_coils, n_virtual_coils))
    setup = scanner_setup(subject, cfg, oversampled=False)
    # Rendering the reconstructed field of view directly equals removing readout
    # oversampling from the oversampled acquisition (orthonormal crop).
    k, _ = coil_kspace(subject, cfg, setup, idx, oversampled=False)  # (P, S, C, ky, kx)
    w = prewhitening_matrix(setup.noise_cov)
    kw = np.matmul(w, k.reshape(*k.shape[:3], -1)).reshape(k.shape)
    kw += complex_normal(kw.shape, scanner_rng(subject_id, seed, 2))
    n_p, n_s = kw.shape[:2]
    out = np.empty((n_p, n_s, n_virtual_coils, cfg.ny, cfg.nx), dtype=np.complex64)
    for i in range(n_p):
        for j in range(n_s):
            out[i, j] = virtual_coil_buffer(kw[i, j], n_virtual_coils, cfg.n_calib)[0]
    image = rss(ifft2c(out), axis=2).astype(np.float32)
    return {
        "kspace": out,
        "image": image,
        "labels": subject.labels[idx].astype(np.int64),
        "phenotypes": subject.phenotype_vector(),
        "diagnosis": np.asarray(subject.diagnosis, dtype=np.int64),
        "phases": np.asarray(idx, dtype=np.int64),
        "voxel_size_mm": np.asarray(cfg.voxel_size_mm, dtype=np.float32),
    }


class CohortDataset(Dataset[dict[str, torch.Tensor]]):
    """Deterministic simulated cohort for training and evaluation.

    Args:
        n_subjects: items in this split.
        seed: cohort seed.
        split: "train", "val" or "test" (disjoint subject ids).
        config: simulator configuration.
        n_virtual_coils: virtual coils after compression.
        phases: "ed_es" (two phases, fast) or "all".
        cache_dir: directory for ``.npz`` shards, or None to generate every time.
        shard_size: items per cache shard.

    Items are dicts of tensors: ``kspace (P, S, Vc, ky, kx)`` complex64,
    ``image (P, S, ny, nx)`` float32, ``labels (P, S, ny, nx)`` int64,
    ``phenotypes (9,)`` float32, ``diagnosis ()`` int64, ``phases (P,)`` int64,
    ``voxel_size_mm (3,)`` float32.
    """

    def __init__(
        self,
        n_subjects: int,
        seed: int = 0,
        split: str = "train",
        config: SimConfig | None = None,
        n_virtual_coils: int = 4,
        phases: str = "ed_es",
        cache_dir: str | Path | None = None,
        shard_size: int = 64,
    ) -> None:
        if not 0 <= n_subjects <= _MAX_PER_SPLIT:
            raise ConfigError(f"n_subjects must be in 0..{_MAX_PER_SPLIT}, got {n_subjects}")
        subject_id_for(split, 0)
        if phases not in ("ed_es", "all"):
            raise ConfigError(f"phases must be 'ed_es' or 'all', got {phases!r}")
        self.n_subjects = n_subjects
        self.seed = seed
        self.split = split
        self.config = config or SimConfig()
        if not 1 <= n_virtual_coils <= self.config.n_coils:
            raise ConfigError(
                f"n_virtual_coils must be in 1..{self.config.n_coils}, got {n_virtual_coils}"
            )
        self.n_virtual_coils = n_virtual_coils
        self.phases = phases
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.shard_size = max(1, int(shard_size))
        self._shard: tuple[int, dict[str, np.ndarray]] | None = None

    def __len__(self) -> int:
        return self.n_subjects

    def subject_id(self, index: int) -> int:
        """Global subject id of item ``index``."""
        return subject_id_for(self.split, index)

    def generate(self, index: int) -> dict[str, np.ndarray]:
        """Item ``index`` as NumPy arrays, generated now (no cache)."""
        return training_item(
            self.subject_id(index), self.seed, self.config, self.n_virtual_coils, self.phases
        )

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not -self.n_subjects <= index < self.n_subjects:
            raise IndexError(f"index {index} out of range for {self.n_subjects} subjects")
        index %= max(self.n_subjects, 1)
        arrays = self._cached(index) if self.cache_dir is not None else self.generate(index)
        return {k: torch.from_numpy(np.array(arrays[k], copy=True)) for k in _KEYS}

    # -- cache -------------------------------------------------------------
    def cache_key(self) -> str:
        """Hash of everything the cached arrays depend on."""
        blob = json.dumps(
            {
                "v": SIMULATOR_VERSION,
                # these shape only the ISMRMRD readouts, not the cached arrays
                "cfg": {k: v for k, v in asdict(self.config).items()
                        if k not in ("partial_echo", "adc_discard")},
                "seed": self.seed,
                "split": self.split,
                "vc": self.n_virtual_coils,
                "phases": self.phases,
                "shard": self.shard_size,
            },
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def shard_path(self, shard: int) -> Path:
        """Path of shard ``shard`` in the cache directory."""
        assert self.cache_dir is not None
        return self.cache_dir / f"cohort_{self.split}_{self.cache_key()}_{shard:05d}.npz"

    def _shard_range(self, shard: int) -> range:
        lo = shard * self.shard_size
        return range(lo, min(lo + self.shard_size, self.n_subjects))

    def _write_shard(self, shard: int) -> None:
        items = [self.generate(i) for i in self._shard_range(shard)]
        stacked = {k: np.stack([it[k] for it in items]) for k in _KEYS}
        path = self.shard_path(shard)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")  # one per writer process
        np.savez(tmp, **stacked)  # type: ignore[arg-type]
        tmp.replace(path)  # atomic: concurrent readers never see half a shard

    def _cached(self, index: int) -> dict[str, np.ndarray]:
        shard = index // self.shard_size
        if self._shard is None or self._shard[0] != shard:
            path = self.shard_path(shard)
            if not path.exists():
                self._write_shard(shard)
            with np.load(path, allow_pickle=False) as z:
                self._shard = (shard, {k: z[k] for k in _KEYS})
        data = self._shard[1]
        j = index - shard * self.shard_size
        return {k: data[k][j] for k in _KEYS}

    def build_cache(self, progress: bool = True) -> int:
        """Write every missing shard (with a tqdm progress bar); returns shards written."""
        if self.cache_dir is None:
            raise ConfigError("build_cache needs cache_dir")
        from tqdm import tqdm

        n_shards = -(-self.n_subjects // self.shard_size)
        written = 0
        for shard in tqdm(
            range(n_shards), desc=f"cache {self.split}", unit="shard", disable=not progress
        ):
            if not self.shard_path(shard).exists():
                self._write_shard(shard)
                written += 1
        return written
