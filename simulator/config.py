"""Simulator configuration: one frozen dataclass holding every knob."""

from __future__ import annotations

from dataclasses import dataclass, field

from kmtr_stream.conventions import CLASSES
from kmtr_stream.errors import ConfigError

#: Mask kinds understood by :mod:`simulator.sampling`.
#: What a configuration renders changes with this number (it keys every cohort cache):
#: 2 added class-specific motion (base descent, ejection and filling timing); 3 added
#: smooth per-tissue texture to the training family.
SIMULATOR_VERSION = 3

MASK_KINDS = ("equispaced", "variable_density")
#: Line orderings understood by :func:`simulator.sampling.line_order`.
ORDERINGS = ("linear", "centre-out")


@dataclass(frozen=True)
class SimConfig:
    """Geometry, scanner and cohort settings of the simulated scanner.

    The defaults are the size the k-MTR model is built for: a 64 x 64
    reconstructed matrix over 200 x 200 mm (3.125 mm pixels), 8 short-axis
    slices 8 mm thick with 10 mm spacing, 10 cardiac phases, 8 receive coils and
    a readout oversampled twice (128 samples per readout).
    """

    nx: int = 64
    ny: int = 64
    fov_x_mm: float = 200.0
    fov_y_mm: float = 200.0
    n_slices: int = 8
    slice_thickness_mm: float = 8.0
    slice_spacing_mm: float = 10.0
    n_phases: int = 10
    n_coils: int = 8
    readout_oversampling: int = 2
    #: Share of the (oversampled) readout acquired. Below 1 the echo is asymmetric: the
    #: earliest samples are not acquired and ``center_sample`` says where the echo is.
    #: Only the ISMRMRD readouts change (simulated k-space and labels do not).
    partial_echo: float = 1.0
    #: ADC samples recorded before and after each imaging readout, to be discarded
    #: (``discard_pre = discard_post``); they hold a receive-filter transient, as real
    #: ADC windows do. Only the ISMRMRD readouts change.
    adc_discard: int = 0
    n_calib: int = 12
    accel: int = 4
    mask_kind: str = "equispaced"
    ordering: str = "linear"
    #: Blood signal over per-sample noise std (coil-combined, unit-RSS sensitivities).
    snr: float = 40.0
    #: Largest noise correlation between receivers (random covariance).
    noise_correlation: float = 0.3
    n_noise_readouts: int = 32
    #: Anti-aliasing: samples per pixel along each axis (odd, so a sample sits at the centre).
    supersample: int = 3
    tr_ms: float = 3.0
    te_ms: float = 1.5
    flip_angle_deg: float = 50.0
    field_strength_t: float = 1.5
    bandwidth_hz_per_pixel: float = 1000.0
    rr_interval_ms: float = 900.0
    #: Domain randomization of the subjects: "none" (the plain phantom), "train"
    #: (pose, shape, contrast, clutter, SNR, coils; see :mod:`simulator.randomization`)
    #: or "shifted" (families held out of training: the out-of-distribution cohort).
    randomize: str = "none"
    #: Relative class frequencies in CLASSES order (NOR, DCM, HCM, MINF, ARV).
    class_weights: tuple[float, ...] = field(default=(1.0, 1.0, 1.0, 1.0, 1.0))

    def __post_init__(self) -> None:
        for name in (
            "nx",
            "ny",
            "n_slices",
            "n_phases",
            "n_coils",
            "readout_oversampling",
            "supersample",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"SimConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.n_phases < 2:
            raise ConfigError(f"SimConfig.n_phases must be >= 2 (ED and ES), got {self.n_phases}")
        if self.supersample % 2 == 0:
            raise ConfigError(f"SimConfig.supersample must be odd, got {self.supersample}")
        if not 2 <= self.accel <= 12:
            raise ConfigError(f"SimConfig.accel must be in 2..12, got {self.accel}")
        if not 0 <= self.n_calib <= self.ny:
            raise ConfigError(f"SimConfig.n_calib must be in 0..ny={self.ny}, got {self.n_calib}")
        if self.mask_kind not in MASK_KINDS:
            raise ConfigError(
                f"SimConfig.mask_kind must be one of {MASK_KINDS}, got {self.mask_kind!r}"
            )
        if self.ordering not in ORDERINGS:
            raise ConfigError(
                f"SimConfig.ordering must be one of {ORDERINGS}, got {self.ordering!r}"
            )
        if (
            len(self.class_weights) != len(CLASSES)
            or min(self.class_weights) < 0
            or sum(self.class_weights) <= 0
        ):
            raise ConfigError(
                f"SimConfig.class_weights must be {len(CLASSES)} non-negative weights "
                f"with a positive sum, got {self.class_weights}"
            )
        if self.randomize not in ("none", "train", "shifted"):
            raise ConfigError(
                "SimConfig.randomize must be one of ('none', 'train', 'shifted'), "
                f"got {self.randomize!r}"
            )
        if not 0.5 < self.partial_echo <= 1.0:
            raise ConfigError(
                f"SimConfig.partial_echo must be in (0.5, 1], got {self.partial_echo}"
            )
        if not 0 <= self.adc_discard <= 256:
            raise ConfigError(f"SimConfig.adc_discard must be in [0, 256], got {self.adc_discard}")
        if self.snr <= 0:
            raise ConfigError(f"SimConfig.snr must be > 0, got {self.snr}")

    @property
    def dx_mm(self) -> float:
        """Pixel size along x (readout) in mm."""
        return self.fov_x_mm / self.nx

    @property
    def dy_mm(self) -> float:
        """Pixel size along y (phase encoding) in mm."""
        return self.fov_y_mm / self.ny

    @property
    def nx_os(self) -> int:
        """Readout samples per line, oversampling included."""
        return self.nx * self.readout_oversampling

    @property
    def echo_dropped(self) -> int:
        """Leading readout samples not acquired (partial echo)."""
        return self.nx_os - round(self.partial_echo * self.nx_os)

    @property
    def voxel_size_mm(self) -> tuple[float, float, float]:
        """``(dx, dy, dz)`` with dz the slice spacing, as volumes are computed."""
        return (self.dx_mm, self.dy_mm, self.slice_spacing_mm)

    @property
    def dwell_time_us(self) -> float:
        """ADC dwell time of one (oversampled) readout sample in microseconds."""
        return 1e6 / (self.bandwidth_hz_per_pixel * self.nx * self.readout_oversampling)

    def slice_positions_mm(self) -> list[float]:
        """Distance of each slice centre below the mitral (base) plane, base first."""
        return [5.0 + k * self.slice_spacing_mm for k in range(self.n_slices)]
