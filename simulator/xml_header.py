"""ISMRMRD XML header of a simulated bSSFP cine scan, built from ``ismrmrd.xsd`` types."""

from __future__ import annotations

import ismrmrd.xsd as x

from simulator.config import SimConfig

#: Larmor frequency of 1H in Hz per tesla.
GAMMA_HZ_PER_T = 42.577478518e6


def build_header(
    cfg: SimConfig,
    subject_id: int,
    bsa_m2: float,
    weight_kg: float,
    height_cm: float,
    measurement_id: str = "",
) -> x.ismrmrdHeader:
    """The header: encoding (oversampled encoded space, reconstructed space, limits),
    parallel imaging, system, sequence, measurement and subject information.

    Args:
        cfg: scan configuration.
        subject_id: written as the patient ID.
        bsa_m2: body surface area (for the record; the schema has no BSA field).
        weight_kg: patient weight.
        height_cm: patient height (written into the patient name, as is the BSA).
        measurement_id: measurement identifier (``"kmtr_<subject>"`` when empty).

    Returns:
        The header object; ``.toXML()`` gives the XML text. It validates against
        the ISMRMRD schema and libismrmrd (``ismrmrd_test_xml``) reads it.
    """
    enc_space = x.encodingSpaceType(
        matrixSize=x.matrixSizeType(x=cfg.nx_os, y=cfg.ny, z=1),
        fieldOfView_mm=x.fieldOfViewMm(
            x=cfg.fov_x_mm * cfg.readout_oversampling, y=cfg.fov_y_mm, z=cfg.slice_thickness_mm
        ),
    )
    recon_space = x.encodingSpaceType(
        matrixSize=x.matrixSizeType(x=cfg.nx, y=cfg.ny, z=1),
        fieldOfView_mm=x.fieldOfViewMm(x=cfg.fov_x_mm, y=cfg.fov_y_mm, z=cfg.slice_thickness_mm),
    )
    limits = x.encodingLimitsType(
        kspace_encoding_step_0=x.limitType(minimum=0, maximum=cfg.nx_os - 1, center=cfg.nx_os // 2),
        kspace_encoding_step_1=x.limitType(minimum=0, maximum=cfg.ny - 1, center=cfg.ny // 2),
        kspace_encoding_step_2=x.limitType(minimum=0, maximum=0, center=0),
        slice=x.limitType(minimum=0, maximum=cfg.n_slices - 1, center=0),
        phase=x.limitType(minimum=0, maximum=cfg.n_phases - 1, center=0),
        average=x.limitType(minimum=0, maximum=0, center=0),
        contrast=x.limitType(minimum=0, maximum=0, center=0),
        repetition=x.limitType(minimum=0, maximum=0, center=0),
        set=x.limitType(minimum=0, maximum=0, center=0),
        segment=x.limitType(minimum=0, maximum=0, center=0),
    )
    encoding = x.encodingType(
        encodedSpace=enc_space,
        reconSpace=recon_space,
        encodingLimits=limits,
        trajectory=x.trajectoryType.CARTESIAN,
        parallelImaging=x.parallelImagingType(
            accelerationFactor=x.accelerationFactorType(
                kspace_encoding_step_1=cfg.accel, kspace_encoding_step_2=1
            ),
            calibrationMode=x.calibrationModeType.EMBEDDED,
        ),
    )
    # No <version>: libismrmrd checks it against its own schema version (1.8 wants 8,
    # others other numbers) and aborts on a mismatch; the element is optional.
    return x.ismrmrdHeader(
        subjectInformation=x.subjectInformationType(
            patientID=f"SIM{subject_id:07d}",
            patientWeight_kg=round(weight_kg, 1),
            # Height has no element in the 1.x schema; it rides in the name with the BSA.
            patientName=f"simulated subject {subject_id} (height {height_cm:.1f} cm, "
            f"BSA {bsa_m2:.3f} m2)",
        ),
        measurementInformation=x.measurementInformationType(
            measurementID=measurement_id or f"kmtr_{subject_id}",
            patientPosition=x.patientPositionType.HFS,
            protocolName="bSSFP cine short axis (simulated)",
            seriesDescription="trufi_cine",
        ),
        acquisitionSystemInformation=x.acquisitionSystemInformationType(
            systemVendor="k-MTR Stream",
            systemModel="simulated cardiac scanner",
            systemFieldStrength_T=cfg.field_strength_t,
            relativeReceiverNoiseBandwidth=0.793,
            receiverChannels=cfg.n_coils,
        ),
        experimentalConditions=x.experimentalConditionsType(
            H1resonanceFrequency_Hz=round(GAMMA_HZ_PER_T * cfg.field_strength_t),
        ),
        encoding=[encoding],
        # Slice spacing (dz of the volume computation) has no standard element.
        userParameters=x.userParametersType(
            userParameterDouble=[
                x.userParameterDoubleType(name="slice_spacing_mm", value=cfg.slice_spacing_mm),
                x.userParameterDoubleType(name="rr_interval_ms", value=cfg.rr_interval_ms),
            ]
        ),
        sequenceParameters=x.sequenceParametersType(
            TR=[cfg.tr_ms],
            TE=[cfg.te_ms],
            flipAngle_deg=[cfg.flip_angle_deg],
            sequence_type="TrueFISP",
        ),
    )


def header_xml(
    cfg: SimConfig, subject_id: int, bsa_m2: float, weight_kg: float, height_cm: float
) -> str:
    """XML text of :func:`build_header`."""
    return str(build_header(cfg, subject_id, bsa_m2, weight_kg, height_cm).toXML())
