"""DICOM magnitude images (a single file, a multi-frame file, or a series as a zip/folder) as
simulation input for MRI, like a NIfTI volume; and a DICOM series writer (pydicom).

DICOM images are reconstructed magnitudes, not k-space: like a NIfTI upload, the series'
central slices are normalised and multi-coil k-space is simulated from them with the bundled
protocol. Pixels are scaled by ``RescaleSlope``/``RescaleIntercept``; slices are ordered by their
position along the slice normal (``ImagePositionPatient`` projected on the cross product of the
``ImageOrientationPatient`` row and column directions), else by ``InstanceNumber``.

Refused with one line: files without the DICOM preamble, phase/real/imaginary images
(``ImageType`` P/R/I: only magnitude makes sense here), several series in one archive, slices of
different sizes, pixel data in a compressed transfer syntax no installed decoder reads.
Nothing is unpickled; pydicom parses the bytes.
"""

from __future__ import annotations

import io

import numpy as np

from workbench.errors import InputError

MAX_FILES = 2048


def _read_one(data: bytes, name: str):
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(io.BytesIO(data), force=False)
    except InvalidDicomError:
        raise InputError(f"{name} is not a DICOM file (no DICM preamble)") from None
    except Exception as exc:  # noqa: BLE001 - truncated or malformed element data
        raise InputError(f"{name} is not a readable DICOM file ({type(exc).__name__})") from None


def _pixels(ds, name: str) -> np.ndarray:
    if "PixelData" not in ds:
        raise InputError(f"{name} holds no image (no PixelData)")
    itype = [str(v).upper() for v in ds.get("ImageType", [])]
    kinds = {"P": "phase", "PHASE": "phase", "R": "real", "REAL": "real", "I": "imaginary"}
    if len(itype) > 2 and itype[2] in kinds:  # value 3 of ImageType: M, P, R or I for MR
        raise InputError(
            f"{name} is a {kinds[itype[2]]} image; only magnitude images are supported"
        )
    try:
        arr = np.asarray(ds.pixel_array)
    except Exception as exc:  # noqa: BLE001 - missing decoder, truncated pixel data
        ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "unknown")
        msg = str(exc).splitlines()[0][:100] if str(exc) else type(exc).__name__
        raise InputError(
            f"{name}: cannot decode the pixel data (transfer syntax {ts}: {msg})"
        ) from None
    if arr.dtype.kind not in "biuf":
        raise InputError(f"{name}: pixel data of dtype {arr.dtype} is not a magnitude image")
    if int(ds.get("SamplesPerPixel", 1)) != 1:
        raise InputError(f"{name}: colour images are not MR magnitudes")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames == 1 and arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise InputError(f"{name}: expected 2-D frames, got pixel array of shape {arr.shape}")
    slope = float(ds.get("RescaleSlope", 1.0) or 1.0)
    icpt = float(ds.get("RescaleIntercept", 0.0) or 0.0)
    return arr.astype(np.float64) * slope + icpt


def _position(ds) -> float | None:
    pos, ori = ds.get("ImagePositionPatient"), ds.get("ImageOrientationPatient")
    if pos is None or ori is None or len(pos) != 3 or len(ori) != 6:
        return None
    r, c = np.asarray(ori[:3], float), np.asarray(ori[3:], float)
    return float(np.dot(np.cross(r, c), np.asarray(pos, float)))


def read_series(files: dict[str, bytes], source: str = "series") -> np.ndarray:
    """DICOM files of one series -> magnitude volume ``(Z, rows, cols)`` float64, slices ordered."""
    names = [
        n
        for n in files
        if not n.lower().endswith((".txt", ".json", ".xml", ".md")) and n.upper() != "DICOMDIR"
    ]
    if not names:
        raise InputError(f"{source} holds no DICOM files")
    if len(names) > MAX_FILES:
        raise InputError(f"{source} holds {len(names)} files; at most {MAX_FILES} are read")
    items = []
    series = set()
    for n in sorted(names):
        try:
            ds = _read_one(files[n], n)
            series.add(str(ds.get("SeriesInstanceUID", "")))
            px = _pixels(ds, n)
            pos = _position(ds)
            inst = int(ds.get("InstanceNumber", 0) or 0)
        except InputError:
            raise
        except Exception as exc:  # noqa: BLE001 - pydicom converts an element on first access
            msg = (str(exc).splitlines() or [type(exc).__name__])[0][:120]
            raise InputError(
                f"{n}: malformed DICOM element ({type(exc).__name__}: {msg})"
            ) from None
        items.append((pos, inst, n, px))
    if len(series) > 1:
        raise InputError(
            f"{source} holds {len(series)} DICOM series; upload one series (one SeriesInstanceUID)"
        )
    shapes = {it[3].shape[1:] for it in items}
    if len(shapes) != 1:
        raise InputError(f"{source}: slices of different sizes {sorted(shapes)}")
    if all(it[0] is not None for it in items):
        items.sort(key=lambda it: (it[0], it[1]))
    else:
        items.sort(key=lambda it: (it[1], it[2]))
    vol = np.concatenate([it[3] for it in items], axis=0)
    if not np.isfinite(vol).all():
        raise InputError(f"{source} contains NaN or infinite values")
    if vol.max() <= 0:
        raise InputError(f"{source} is empty (no positive pixels)")
    return vol


def problem_from_dicom(data: bytes, filename: str, options: dict):
    """A .dcm/.ima file or a .zip of a series -> simulated multi-coil problem (like NIfTI)."""
    from workbench.io.mri_nifti import MAX_SIZE, problem_from_volume

    if filename.lower().endswith(".zip"):
        from workbench.io.archive import read_zip

        files = read_zip(data, filename)
    else:
        files = {filename: data}
    vol = read_series(files, filename)
    z, h, w = vol.shape
    if max(h, w) > 4 * MAX_SIZE:
        raise InputError(f"{filename}: {h} x {w} images are too large")
    # (Z, rows, cols) -> NIfTI-like (X, Y, Z) with rot90(vol[:, :, z]) = the displayed image
    nii = np.ascontiguousarray(np.rot90(np.moveaxis(vol, 0, -1), k=-1, axes=(0, 1)))
    return problem_from_volume(nii, filename, options, kind=f"DICOM magnitude series, {z} slices")


def series_bytes(
    volume: np.ndarray,
    pixel_mm: float = 1.0,
    slice_mm: float = 3.0,
    series_uid: str | None = None,
    image_type: tuple[str, ...] = ("ORIGINAL", "PRIMARY", "M", "ND"),
    scale: float = 1000.0,
) -> dict[str, bytes]:
    """Write a magnitude volume ``(Z, rows, cols)`` as an axial MR DICOM series (16-bit, explicit
    VR little endian, ``RescaleSlope`` = max/``scale``): ``{"IM0001.dcm": bytes, ...}``."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    v = np.asarray(volume, np.float64)
    if v.ndim == 2:
        v = v[None]
    vmax = float(v.max()) if v.size and v.max() > 0 else 1.0
    slope = vmax / scale
    series_uid = series_uid or generate_uid()
    study = generate_uid()
    out = {}
    for i, sl in enumerate(v):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = MRImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID = study
        ds.SeriesInstanceUID = series_uid
        ds.Modality = "MR"
        ds.ImageType = list(image_type)
        ds.InstanceNumber = i + 1
        ds.ImagePositionPatient = [0.0, 0.0, float(i * slice_mm)]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing = [pixel_mm, pixel_mm]
        ds.SliceThickness = slice_mm
        ds.Rows, ds.Columns = sl.shape
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 0
        ds.RescaleSlope = f"{slope:.10g}"
        ds.RescaleIntercept = "0"
        ds.PixelData = np.clip(np.rint(sl / slope), 0, 65535).astype("<u2").tobytes()
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        out[f"IM{i + 1:04d}.dcm"] = buf.getvalue()
    return out
