"""fastMRI HDF5 layout: read, validate, write (``specs/mri.md`` §8).

One file per acquisition: ``kspace`` complex64 (slices, coils, H, W) — or (slices, H, W) for
single-coil — with H the (oversampled) readout; ``reconstruction_rss`` float32 (slices, h, w);
optional ``mask`` (W,) on test files; attrs ``max``, ``acquisition``; ``ismrmrd_header`` XML with
the encoded and recon matrix sizes and the ``kspace_encoding_step_1`` centre/maximum that give the
acquired band ``[padding_left, padding_right)``. Reconstructions are made at H×W and centre-cropped
to the recon size, which removes the readout oversampling. Plain h5py; nothing is unpickled.
"""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from typing import Any

import numpy as np

from workbench.errors import InputError
from workbench.io.h5_sandbox import h5_preflight
from workbench.io.limits import H5_ERRORS, check_h5_dataset, h5_damage

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
NS = "http://www.ismrm.org/ISMRMRD"


def make_header(
    enc: tuple[int, int],
    recon: tuple[int, int],
    center: int | None = None,
    maximum: int | None = None,
) -> str:
    """A minimal ISMRMRD XML header with the fields fastMRI reads (sizes as (H, W))."""
    w = enc[1]
    center = w // 2 if center is None else center
    maximum = w - 1 if maximum is None else maximum
    return (
        f'<?xml version="1.0" encoding="utf-8"?>\n<ismrmrdHeader xmlns="{NS}"><encoding>'
        f"<encodedSpace><matrixSize><x>{enc[0]}</x><y>{enc[1]}</y><z>1</z></matrixSize></encodedSpace>"
        f"<reconSpace><matrixSize><x>{recon[0]}</x><y>{recon[1]}</y><z>1</z></matrixSize></reconSpace>"
        f"<encodingLimits><kspace_encoding_step_1><minimum>0</minimum><maximum>{maximum}</maximum>"
        f"<center>{center}</center></kspace_encoding_step_1></encodingLimits></encoding></ismrmrdHeader>"
    )


def parse_header(xml: str | bytes) -> dict[str, Any]:
    """Encoded/recon sizes (H, W) and the acquired band from an ISMRMRD header."""
    if isinstance(xml, bytes):
        xml = xml.decode("utf-8", "replace")
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as e:
        raise InputError(f"ismrmrd_header is not valid XML: {e}") from None

    def find(*path):
        node = root
        for p in path:
            node = node.find(f"{{{NS}}}{p}") if node is not None else None
        if node is None or node.text is None:
            return None
        return int(float(node.text))

    out: dict[str, Any] = {}
    ex, ey = (
        find("encoding", "encodedSpace", "matrixSize", "x"),
        find("encoding", "encodedSpace", "matrixSize", "y"),
    )
    rx, ry = (
        find("encoding", "reconSpace", "matrixSize", "x"),
        find("encoding", "reconSpace", "matrixSize", "y"),
    )
    if ex and ey:
        out["enc_size"] = (ex, ey)
    if rx and ry:
        out["recon_size"] = (rx, ry)
    center = find("encoding", "encodingLimits", "kspace_encoding_step_1", "center")
    maximum = find("encoding", "encodingLimits", "kspace_encoding_step_1", "maximum")
    if ey and center is not None and maximum is not None:
        left = ey // 2 - center
        out["padding"] = (int(left), int(left + maximum + 1))
    return out


def _open(data: bytes | str, filename: str):
    import h5py

    if isinstance(data, bytes | bytearray):
        if not bytes(data[:8]) == HDF5_SIGNATURE:
            raise InputError(f"{filename} is not an HDF5 file")
        h5_preflight(data, filename, "workbench.io.mri_fastmri:read_fastmri")
        try:
            return h5py.File(io.BytesIO(data), "r")
        except H5_ERRORS:
            raise InputError(f"{filename} is not a readable HDF5 file") from None
    try:
        return h5py.File(data, "r")
    except H5_ERRORS:
        raise InputError(f"{filename} is not an HDF5 file") from None


def read_fastmri(data: bytes | str, filename: str = "file.h5") -> dict[str, Any]:
    """Read and validate a fastMRI file.

    Returns
    -------
    dict with ``kspace`` (S, C, H, W) complex64, ``reconstruction_rss`` (S, h, w) or None,
    ``mask`` (W,) or None, ``attrs`` (dict), ``header`` (parsed dict), ``single_coil`` (bool).

    Raises
    ------
    InputError
        Not HDF5, no ``kspace``, wrong rank, non-complex or non-finite k-space, bad mask.
    """
    with _open(data, filename) as f, h5_damage(filename):
        if "kspace" not in f:
            raise InputError(
                f"{filename} has no 'kspace' dataset (found: {', '.join(sorted(f.keys())) or 'nothing'})"
            )
        ds = f["kspace"]
        check_h5_dataset(ds, filename)
        if ds.ndim not in (3, 4):
            raise InputError(
                f"{filename}: kspace must be (slices, coils, H, W) or (slices, H, W), got shape {ds.shape}"
            )
        if ds.dtype.kind != "c":
            raise InputError(f"{filename}: kspace must be complex, got dtype {ds.dtype}")
        k = np.asarray(ds[()], np.complex64)
        if not np.isfinite(k).all():
            raise InputError(f"{filename}: kspace contains NaN or infinite values")
        single = k.ndim == 3
        if single:
            k = k[:, None]
        w = k.shape[-1]
        rss = None
        for key in ("reconstruction_rss", "reconstruction_esc"):
            if key in f:
                check_h5_dataset(f[key], filename)
                rss = np.asarray(f[key][()], np.float32)
                if rss.ndim != 3 or rss.shape[0] != k.shape[0]:
                    raise InputError(
                        f"{filename}: {key} must be (slices, h, w) with {k.shape[0]} slices, got {rss.shape}"
                    )
                if not np.isfinite(rss).all():
                    raise InputError(f"{filename}: {key} contains NaN or infinite values")
                break
        mask = None
        if "mask" in f:
            check_h5_dataset(f["mask"], filename)
            mask = np.asarray(f["mask"][()]).astype(np.float32)
            if mask.ndim == 1 and mask.shape[0] != w:
                raise InputError(f"{filename}: mask has {mask.shape[0]} columns but kspace has {w}")
            if mask.ndim == 2 and mask.shape != k.shape[-2:]:
                raise InputError(
                    f"{filename}: mask shape {mask.shape} does not match kspace {k.shape[-2:]}"
                )
            if mask.ndim not in (1, 2) or not np.isin(mask, (0, 1)).all():
                raise InputError(f"{filename}: mask must be a binary (W,) or (H, W) array")
            if mask.sum() == 0:
                raise InputError(f"{filename}: mask samples nothing")
        attrs = {
            k_: (v.decode() if isinstance(v, bytes) else (v.item() if hasattr(v, "item") else v))
            for k_, v in f.attrs.items()
        }
        header: dict[str, Any] = {}
        if "ismrmrd_header" in f:
            check_h5_dataset(f["ismrmrd_header"], filename)
            raw = f["ismrmrd_header"][()]
            header = parse_header(raw if isinstance(raw, bytes | str) else bytes(raw))
            header["xml"] = raw.decode() if isinstance(raw, bytes) else str(raw)
    return {
        "kspace": k,
        "reconstruction_rss": rss,
        "mask": mask,
        "attrs": attrs,
        "header": header,
        "single_coil": single,
    }


def write_fastmri(
    path_or_buffer,
    kspace: np.ndarray,
    reconstruction_rss: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    attrs: dict | None = None,
    header: str | None = None,
) -> None:
    """Write a file in the fastMRI layout (multi-coil unless ``kspace`` is 3-D)."""
    import h5py

    with h5py.File(path_or_buffer, "w") as f:
        f.create_dataset("kspace", data=np.asarray(kspace, np.complex64))
        if reconstruction_rss is not None:
            f.create_dataset("reconstruction_rss", data=np.asarray(reconstruction_rss, np.float32))
        if mask is not None:
            f.create_dataset("mask", data=np.asarray(mask))
        if header is not None:
            f.create_dataset("ismrmrd_header", data=header.encode())
        for k, v in (attrs or {}).items():
            f.attrs[k] = v


def reconstruction_bytes(recon: np.ndarray, attrs: dict | None = None) -> bytes:
    """A fastMRI-style reconstruction file: ``reconstruction`` (slices, h, w) + ``max``/``acquisition`` attrs."""
    import h5py

    recon = np.asarray(recon, np.float32)
    if recon.ndim == 2:
        recon = recon[None]
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f.create_dataset("reconstruction", data=recon)
        f.attrs["max"] = float(recon.max()) if recon.size else 0.0
        for k, v in (attrs or {}).items():
            f.attrs[k] = v
    return buf.getvalue()


def problem_from_h5(data: bytes | str, filename: str, options: dict):
    """Build an :class:`~workbench.problems.MRIProblem` from a fastMRI file.

    Without a ``mask`` the k-space is fully sampled: the Options mask is applied, and the
    reference is ``reconstruction_rss`` (or the RSS of the full k-space) at the recon size. With a
    ``mask`` the data are taken as measured.
    """
    from workbench.physics.mri.acquisition import build_problem
    from workbench.physics.mri.metrics import center_crop

    d = read_fastmri(data, filename)
    k, rss, mask, hdr = d["kspace"], d["reconstruction_rss"], d["mask"], d["header"]
    s, c, h, w = k.shape
    recon_size = hdr.get("recon_size")
    if recon_size is not None:
        recon_size = (min(recon_size[0], h), min(recon_size[1], w))
    elif rss is not None:
        recon_size = rss.shape[-2:]
    band = hdr.get("padding")
    if band is not None and not (0 <= band[0] < band[1] <= w):
        band = None
    meta = {
        "source": filename,
        "acquisition": d["attrs"].get("acquisition", ""),
        "file_attrs": {k_: v for k_, v in d["attrs"].items() if isinstance(v, str | int | float)},
    }
    if hdr:
        meta["header"] = {k_: v for k_, v in hdr.items() if k_ != "xml"}
    maps = options.get("maps", "auto")
    if maps == "true":
        raise InputError("true coil maps exist only for simulations; use acs_rss or espirit")
    if rss is not None and recon_size is not None and tuple(rss.shape[-2:]) != tuple(recon_size):
        recon_size = rss.shape[-2:]
    kind = "file_rss" if rss is not None else ("rss_full" if mask is None else "")
    ref = rss
    if mask is not None:
        m2 = np.broadcast_to(mask[None, :], (h, w)).copy() if mask.ndim == 1 else mask
        y = k * m2[None, None]
        return build_problem(
            None,
            name=filename,
            measured=(y, m2),
            maps=maps,
            reference=ref,
            reference_kind=kind,
            recon_size=recon_size,
            meta=meta,
        )
    if ref is None:
        from workbench.physics.mri.acquisition import rss_full

        ref = center_crop(rss_full(k), recon_size)
    return build_problem(
        k,
        name=filename,
        mask=options.get("mask", "equispaced"),
        acceleration=options.get("acceleration", 4.0),
        center_fraction=options.get("center_fraction", 0.08),
        seed=options.get("seed", 0),
        maps=maps,
        reference=ref,
        reference_kind=kind,
        recon_size=recon_size,
        band=band,
        meta=meta,
    )
