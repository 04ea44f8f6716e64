"""``model_grid``: resample each buffered slice onto the model's k-space grid.

Any Cartesian protocol enters: matrix, field of view, readout oversampling,
coil count and calibration size. Each ``SliceKSpace`` from the slice buffer is
mapped onto the model's grid (``n_ky x n_kx`` samples over ``fov_mm``) by one
linear operator per axis (``kmtr_stream.kspace.resample``): a crop or zero-pad of
the centred spectrum when the field of view matches, band-limited interpolation
otherwise. No image is formed. The result is normalised over the model grid's
calibration region, as the training data is, and carries the model grid's voxel
size. The protocol is checked once, when the gadget is built with the stream's
header: what cannot be adapted (non-Cartesian trajectories, partial Fourier beyond
6/8, no field of view) is an error naming the header field, reported when the header
message passes and again for each slice that is therefore not analysed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from kmtr_stream.backend import array_module, to_numpy
from kmtr_stream.chain.gadget import ChainContext, Gadget, param
from kmtr_stream.chain.registry import register
from kmtr_stream.errors import ConfigError, GadgetError, KmtrError
from kmtr_stream.kspace.geometry import encoding_geometry
from kmtr_stream.kspace.normalisation import calibration_slice, normalise_kspace
from kmtr_stream.kspace.oversampling import keeps_short_half
from kmtr_stream.kspace.resample import AxisMap, axis_map, to_model_grid
from kmtr_stream.messages import SliceKSpace, XmlHeader


@dataclass(frozen=True)
class GridPlan:
    """Per-stream resampling plan, fixed by the header.

    Attributes:
        kx: readout map (after oversampling removal).
        ky: phase-encode map.
        fov_y_mm: acquired phase-encode field of view.
        center_line: acquired ky line of DC.
        n_ky: acquired ky lines.
        n_kx: readout samples after oversampling removal.
    """

    kx: AxisMap
    ky: AxisMap
    fov_y_mm: float
    center_line: int
    n_ky: int
    n_kx: int


def plan_from_header(header: Any, n_ky: int, n_kx: int, fov_mm: float) -> GridPlan:
    """Check the protocol and build the resampling plan (raises ConfigError naming the field)."""
    if header is None or not getattr(header, "encoding", None):
        raise ConfigError("ISMRMRD header has no encoding section")
    enc = header.encoding[0]
    traj = getattr(enc, "trajectory", None)
    traj_name = str(getattr(traj, "value", traj) or "cartesian").lower()
    if traj_name != "cartesian":
        raise ConfigError(
            f"encoding.trajectory = {traj_name!r}: only Cartesian k-space can be resampled "
            "onto the model grid"
        )
    geo = encoding_geometry(header)
    fov_y = float(enc.encodedSpace.fieldOfView_mm.y or 0.0)
    fov_x = float(enc.reconSpace.fieldOfView_mm.x or 0.0)
    if fov_y <= 0:
        raise ConfigError(f"encodedSpace.fieldOfView_mm.y = {fov_y}: must be > 0 mm")
    if fov_x <= 0:
        raise ConfigError(f"reconSpace.fieldOfView_mm.x = {fov_x}: must be > 0 mm")
    if not keeps_short_half(geo.center_line, geo.n_ky, geo.n_ky):
        raise ConfigError(
            f"encodingLimits.kspace_encoding_step_1.center = {geo.center_line} of {geo.n_ky} "
            f"lines: partial Fourier beyond 6/8 is not supported"
        )
    return GridPlan(
        kx=axis_map(geo.recon_x, fov_x, n_kx, fov_mm),
        ky=axis_map(geo.n_ky, fov_y, n_ky, fov_mm, center=geo.center_line),
        fov_y_mm=fov_y,
        center_line=geo.center_line,
        n_ky=geo.n_ky,
        n_kx=geo.recon_x,
    )


@register("model_grid")
class ModelGridGadget(Gadget):
    """Resamples ``SliceKSpace`` buffers onto the model's grid (see the module doc)."""

    @dataclass(frozen=True)
    class Params:
        """Parameters of ``model_grid``."""

        model: str = param("default", doc="weights whose grid (n_ky, n_kx, fov_mm) to resample to")
        calibration_lines: int = param(
            12, min=1, max=4096,
            doc="central ky lines of the model grid whose RMS normalises the buffer, as in "
            "the training data",
        )

    handles = (SliceKSpace, XmlHeader)

    def __init__(self, gadget_id: str, params: Any, context: ChainContext) -> None:
        super().__init__(gadget_id, params, context)
        from kmtr_stream.model.io import load_model

        try:
            cfg = load_model(params.model).net.cfg
        except KmtrError as exc:
            raise ConfigError(
                f"gadget {gadget_id!r}: cannot load model {params.model!r}: {exc}"
            ) from exc
        self.n_ky, self.n_kx, self.fov_mm = cfg.n_ky, cfg.n_kx, float(cfg.fov_mm)
        self.xp = array_module(context.backend)
        #: The resampling plan; None when the stream's protocol is refused.
        self.plan: GridPlan | None = None
        #: Why the stream's protocol was refused (its header and each slice get this error).
        self.refused = ""
        self.slices = 0
        try:
            self.plan = plan_from_header(context.header, self.n_ky, self.n_kx, self.fov_mm)
        except ConfigError as exc:
            self.refused = str(exc)

    def describe_state(self) -> str | None:
        if self.plan is None:
            return None
        p = self.plan
        return (
            f"{p.n_ky}x{p.n_kx} -> {self.n_ky}x{self.n_kx} over {self.fov_mm:g} mm, "
            f"{self.slices} slices resampled"
        )

    def process(self, message: Any) -> Iterable[Any]:
        if isinstance(message, XmlHeader):
            yield message
            if self.plan is None:  # the client hears of a refused protocol before any slice
                raise GadgetError(self.id, None, self.refused)
            return
        msg: SliceKSpace = message
        if self.plan is None:
            raise GadgetError(
                self.id, None, f"slice {msg.slice} phase {msg.phase} not analysed: {self.refused}"
            )
        p = self.plan
        _coils, ky, kx = msg.kspace.shape
        if (ky, kx) != (p.n_ky, p.n_kx):
            raise GadgetError(
                self.id, None,
                f"slice {msg.slice} phase {msg.phase}: buffer (ky, kx) = ({ky}, {kx}), the "
                f"header says ({p.n_ky}, {p.n_kx}); is remove_oversampling in the chain?",
            )
        kspace, mask = to_model_grid(
            msg.kspace, to_numpy(msg.mask), p.kx, p.ky, p.fov_y_mm, self.fov_mm, p.center_line
        )
        region = calibration_slice(self.n_ky, int(self.params.calibration_lines))
        kspace = normalise_kspace(kspace, region, out=kspace)
        self.slices += 1
        d = self.fov_mm / self.n_kx, self.fov_mm / self.n_ky, float(msg.voxel_size_mm[2])
        yield replace(msg, kspace=kspace, mask=self.xp.asarray(mask), voxel_size_mm=d)
