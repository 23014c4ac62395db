"""ISMRMRD raw data (HDF5): read Cartesian 2-D multi-coil acquisitions into an MRI problem; write.

An ISMRMRD file holds an XML header (encoded and recon matrix sizes, encoding limits, trajectory)
and one record per readout line: an acquisition header (flags, ``idx`` counters:
``kspace_encode_step_1``, ``slice``, ``average``, ``repetition``, ...; ``center_sample``,
``number_of_samples``, ``active_channels``) and the complex samples (coils x samples).
The header is parsed with the ``ismrmrd`` package (its schema classes); the records are read in
one go with h5py through the package's record dtypes.

What is assembled into k-space ``(S, C, H, W)`` (H readout, W phase encode, as fastMRI):

* only imaging lines: noise, calibration-only, navigator, phase-correction, dummy, feedback and
  phase-stabilisation lines are left out (by their flags);
* each line goes to column ``W/2 + k1 - center(k1)`` (the encoding limits), readout samples to
  rows ``H/2 - center_sample + i`` (asymmetric echoes land where they belong), reversed lines are
  flipped back;
* averages are averaged (complex mean of the lines acquired at one position); repetitions become
  separate frames stacked with the slices (``S = slices x repetitions``); more than one contrast,
  phase or set keeps index 0 with a notice;
* readout oversampling (encoded x > recon x) is removed by cropping the centre of the image along
  the readout, ``k <- F_x crop F_x^{-1} k``, as scanner reconstructions do.

Refused with one line: non-Cartesian trajectories (radial, spiral, EPI, golden angle, other),
3-D encodings (``kspace_encoding_step_2``), multi-band / simultaneous multi-slice excitation,
several encoding spaces, lines that do not fit the encoded matrix.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from workbench.errors import InputError
from workbench.io.h5_sandbox import h5_preflight
from workbench.io.limits import H5_ERRORS, h5_damage

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"

# ISMRMRD acquisition flags (bit n is 1 << (n - 1)) of lines that are not image data
SKIP_FLAGS = {
    19: "noise",
    20: "parallel calibration",
    23: "navigation",
    24: "phase correction",
    26: "HP feedback",
    27: "dummy scan",
    28: "RT feedback",
    29: "surface coil correction",
    30: "phase stabilisation reference",
    31: "phase stabilisation",
}
FLAG_REVERSE = 22
MAX_LINES = 2_000_000
MAX_KSPACE_BYTES = 4 * 2**30


def _bit(n: int) -> int:
    return 1 << (n - 1)


def parse_header(xml: str | bytes, filename: str = "file.h5"):
    """The ISMRMRD XML header as the ``ismrmrd`` package's schema object."""
    import ismrmrd.xsd

    try:
        return ismrmrd.xsd.CreateFromDocument(xml)
    except Exception as exc:  # noqa: BLE001 - xsdata raises several parser errors
        msg = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise InputError(f"{filename}: not a valid ISMRMRD XML header ({msg})") from None


def is_ismrmrd(data: bytes, filename: str = "file.h5") -> bool:
    """An HDF5 file with an ISMRMRD ``dataset`` group (``xml`` + ``data``); InputError if reading
    it crashes libhdf5 (:func:`workbench.io.h5_sandbox.h5_preflight`)."""
    import h5py

    if bytes(data[:8]) != HDF5_SIGNATURE:
        return False
    h5_preflight(data, filename, "workbench.io.mri_ismrmrd:is_ismrmrd")
    try:
        with h5py.File(io.BytesIO(data), "r") as f:
            return any(isinstance(g, h5py.Group) and "xml" in g and "data" in g for g in f.values())
    except H5_ERRORS:  # damaged: not recognised
        return False


def _group(f, filename: str):
    import h5py

    if "dataset" in f and isinstance(f["dataset"], h5py.Group):
        g = f["dataset"]
    else:
        gs = [g for g in f.values() if isinstance(g, h5py.Group) and "xml" in g and "data" in g]
        if not gs:
            raise InputError(f"{filename} has no ISMRMRD dataset (a group with 'xml' and 'data')")
        g = gs[0]
    for key in ("xml", "data"):
        if key not in g:
            raise InputError(f"{filename}: the ISMRMRD dataset has no '{key}'")
        if not isinstance(g[key], h5py.Dataset):  # a damaged link can name a group or a type
            raise InputError(f"{filename}: the ISMRMRD dataset's '{key}' is not an array")
    return g


def _header_geometry(hdr, filename: str) -> dict[str, Any]:
    if len(hdr.encoding) != 1:
        raise InputError(
            f"{filename}: {len(hdr.encoding)} encoding spaces; only single-encoding acquisitions are supported"
        )
    enc = hdr.encoding[0]
    traj = getattr(enc.trajectory, "value", str(enc.trajectory))
    if traj != "cartesian":
        raise InputError(
            f"{filename}: {traj} trajectory; only Cartesian acquisitions are supported (non-Cartesian "
            "data would need gridding)"
        )
    pi = enc.parallelImaging
    if pi is not None and getattr(pi, "multiband", None) is not None:
        raise InputError(
            f"{filename}: multi-band (simultaneous multi-slice) excitation is not supported"
        )
    if pi is not None and pi.accelerationFactor is not None:
        if int(pi.accelerationFactor.kspace_encoding_step_2 or 1) > 1:
            raise InputError(
                f"{filename}: 3-D (kspace_encoding_step_2) acceleration is not supported"
            )
    e, r = enc.encodedSpace.matrixSize, enc.reconSpace.matrixSize
    if int(e.z) > 1:
        raise InputError(
            f"{filename}: 3-D encoding ({e.z} partitions along kspace_encoding_step_2); only 2-D "
            "multi-slice acquisitions are supported"
        )
    lim = enc.encodingLimits
    k1 = lim.kspace_encoding_step_1 if lim is not None else None
    ex, ey = int(e.x), int(e.y)
    if ex < 2 or ey < 2 or ex > 4096 or ey > 4096:
        raise InputError(f"{filename}: implausible encoded matrix {ex} x {ey}")
    c1 = int(k1.center) if k1 is not None else ey // 2
    lo = int(k1.minimum) if k1 is not None else 0
    hi = int(k1.maximum) if k1 is not None else ey - 1
    shift = ey // 2 - c1
    band = (max(0, lo + shift), min(ey, hi + shift + 1))
    return {
        "enc": (ex, ey),
        "recon": (min(int(r.x), ex), min(int(r.y), ey)),
        "k1_shift": shift,
        "band": band,
    }


def read_ismrmrd(data: bytes | str, filename: str = "raw.h5") -> dict[str, Any]:
    """Read and validate an ISMRMRD file; assemble Cartesian k-space.

    Returns
    -------
    dict with ``kspace`` (S, C, H, W) complex64 (oversampling removed), ``sampled`` (S, W) bool
    (columns holding data), ``recon_size`` (h, w), ``band`` (left, right) of the acquired
    columns, ``header`` (geometry dict), ``frames`` (list of (slice, repetition) per S index),
    ``notices`` (list of str) and ``skipped`` ({kind: count}).
    """
    import h5py
    from ismrmrd.hdf5 import acquisition_header_dtype

    if isinstance(data, bytes | bytearray) and bytes(data[:8]) != HDF5_SIGNATURE:
        raise InputError(f"{filename} is not an HDF5 file")
    if isinstance(data, bytes | bytearray):
        h5_preflight(data, filename, "workbench.io.mri_ismrmrd:read_ismrmrd")
    src = io.BytesIO(data) if isinstance(data, bytes | bytearray) else data
    try:
        f = h5py.File(src, "r")
    except H5_ERRORS:
        raise InputError(f"{filename} is not a readable HDF5 file") from None
    with f, h5_damage(filename):
        g = _group(f, filename)
        raw_xml = g["xml"][0] if g["xml"].shape else g["xml"][()]
        hdr = parse_header(raw_xml, filename)
        geo = _header_geometry(hdr, filename)
        ds = g["data"]
        if ds.dtype.names is None or not {"head", "data"} <= set(ds.dtype.names):
            raise InputError(f"{filename}: 'data' is not an ISMRMRD acquisition table")
        if ds.shape[0] == 0:
            raise InputError(f"{filename} holds no acquisitions")
        if ds.shape[0] > MAX_LINES:
            raise InputError(f"{filename} holds {ds.shape[0]} acquisitions; at most {MAX_LINES}")
        heads = np.asarray(ds["head"])
        for name in ("flags", "idx", "number_of_samples", "active_channels", "center_sample"):
            if name not in (heads.dtype.names or ()):
                raise InputError(f"{filename}: acquisition headers lack '{name}'")
        if heads.dtype != acquisition_header_dtype:
            heads = heads.astype(acquisition_header_dtype)
        flags = heads["flags"].astype(np.uint64)
        skipmask = np.uint64(sum(_bit(b) for b in SKIP_FLAGS))
        keep = (flags & skipmask) == 0
        skipped = {
            name: int(((flags & np.uint64(_bit(b))) != 0).sum())
            for b, name in SKIP_FLAGS.items()
            if ((flags & np.uint64(_bit(b))) != 0).any()
        }
        if not keep.any():
            raise InputError(f"{filename} holds no imaging lines (only {', '.join(skipped)})")
        idx = np.flatnonzero(keep)
        samples = ds["data"][idx] if len(idx) < ds.shape[0] else ds["data"][()]
    h = heads[idx]
    hi = h["idx"]
    if np.any(hi["kspace_encode_step_2"] > 0):
        raise InputError(
            f"{filename}: lines along kspace_encode_step_2 (3-D encoding) are not supported"
        )
    notices: list[str] = []
    sel = np.ones(len(idx), bool)
    for name in ("contrast", "phase", "set"):
        vals = np.unique(hi[name])
        if len(vals) > 1:
            notices.append(f"{len(vals)} {name}s in the file: {name} {int(vals.min())} is used")
            sel &= hi[name] == vals.min()
    h, hi = h[sel], hi[sel]
    samples = [samples[i] for i in np.flatnonzero(sel)]
    chans = np.unique(h["active_channels"])
    nsamp = np.unique(h["number_of_samples"])
    if len(chans) != 1 or chans[0] < 1:
        raise InputError(
            f"{filename}: imaging lines have different channel counts {chans.tolist()}"
        )
    if len(nsamp) != 1:
        raise InputError(f"{filename}: imaging lines have different lengths {nsamp.tolist()}")
    c, ns = int(chans[0]), int(nsamp[0])
    ex, ey = geo["enc"]
    slices = np.unique(hi["slice"])
    reps = np.unique(hi["repetition"])
    frames = [(int(s), int(r)) for s in slices for r in reps]
    if len(frames) > 512:
        raise InputError(f"{filename}: {len(frames)} slices x repetitions; at most 512")
    frame_of = {fr: i for i, fr in enumerate(frames)}
    # complex64 like the fastMRI reader: a 16-slice, 16-coil 640 x 320 brain scan is 420 MB
    acc = np.zeros((len(frames), c, ex, ey), np.complex64)
    if acc.nbytes > MAX_KSPACE_BYTES:
        raise InputError(f"{filename}: k-space of {acc.nbytes / 2**30:.1f} GiB is too large")
    cnt = np.zeros((len(frames), ey), np.int64)
    rev = (h["flags"].astype(np.uint64) & np.uint64(_bit(FLAG_REVERSE))) != 0
    for n in range(len(h)):
        v = np.asarray(samples[n], np.float32)
        if v.size != 2 * c * ns:
            raise InputError(
                f"{filename}: acquisition {n} holds {v.size} values, expected {2 * c * ns}"
            )
        line = v.view(np.complex64).reshape(c, ns)
        if rev[n]:
            line = line[:, ::-1]
        col = int(hi["kspace_encode_step_1"][n]) + geo["k1_shift"]
        row0 = ex // 2 - int(h["center_sample"][n]) if ns != ex else 0
        if not (0 <= col < ey) or row0 < 0 or row0 + ns > ex:
            raise InputError(
                f"{filename}: a line (encode step {int(hi['kspace_encode_step_1'][n])}, {ns} samples) "
                f"does not fit the encoded matrix {ex} x {ey}"
            )
        fi = frame_of[(int(hi["slice"][n]), int(hi["repetition"][n]))]
        acc[fi, :, row0 : row0 + ns, col] += line
        cnt[fi, col] += 1
    if not np.isfinite(acc).all():
        raise InputError(f"{filename}: k-space contains NaN or infinite values")
    acc /= np.maximum(cnt, 1)[:, None, None, :].astype(np.float32)
    k = acc
    if int(np.unique(hi["average"]).size) > 1:
        notices.append(f"{int(np.unique(hi['average']).size)} averages were averaged")
    rx, ry = geo["recon"]
    if rx < ex:
        k = remove_readout_oversampling(k, rx)
    return {
        "kspace": k.astype(np.complex64),
        "sampled": cnt > 0,
        "recon_size": (rx, ry),
        "band": geo["band"],
        "header": {"enc_size": (ex, ey), "recon_size": (rx, ry), "band": geo["band"]},
        "frames": frames,
        "notices": notices,
        "skipped": skipped,
    }


def remove_readout_oversampling(k: np.ndarray, rx: int) -> np.ndarray:
    """Crop the readout (axis -2) field of view to its central ``rx`` pixels: centred inverse FFT
    along the readout, crop, centred FFT back."""
    h = k.shape[-2]
    img = np.fft.fftshift(np.fft.ifft(np.fft.ifftshift(k, axes=-2), axis=-2, norm="ortho"), axes=-2)
    a = (h - rx) // 2
    img = img[..., a : a + rx, :]
    # the pair is orthonormal, so the problem's own centred orthonormal inverse FFT of the result
    # gives exactly the crop of the oversampled image
    return np.fft.fftshift(
        np.fft.fft(np.fft.ifftshift(img, axes=-2), axis=-2, norm="ortho"), axes=-2
    )


def problem_from_ismrmrd(data: bytes | str, filename: str, options: dict):
    """An :class:`~workbench.problems.MRIProblem` from an ISMRMRD file.

    A fully sampled band (every column between the encoding limits acquired) is treated like a
    fully sampled fastMRI file: the Options mask is applied and the reference is the RSS of the
    full data at the recon size. Otherwise the acquired lines are the measurement."""
    return problem_from_assembled(read_ismrmrd(data, filename), filename, options, "ISMRMRD")


def problem_from_assembled(d: dict[str, Any], filename: str, options: dict, fmt: str):
    """The problem from assembled raw data (``read_ismrmrd``'s dict; the twix reader makes the
    same): fully sampled band -> Options mask and RSS reference; else the measured lines."""
    from workbench.physics.mri.acquisition import build_problem, rss_full
    from workbench.physics.mri.metrics import center_crop

    k, sampled, band = d["kspace"], d["sampled"], d["band"]
    s, c, h, w = k.shape
    recon = (min(d["recon_size"][0], h), min(d["recon_size"][1], w))
    maps = options.get("maps", "auto")
    if maps == "true":
        raise InputError("true coil maps exist only for simulations; use acs_rss or espirit")
    meta = {
        "source": filename,
        "format": fmt,
        "header": {k_: list(v) for k_, v in d["header"].items()},
        "frames": [list(f) for f in d["frames"]],
        "notices": d["notices"],
        "skipped_lines": d["skipped"],
    }
    in_band = np.zeros(w, bool)
    in_band[band[0] : band[1]] = True
    if not sampled.any(axis=0)[in_band].all() or not (sampled == sampled[:1]).all():
        cols = sampled.all(axis=0)
        m2 = np.broadcast_to(cols[None, :], (h, w)).astype(np.float32)
        if m2.sum() == 0:
            raise InputError(f"{filename}: no phase-encode column is acquired in every slice")
        return build_problem(
            None,
            name=filename,
            measured=(k * m2[None, None], m2),
            maps=maps,
            recon_size=recon,
            meta=meta,
        )
    ref = center_crop(rss_full(k), recon)
    return build_problem(
        k,
        name=filename,
        mask=options.get("mask", "equispaced"),
        acceleration=options.get("acceleration", 4.0),
        center_fraction=options.get("center_fraction", 0.08),
        seed=options.get("seed", 0),
        maps=maps,
        reference=ref,
        reference_kind="rss_full",
        recon_size=recon,
        band=band if band != (0, w) else None,
        meta=meta,
    )


# ------------------------------------------------------------------------------------------
# Writing
# ------------------------------------------------------------------------------------------


def make_header(
    enc: tuple[int, int],
    recon: tuple[int, int],
    n_slices: int = 1,
    n_averages: int = 1,
    n_repetitions: int = 1,
    k1_center: int | None = None,
    k1_range: tuple[int, int] | None = None,
    trajectory: str = "cartesian",
    fov_mm: tuple[float, float, float] = (240.0, 240.0, 5.0),
) -> str:
    """An ISMRMRD XML header (built with the package's schema classes) for a 2-D Cartesian scan;
    ``enc``/``recon`` are (readout, phase encode) sizes."""
    import ismrmrd.xsd as x

    ex, ey = enc
    lo, hi = k1_range if k1_range is not None else (0, ey - 1)

    def limit(lo_, hi_, c_):
        return x.limitType(minimum=int(lo_), maximum=int(hi_), center=int(c_))

    space = x.encodingSpaceType(
        matrixSize=x.matrixSizeType(x=int(ex), y=int(ey), z=1),
        fieldOfView_mm=x.fieldOfViewMm(x=fov_mm[0] * ex / recon[0], y=fov_mm[1], z=fov_mm[2]),
    )
    rspace = x.encodingSpaceType(
        matrixSize=x.matrixSizeType(x=int(recon[0]), y=int(recon[1]), z=1),
        fieldOfView_mm=x.fieldOfViewMm(x=fov_mm[0], y=fov_mm[1], z=fov_mm[2]),
    )
    limits = x.encodingLimitsType(
        kspace_encoding_step_1=limit(lo, hi, ey // 2 if k1_center is None else k1_center),
        kspace_encoding_step_2=limit(0, 0, 0),
        slice=limit(0, n_slices - 1, 0),
        average=limit(0, n_averages - 1, 0),
        repetition=limit(0, n_repetitions - 1, 0),
    )
    hdr = x.ismrmrdHeader(
        experimentalConditions=x.experimentalConditionsType(H1resonanceFrequency_Hz=63_870_000),
        encoding=[
            x.encodingType(
                encodedSpace=space,
                reconSpace=rspace,
                encodingLimits=limits,
                trajectory=x.trajectoryType(trajectory),
            )
        ],
    )
    return x.ToXML(hdr)


def write_ismrmrd(
    path_or_buffer,
    kspace: np.ndarray,
    recon_size: tuple[int, int] | None = None,
    band: tuple[int, int] | None = None,
    averages: np.ndarray | None = None,
    noise_lines: int = 0,
    trajectory: str = "cartesian",
    seed: int = 0,
) -> None:
    """Write k-space ``(S, C, H, W)`` (H readout) as ISMRMRD acquisitions with the ``ismrmrd``
    package, one line per phase-encode column of ``band`` (all columns by default).

    ``averages``: optional ``(A, S, C, H, W)`` array written as averages 0..A-1 instead of
    ``kspace``; ``noise_lines`` noise-scan lines (flagged, seeded) are written first."""
    import ismrmrd

    k = np.asarray(kspace, np.complex64)
    if k.ndim == 3:
        k = k[:, None]
    s, c, h, w = k.shape
    avg = np.asarray(averages, np.complex64) if averages is not None else k[None]
    lo, hi = band if band is not None else (0, w)
    header = make_header(
        (h, w),
        recon_size or (h, w),
        n_slices=s,
        n_averages=avg.shape[0],
        k1_range=(lo, hi - 1),
        trajectory=trajectory,
    )
    ds = ismrmrd.Dataset(path_or_buffer, "dataset", mode="w")
    try:
        ds.write_xml_header(header)
        rng = np.random.default_rng(seed)
        for _ in range(noise_lines):
            noise = (rng.normal(size=(c, h)) + 1j * rng.normal(size=(c, h))).astype(np.complex64)
            acq = ismrmrd.Acquisition.from_array(noise, center_sample=h // 2)
            acq.set_flag(19)
            ds.append_acquisition(acq)
        for a in range(avg.shape[0]):
            for sl in range(s):
                for col in range(lo, hi):
                    acq = ismrmrd.Acquisition.from_array(
                        np.ascontiguousarray(avg[a, sl, :, :, col]), center_sample=h // 2
                    )
                    acq.idx.kspace_encode_step_1 = col
                    acq.idx.slice = sl
                    acq.idx.average = a
                    if col == lo:
                        acq.set_flag(1)
                    if col == hi - 1:
                        acq.set_flag(2)
                    ds.append_acquisition(acq)
    finally:
        ds.close()


def fastmri_to_ismrmrd(data: bytes | str, filename: str = "file.h5") -> bytes:
    """Convert a fully sampled fastMRI-layout file to ISMRMRD bytes (same k-space, same encoded
    and recon sizes, same acquired band)."""
    from workbench.io.mri_fastmri import read_fastmri

    d = read_fastmri(data, filename)
    k = d["kspace"]
    hdr = d["header"]
    w = k.shape[-1]
    band = hdr.get("padding")
    if band is not None and not (0 <= band[0] < band[1] <= w):
        band = None
    recon = hdr.get("recon_size")
    if recon is None and d["reconstruction_rss"] is not None:
        recon = d["reconstruction_rss"].shape[-2:]
    buf = io.BytesIO()
    write_ismrmrd(buf, k, recon_size=tuple(recon) if recon else None, band=band)
    return buf.getvalue()
