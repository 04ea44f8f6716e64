"""Convert the MRD images of an ISMRMRD HDF5 file to DICOM (one MR image file each).

Usage::

    .venv/bin/python scripts/mrd2dicom.py out/output.h5 out/dicom [--group dataset]

Needs pydicom (``pip install pydicom``; in the ``dev`` extras). Geometry as
MRD defines it: ``position`` is the centre of the image, ``read_dir`` the
direction of increasing column (x), ``phase_dir`` of increasing row (y),
``field_of_view`` x, y and the slice thickness in mm. So

- ImageOrientationPatient = read_dir, phase_dir;
- PixelSpacing = (fov_y / rows, fov_x / columns); SliceThickness = fov z;
- ImagePositionPatient (centre of the first pixel) = position
  - (columns - 1) / 2 * dx * read_dir - (rows - 1) / 2 * dy * phase_dir;
- SliceLocation = position . slice_dir.

Also: series per ``image_series_index`` (SeriesNumber), InstanceNumber from
``image_index``, AcquisitionTime from ``acquisition_time_stamp`` (2.5 ms
ticks, the scanner convention), TriggerTime from ``physiology_time_stamp[0]``,
ImageComments from the meta attributes. Files are
``<group>/<series>_<index>.dcm``.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

import ismrmrd
import numpy as np

TICK_MS = 2.5  # ISMRMRD time stamps count 2.5 ms ticks on the scanners MRD comes from


def _ds(values: np.ndarray | list[float]) -> list[str]:
    """Decimal strings that fit DICOM's 16-character DS."""
    return [f"{float(v):.6f}"[:16] for v in values]


def image_geometry(img: ismrmrd.Image) -> dict[str, list[str] | str]:
    """The DICOM geometry attributes of one MRD image (see module doc)."""
    nx, ny, _ = (int(v) for v in img.matrix_size)
    fov = np.asarray(img.field_of_view[:], dtype=np.float64)
    dx, dy = fov[0] / nx, fov[1] / ny
    read = np.asarray(img.read_dir[:], dtype=np.float64)
    phase = np.asarray(img.phase_dir[:], dtype=np.float64)
    centre = np.asarray(img.position[:], dtype=np.float64)
    first = centre - (nx - 1) / 2 * dx * read - (ny - 1) / 2 * dy * phase
    return {
        "ImageOrientationPatient": _ds([*read, *phase]),
        "ImagePositionPatient": _ds(first),
        "PixelSpacing": _ds([dy, dx]),
        "SliceThickness": _ds([fov[2]])[0],
        "SliceLocation": _ds([float(centre @ np.asarray(img.slice_dir[:], np.float64))])[0],
    }


def to_dicom(img: ismrmrd.Image, study_uid: str, series_uid: str, frame_uid: str) -> object:
    """A pydicom Dataset (MR Image Storage) of one single-channel, single-slice MRD image."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    data = np.asarray(img.data)
    if data.shape[0] != 1 or data.shape[1] != 1:
        raise ValueError(f"image {img.image_index}: only 1 channel x 1 slice converts, "
                         f"got data of shape {data.shape}")
    pixels = data[0, 0]
    if np.iscomplexobj(pixels):
        pixels = np.abs(pixels)
    if pixels.dtype.kind == "f":
        pixels = np.clip(np.round(pixels), -32768, 32767)
    pixels = np.ascontiguousarray(pixels.astype(np.int16))
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
    ds.FrameOfReferenceUID = frame_uid
    ds.Modality = "MR"
    now = datetime.now()
    ds.StudyDate = ds.SeriesDate = now.strftime("%Y%m%d")
    ds.SeriesNumber = int(img.image_series_index)
    ds.InstanceNumber = int(img.image_index) + 1
    seconds = int(img.acquisition_time_stamp) * TICK_MS / 1000.0
    hh, rest = divmod(seconds, 3600.0)
    mm, ss = divmod(rest, 60.0)
    ds.AcquisitionTime = f"{int(hh) % 24:02d}{int(mm):02d}{ss:09.6f}"
    ds.TriggerTime = _ds([int(img.physiology_time_stamp[0]) * TICK_MS])[0]
    ds.TemporalPositionIdentifier = int(img.phase) + 1
    for key, value in image_geometry(img).items():
        setattr(ds, key, value)
    comments = img.meta.get("ImageComments")
    if comments:
        ds.ImageComments = str(comments if isinstance(comments, str) else comments[0])
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.PixelData = pixels.tobytes()
    return ds


def convert(h5: str | Path, out_dir: str | Path, group: str = "dataset") -> list[Path]:
    """Write every image of ``h5`` as DICOM under ``out_dir``; returns the files written."""
    from pydicom.uid import generate_uid

    out = Path(out_dir)
    written: list[Path] = []
    dset = ismrmrd.Dataset(str(h5), group, create_if_needed=False)
    try:
        study, frame = generate_uid(), generate_uid()
        for name in sorted(g for g in dset.list() if g.startswith("image")):
            series = generate_uid()
            (out / name).mkdir(parents=True, exist_ok=True)
            for i in range(dset.number_of_images(name)):
                img = dset.read_image(name, i)
                path = out / name / f"{img.image_series_index}_{img.image_index:05d}.dcm"
                to_dicom(img, study, series, frame).save_as(path, enforce_file_format=True)
                written.append(path)
    finally:
        dset.close()
    return written


def main(argv: list[str] | None = None) -> int:
    """Command line: ``mrd2dicom.py INPUT.h5 OUT_DIR [--group NAME]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input", help="ISMRMRD HDF5 file with image groups")
    parser.add_argument("out_dir", help="folder for the DICOM files")
    parser.add_argument("--group", default="dataset", help="HDF5 group of the dataset")
    args = parser.parse_args(argv)
    try:
        files = convert(args.input, args.out_dir, args.group)
    except (OSError, KeyError, ValueError) as exc:
        print(f"mrd2dicom: {args.input}: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {len(files)} DICOM files under {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
