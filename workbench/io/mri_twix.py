"""Siemens twix raw data (.dat, VB and VD/VE) through ``twixtools``: the image lines of a
Cartesian 2-D scan assembled into multi-coil k-space; and a minimal VE writer for tests.

A twix file holds one or more measurements ("scans"; in VD/VE multi-raid files the last one is
the imaging scan, earlier ones are adjustments). Each has a protocol header (``MeasYaps``:
ASCCONV with ``sKSpace.lBaseResolution``, ``lPhaseEncodingLines``, ``ucTrajectory``,
``ucDimension``, ``sSliceAcceleration.lMultiBandFactor``) and measurement data blocks, one per
readout line, with loop counters (``Lin``, ``Sli``, ``Ave``, ``Rep``, ``Par``, ``Eco``, ...),
``CenterCol``/``CenterLin`` and flags (noise, reference, phase correction, reflected lines).

Assembly is the ISMRMRD reader's (:mod:`workbench.io.mri_ismrmrd`): image lines only
(``twixtools``' ``is_image_scan``: no noise, PAT reference-only, phase-correction,
phase-stabilisation or feedback lines), column ``W/2 + Lin - CenterLin``, rows
``H/2 - CenterCol + i``, reflected lines flipped, averages averaged, repetitions as frames,
echo/phase/set index 0, readout oversampling (2 x ``lBaseResolution`` samples) removed.
Refused with one line: non-Cartesian trajectories (radial, spiral, PROPELLER), 3-D encoding
(partitions), simultaneous multi-slice (multi-band factor > 1), not a twix file.

``twixtools`` reads from a path, so the bytes go to a private temporary file that is deleted
before the function returns; nothing is unpickled.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import os
import struct
import tempfile
from typing import Any

import numpy as np

from workbench.errors import InputError

MAX_KSPACE_BYTES = 4 * 2**30
TRAJECTORIES = {1: "Cartesian", 2: "radial", 4: "spiral", 8: "PROPELLER"}


def _int(v, default: int = 0) -> int:
    try:
        if isinstance(v, str):
            return int(v, 0)
        return int(v)
    except (TypeError, ValueError):
        return default


def _read_scans(data: bytes, filename: str) -> list[dict]:
    import twixtools

    _check_structure(data, filename)
    with tempfile.TemporaryDirectory(prefix="wb-twix-") as d:
        path = os.path.join(d, "meas.dat")
        with open(path, "wb") as f:
            f.write(data)
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # twixtools prints warnings
                scans = twixtools.read_twix(
                    path, parse_pmu=False, parse_geometry=False, verbose=False
                )
            out = []
            for scan in scans:
                lines = []
                for mdb in scan.get("mdb", []):
                    if not mdb.is_image_scan():
                        continue
                    m = mdb.mdh
                    lines.append(
                        {
                            "lin": int(m.Counter.Lin),
                            "sli": int(m.Counter.Sli),
                            "ave": int(m.Counter.Ave),
                            "rep": int(m.Counter.Rep),
                            "par": int(m.Counter.Par),
                            "eco": int(m.Counter.Eco),
                            "phs": int(m.Counter.Phs),
                            "set": int(m.Counter.Set),
                            "center_col": int(m.CenterCol),
                            "center_lin": int(m.CenterLin),
                            "reflect": bool(mdb.is_flag_set("REFLECT")),
                            "data": np.array(mdb.data, np.complex64),  # read while the file exists
                        }
                    )
                out.append({"hdr": scan.get("hdr", {}), "lines": lines})
        except InputError:
            raise
        except Exception as exc:  # noqa: BLE001 - twixtools raises many kinds on bad files
            raise InputError(
                f"{filename} is not a readable Siemens twix file ({type(exc).__name__})"
            ) from None
    return out


MAX_BLOCKS = 5_000_000


def _check_header_buffers(data: bytes, off: int, stop: int, filename: str) -> None:
    """The protocol header at ``off``: hdr_len, n_buffers, then per buffer a NUL-terminated name,
    a uint32 length and the text. ``twixtools`` allocates each buffer at its declared length
    before reading it, so one flipped byte (a name's NUL) made a 43 KB file declare a 1.4 GB
    buffer; every buffer must lie inside the header (``stop`` = off + hdr_len)."""
    n_buf = struct.unpack("<I", data[off + 4 : off + 8])[0]
    if n_buf > 64:
        raise InputError(f"{filename}: the protocol header declares {n_buf} buffers (corrupt file)")
    pos = off + 8
    for _ in range(n_buf):
        nul = data.find(b"\0", pos, min(pos + 256, stop))
        if nul < 0 or nul + 5 > stop:
            raise InputError(
                f"{filename}: a protocol buffer's name runs past the header (corrupt file)"
            )
        length = struct.unpack("<I", data[nul + 1 : nul + 5])[0]
        pos = nul + 5 + length
        if pos > stop:
            raise InputError(
                f"{filename}: a protocol buffer of {length} bytes runs past the header (corrupt file)"
            )


def _check_structure(data: bytes, filename: str) -> None:
    """Walk the measurement offsets and the data blocks as ``twixtools`` will, and refuse a file
    whose offsets leave the file or whose block lengths are zero (``twixtools`` would loop on
    them forever): hostile or truncated files get one line, not a hung server."""
    from twixtools import hdr_def, mdh_def

    n = len(data)
    if n < 64:
        raise InputError(f"{filename} is too short to be a Siemens twix file")
    first, second = struct.unpack("<II", data[:8])
    ve = first < 10000 and second <= 64
    if ve:
        if n < hdr_def.MultiRaidFileHeader.itemsize or second == 0:
            raise InputError(f"{filename} is not a Siemens twix file (no measurements)")
        raid = np.frombuffer(
            data[: hdr_def.MultiRaidFileHeader.itemsize], hdr_def.MultiRaidFileHeader
        )[0]
        spans = []
        for e in raid["entry"][: int(second)]:
            off, ln = int(e["off_"]), int(e["len_"]) or n - int(e["off_"])
            if not (0 < off < n) or off + ln > n + 512:
                raise InputError(f"{filename}: a measurement lies outside the file (truncated?)")
            spans.append((off, min(off + ln, n)))
        header = mdh_def.Scan_header
    else:
        spans = [(0, n)]
        header = mdh_def.VB17_header
    size = ctypes.sizeof(header)
    chan = ctypes.sizeof(mdh_def.Channel_header)
    steps = 0
    for off, end in spans:
        if off + 8 > n:
            raise InputError(f"{filename}: truncated measurement header")
        hdr_len = struct.unpack("<I", data[off : off + 4])[0]
        pos = off + hdr_len
        if hdr_len < 8 or pos > end:
            raise InputError(f"{filename}: the protocol header runs past the end of the file")
        _check_header_buffers(data, off, pos, filename)
        while pos + 128 < end:
            if pos + size > n:
                raise InputError(f"{filename}: truncated data block at byte {pos}")
            m = header.from_buffer_copy(data, pos)
            if mdh_def.is_flag_set(m, "ACQEND"):
                break
            if mdh_def.is_flag_set(m, "SYNCDATA"):
                dma = int(mdh_def.get_dma_len(m))
            else:
                block = 8 * int(m.SamplesInScan) + (chan if ve else size)
                dma = int(m.UsedChannels) * block + (size if ve else 0)
            if dma <= 0:
                raise InputError(f"{filename}: an empty data block at byte {pos} (corrupt file)")
            pos += dma
            if pos > n:
                raise InputError(f"{filename}: the last data block runs past the end (truncated)")
            steps += 1
            if steps > MAX_BLOCKS:
                raise InputError(f"{filename}: more than {MAX_BLOCKS} data blocks")


def read_twix(data: bytes, filename: str = "meas.dat") -> dict[str, Any]:
    """Read the last scan's image lines into k-space; the result has the keys of
    :func:`workbench.io.mri_ismrmrd.read_ismrmrd`."""
    from workbench.io.mri_ismrmrd import remove_readout_oversampling

    scans = [s for s in _read_scans(data, filename) if s["lines"]]
    if not scans:
        raise InputError(f"{filename} holds no image lines")
    scan = scans[-1]
    yaps = scan["hdr"].get("MeasYaps", {}) if isinstance(scan["hdr"], dict) else {}
    ksp = yaps.get("sKSpace", {}) if isinstance(yaps, dict) else {}
    traj = _int(ksp.get("ucTrajectory", 1), 1)
    if traj != 1:
        raise InputError(
            f"{filename}: {TRAJECTORIES.get(traj, f'trajectory code {traj}')} trajectory; only "
            "Cartesian acquisitions are supported"
        )
    if _int(ksp.get("ucDimension", 2), 2) == 4 or _int(ksp.get("lPartitions", 1), 1) > 1:
        raise InputError(
            f"{filename}: 3-D encoding (partitions); only 2-D multi-slice scans are supported"
        )
    mb = _int((yaps.get("sSliceAcceleration") or {}).get("lMultiBandFactor", 1), 1)
    if mb > 1:
        raise InputError(
            f"{filename}: simultaneous multi-slice (multi-band factor {mb}) is not supported"
        )
    lines = scan["lines"]
    if any(ln["par"] > 0 for ln in lines):
        raise InputError(f"{filename}: lines along partitions (3-D encoding) are not supported")
    notices: list[str] = []
    for key, what in (("eco", "echoes"), ("phs", "phases"), ("set", "sets")):
        vals = sorted({ln[key] for ln in lines})
        if len(vals) > 1:
            notices.append(f"{len(vals)} {what} in the file: index {vals[0]} is used")
            lines = [ln for ln in lines if ln[key] == vals[0]]
    shapes = {ln["data"].shape for ln in lines}
    if len(shapes) != 1:
        raise InputError(f"{filename}: image lines of different shapes {sorted(shapes)}")
    c, ns = next(iter(shapes))
    base = _int(ksp.get("lBaseResolution", 0), 0)
    ex = max(ns, 2 * base) if base else ns
    ey = _int(ksp.get("lPhaseEncodingLines", 0), 0)
    center_lin = lines[0]["center_lin"]
    ey = max(ey, max(ln["lin"] for ln in lines) + 1, 2 * center_lin if center_lin else 0)
    if ex > 8192 or ey > 4096:
        raise InputError(f"{filename}: implausible matrix {ex} x {ey}")
    shift = ey // 2 - center_lin
    slices = sorted({ln["sli"] for ln in lines})
    reps = sorted({ln["rep"] for ln in lines})
    frames = [(s, r) for s in slices for r in reps]
    if len(frames) > 512:
        raise InputError(f"{filename}: {len(frames)} slices x repetitions; at most 512")
    frame_of = {fr: i for i, fr in enumerate(frames)}
    # complex64 like the fastMRI reader: a 16-slice, 16-coil 640 x 320 brain scan is 420 MB
    acc = np.zeros((len(frames), c, ex, ey), np.complex64)
    if acc.nbytes > MAX_KSPACE_BYTES:
        raise InputError(f"{filename}: k-space of {acc.nbytes / 2**30:.1f} GiB is too large")
    cnt = np.zeros((len(frames), ey), np.int64)
    for ln in lines:
        v = ln["data"][:, ::-1] if ln["reflect"] else ln["data"]
        col = ln["lin"] + shift
        row0 = ex // 2 - ln["center_col"] if ns != ex else 0
        if not (0 <= col < ey) or row0 < 0 or row0 + ns > ex:
            raise InputError(
                f"{filename}: a line (Lin {ln['lin']}, {ns} samples) does not fit the matrix {ex} x {ey}"
            )
        fi = frame_of[(ln["sli"], ln["rep"])]
        acc[fi, :, row0 : row0 + ns, col] += v
        cnt[fi, col] += 1
    if not np.isfinite(acc).all():
        raise InputError(f"{filename}: k-space contains NaN or infinite values")
    acc /= np.maximum(cnt, 1)[:, None, None, :].astype(np.float32)
    k = acc
    n_ave = len({ln["ave"] for ln in lines})
    if n_ave > 1:
        notices.append(f"{n_ave} averages were averaged")
    rx = base if base and base < ex else ex
    if rx < ex:
        k = remove_readout_oversampling(k, rx)
    acquired = np.flatnonzero(cnt.any(axis=0))
    band = (int(acquired.min()), int(acquired.max()) + 1)
    return {
        "kspace": k.astype(np.complex64),
        "sampled": cnt > 0,
        "recon_size": (rx, min(ey, rx) if base else ey),
        "band": band,
        "header": {"enc_size": (ex, ey), "recon_size": (rx, ey), "band": band},
        "frames": frames,
        "notices": notices,
        "skipped": {},
    }


def problem_from_twix(data: bytes, filename: str, options: dict):
    """An :class:`~workbench.problems.MRIProblem` from a twix file (see the ISMRMRD reader)."""
    from workbench.io.mri_ismrmrd import problem_from_assembled

    return problem_from_assembled(read_twix(data, filename), filename, options, "Siemens twix")


# ------------------------------------------------------------------------------------------
# A minimal VE writer (tests)
# ------------------------------------------------------------------------------------------


def _header_bytes(buffers: dict[str, str]) -> np.ndarray:
    body = b""
    for name, text in buffers.items():
        raw = text.encode("latin1") + b"\x00"
        body += name.encode() + b"\x00" + struct.pack("<I", len(raw)) + raw
    total = 8 + len(body)
    pad = (32 - total % 32) % 32
    blob = struct.pack("<II", total + pad, len(buffers)) + body + b"\x00" * pad
    return np.frombuffer(blob, dtype="<S1").copy()


def write_twix(
    path: str,
    kspace: np.ndarray,
    base_resolution: int | None = None,
    trajectory: int = 1,
    dimension: int = 2,
    multiband: int = 1,
    noise_lines: int = 0,
    reflect_odd: bool = False,
    seed: int = 0,
) -> None:
    """Write k-space ``(S, C, H, W)`` (H = readout samples, ``2 x base_resolution`` when
    oversampled) as a VE twix file with ``twixtools.write_twix``: a protocol with the
    ``sKSpace`` fields the reader uses, optional flagged noise lines, one line per column."""
    import twixtools
    from twixtools.mdb import Mdb_local

    k = np.asarray(kspace, np.complex64)
    s, c, h, w = k.shape
    base = base_resolution or h
    yaps = (
        "### ASCCONV BEGIN ###\n"
        f"sKSpace.lBaseResolution = {base}\n"
        f"sKSpace.lPhaseEncodingLines = {w}\n"
        f"sKSpace.ucTrajectory = 0x{trajectory:x}\n"
        f"sKSpace.ucDimension = 0x{dimension:x}\n"
        "sKSpace.lPartitions = 1\n"
        f"sSliceAcceleration.lMultiBandFactor = {multiband}\n"
        f"sSliceArray.lSize = {s}\n"
        "### ASCCONV END ###\n"
    )
    hdr = _header_bytes(
        {
            "Config": '<XProtocol> { <ParamLong."NoOfFourierColumns"> { ' + str(h) + " } }",
            "Dicom": '<XProtocol> { <ParamString."SoftwareVersions"> { "syngo MR XA30" } }',
            "MeasYaps": yaps,
            "Meas": yaps,
        }
    )
    mdbs = []
    rng = np.random.default_rng(seed)
    for _ in range(noise_lines):
        m = Mdb_local((rng.normal(size=(c, h)) + 1j * rng.normal(size=(c, h))).astype(np.complex64))
        m.add_flag("NOISEADJSCAN")
        mdbs.append(m)
    for sl in range(s):
        for col in range(w):
            line = k[sl, :, :, col]
            m = Mdb_local(np.ascontiguousarray(line[:, ::-1] if reflect_odd and col % 2 else line))
            if reflect_odd and col % 2:
                m.add_flag("REFLECT")
            m.mdh.Counter.Lin = col
            m.mdh.Counter.Sli = sl
            m.mdh.CenterCol = h // 2
            m.mdh.CenterLin = w // 2
            mdbs.append(m)
    with contextlib.redirect_stdout(io.StringIO()):
        twixtools.write_twix({"hdr_str": hdr, "mdb": mdbs}, path)
