"""Raw data as it leaves scanners: ISMRMRD HDF5, Siemens twix, DICOM magnitude series.

Every file is written here, with the format's own library (``ismrmrd``, ``pydicom``,
``twixtools.write_twix``), from a known k-space or image, and read back through the domain's
loader: round trips, agreement with the fastMRI path, and one-line refusals.
"""

from __future__ import annotations

import io
import zipfile

import h5py
import numpy as np
import pytest

from workbench.datasets.mri import load
from workbench.errors import InputError
from workbench.io import mri_dicom, mri_ismrmrd, mri_twix
from workbench.io.mri_fastmri import make_header, write_fastmri
from workbench.physics.mri.acquisition import rss_full
from workbench.physics.mri.metrics import center_crop, psnr

N = 32  # image size; the readout is oversampled 2x, the phase encode padded by 4 each side
W = N + 8


def _fft2c(x):
    return np.fft.fftshift(
        np.fft.fft2(np.fft.ifftshift(x, axes=(-2, -1)), norm="ortho"), axes=(-2, -1)
    )


@pytest.fixture(scope="module")
def fastmri_case():
    """A fastMRI-layout file: (1, 8, 2N, W) k-space of an MNI slice in a 2x readout FOV, a
    zero-padded phase-encode band, header sizes, RSS reference."""
    from workbench.datasets.mri import mni_slices
    from workbench.physics.mri.coils import birdcage

    img = mni_slices(N)["test"][5].astype(np.complex64)
    x = np.zeros((2 * N, W), np.complex64)
    x[N // 2 : N // 2 + N, 4 : 4 + N] = img
    k = _fft2c(birdcage(8, 2 * N, W).astype(np.complex64) * x)[None].astype(np.complex64)
    k[..., :4] = 0
    k[..., -4:] = 0
    hdr = make_header((2 * N, W), (N, N), center=W // 2 - 4, maximum=W - 9)
    buf = io.BytesIO()
    write_fastmri(buf, k, center_crop(rss_full(k), (N, N)), header=hdr)
    return {"kspace": k, "bytes": buf.getvalue()}


def _ismrmrd_bytes(k, **kw) -> bytes:
    buf = io.BytesIO()
    mri_ismrmrd.write_ismrmrd(buf, k, **kw)
    return buf.getvalue()


# ------------------------------------------------------------------------------------------
# ISMRMRD
# ------------------------------------------------------------------------------------------


def test_ismrmrd_from_fastmri_reconstructs_the_same_image(fastmri_case):
    """The target: zero-filled and CG-SENSE reconstructions of the ISMRMRD conversion match the
    fastMRI file's within 0.1 dB PSNR (against each one's reference), and the references agree."""
    from workbench import registry

    ism = mri_ismrmrd.fastmri_to_ismrmrd(fastmri_case["bytes"])
    assert mri_ismrmrd.is_ismrmrd(ism) and not mri_ismrmrd.is_ismrmrd(fastmri_case["bytes"])
    pa = load(fastmri_case["bytes"], "case.h5", acceleration=4, seed=1)
    pb = load(ism, "case_ismrmrd.h5", acceleration=4, seed=1)
    assert pb.meta["format"] == "ISMRMRD"
    assert pb.kspace.shape[-2] == N  # readout oversampling removed
    assert np.allclose(pa.reference, pb.reference, atol=1e-5 * pa.reference.max())
    for name in ("zero_filled", "cg_sense"):
        spec = registry.get_solver("mri", name)
        ra, rb = spec.solve(pa, spec.params()), spec.solve(pb, spec.params())
        qa = psnr(pa.reference, center_crop(ra.output, (N, N)))
        qb = psnr(pb.reference, center_crop(rb.output, (N, N)))
        assert abs(qa - qb) <= 0.1, (name, qa, qb)


def test_ismrmrd_round_trip_with_averages_noise_and_oversampling():
    rng = np.random.default_rng(0)
    k = (rng.normal(size=(2, 3, 2 * N, N)) + 1j * rng.normal(size=(2, 3, 2 * N, N))).astype(
        np.complex64
    )
    d = (rng.normal(size=k.shape) + 1j * rng.normal(size=k.shape)).astype(np.complex64)
    data = _ismrmrd_bytes(k, recon_size=(N, N), averages=np.stack([k + d, k - d]), noise_lines=5)
    r = mri_ismrmrd.read_ismrmrd(data, "avg.h5")
    assert r["skipped"] == {"noise": 5}
    assert any("averages" in n for n in r["notices"])
    assert r["kspace"].shape == (2, 3, N, N)
    # removing the readout oversampling = cropping the image's central rows
    img = np.fft.fftshift(
        np.fft.ifft2(np.fft.ifftshift(k, axes=(-2, -1)), norm="ortho"), axes=(-2, -1)
    )
    back = np.fft.fftshift(
        np.fft.ifft2(np.fft.ifftshift(r["kspace"], axes=(-2, -1)), norm="ortho"), axes=(-2, -1)
    )
    assert np.allclose(back, img[..., N // 2 : N // 2 + N, :], atol=1e-5)


def test_undersampled_ismrmrd_is_taken_as_measured():
    """A file that holds only every other column (plus the centre) is the measurement itself."""
    rng = np.random.default_rng(1)
    k = (rng.normal(size=(1, 4, N, N)) + 1j * rng.normal(size=(1, 4, N, N))).astype(np.complex64)
    buf = io.BytesIO()
    mri_ismrmrd.write_ismrmrd(buf, k)
    keep = np.zeros(N, bool)
    keep[::2] = True
    keep[N // 2 - 3 : N // 2 + 3] = True
    with h5py.File(buf, "r+") as f:
        rows = f["dataset/data"][()]
        lin = rows["head"]["idx"]["kspace_encode_step_1"]
        sel = rows[keep[lin]]
        del f["dataset/data"]
        f["dataset"].create_dataset("data", data=sel, maxshape=(None,))
    p = load(buf.getvalue(), "under.h5")
    assert p.meta["mask"] == "file"
    assert np.array_equal(p.mask[0] > 0, keep)
    assert np.allclose(p.kspace[..., keep], k[..., keep], atol=1e-6)
    assert np.all(p.kspace[..., ~keep] == 0)


def _rewrite_xml(data: bytes, old: str, new: str) -> bytes:
    buf = io.BytesIO(data)
    with h5py.File(buf, "r+") as f:
        x = f["dataset/xml"][0]
        x = x.decode() if isinstance(x, bytes) else x
        assert old in x
        f["dataset/xml"][0] = x.replace(old, new, 1).encode()
    return buf.getvalue()


@pytest.mark.parametrize(
    "edit, words",
    [
        (("<trajectory>cartesian</trajectory>", "<trajectory>radial</trajectory>"), "radial"),
        (("<trajectory>cartesian</trajectory>", "<trajectory>spiral</trajectory>"), "spiral"),
        (("<z>1</z>", "<z>8</z>"), "3-D"),
        (("</trajectory>", "</trajectory>" + "MULTIBAND"), "multi-band"),
        (("<encoding>", "<encoding><bogus/>"), "not a valid ISMRMRD"),
    ],
)
def test_ismrmrd_refuses_what_it_cannot_reconstruct(edit, words):
    k = np.ones((1, 2, 8, 8), np.complex64)
    data = _ismrmrd_bytes(k)
    old, new = edit
    new = new.replace(
        "MULTIBAND",
        "<parallelImaging><accelerationFactor><kspace_encoding_step_1>1</kspace_encoding_step_1>"
        "<kspace_encoding_step_2>1</kspace_encoding_step_2></accelerationFactor>"
        "<multiband><spacing><dZ>10</dZ></spacing><deltaKz>0.1</deltaKz>"
        "<multiband_factor>2</multiband_factor><calibration>separable2D</calibration>"
        "<calibration_encoding>0</calibration_encoding></multiband></parallelImaging>",
    )
    data = _rewrite_xml(data, old, new)
    with pytest.raises(InputError) as e:
        load(data, "scan.h5")
    assert words in str(e.value) and "\n" not in str(e.value)


def test_hostile_ismrmrd_files():
    k = np.ones((1, 2, 8, 8), np.complex64)
    data = _ismrmrd_bytes(k)
    with pytest.raises(InputError):
        load(data[: len(data) // 2], "cut.mrd")
    buf = io.BytesIO(data)
    with h5py.File(buf, "r+") as f:
        rows = f["dataset/data"][()]
        rows["head"]["idx"]["kspace_encode_step_1"][3] = 500  # outside the encoded matrix
        f["dataset/data"][...] = rows
    with pytest.raises(InputError, match="does not fit"):
        load(buf.getvalue(), "bad.mrd")


# ------------------------------------------------------------------------------------------
# Siemens twix
# ------------------------------------------------------------------------------------------


def _twix_bytes(tmp_path, k, **kw) -> bytes:
    p = tmp_path / f"meas_{len(list(tmp_path.iterdir()))}.dat"
    mri_twix.write_twix(str(p), k, **kw)
    return p.read_bytes()


def test_twix_round_trip_matches_ismrmrd(tmp_path, fastmri_case):
    """The same k-space as twix (oversampled readout, reflected lines, noise scans) and as
    ISMRMRD gives the same problem."""
    k = fastmri_case["kspace"]
    data = _twix_bytes(tmp_path, k, base_resolution=N, noise_lines=2, reflect_odd=True)
    r = mri_twix.read_twix(data, "meas.dat")
    assert r["kspace"].shape == (1, 8, N, W)
    assert np.allclose(r["kspace"], mri_ismrmrd.remove_readout_oversampling(k, N), atol=1e-6)
    pt = load(data, "meas.dat", seed=3)
    pi = load(_ismrmrd_bytes(k, recon_size=(N, N)), "same.h5", seed=3)
    assert pt.meta["format"] == "Siemens twix"
    assert np.allclose(pt.reference, center_crop(pi.reference, pt.reference.shape[-2:]), atol=1e-5)


@pytest.mark.parametrize(
    "kw, words",
    [({"trajectory": 2}, "radial"), ({"trajectory": 4}, "spiral"), ({"multiband": 3}, "multi-band"),
     ({"dimension": 4}, "3-D")],
)  # fmt: skip
def test_twix_refuses_what_it_cannot_reconstruct(tmp_path, kw, words):
    data = _twix_bytes(tmp_path, np.ones((1, 2, 16, 8), np.complex64), **kw)
    with pytest.raises(InputError) as e:
        load(data, "meas.dat")
    assert words in str(e.value) and "\n" not in str(e.value)


def test_hostile_twix_files(tmp_path):
    data = _twix_bytes(tmp_path, np.ones((1, 2, 16, 8), np.complex64))
    start = 10240 + int(np.frombuffer(data[10240:10244], "<u4")[0])  # after the protocol
    cut = data[: start + 8 * (192 + 2 * (32 + 8 * 16)) - 100]  # inside the last line's samples
    for bad in (data[:5000], data[:12000], cut, b"\x00" * 20000, b"hello" * 10):
        with pytest.raises(InputError):
            load(bad, "meas.dat")


def test_twix_protocol_buffer_declared_past_its_header_is_refused_before_allocating(tmp_path):
    """One flipped byte -- the NUL that ends a protocol buffer's name -- shifts the length field
    onto text: twixtools allocated the 1.4 GB it then declares for a 43 KB file."""
    import tracemalloc

    data = bytearray(_twix_bytes(tmp_path, np.ones((1, 2, 16, 8), np.complex64)))
    nul = data.index(b"\0", 10240 + 8)  # the first buffer name's terminator
    data[nul] = ord("x")
    tracemalloc.start()
    try:
        with pytest.raises(InputError, match="runs past the header"):
            load(bytes(data), "meas.dat")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 200 * 2**20


# ------------------------------------------------------------------------------------------
# DICOM
# ------------------------------------------------------------------------------------------


def _zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for n, b in files.items():
            zf.writestr(f"series/{n}", b)
    return buf.getvalue()


def test_dicom_series_round_trip_in_slice_order():
    rng = np.random.default_rng(2)
    vol = rng.uniform(0, 3.0, size=(5, 24, 20))
    files = mri_dicom.series_bytes(vol)
    shuffled = dict(reversed(list(files.items())))  # file order must not matter
    back = mri_dicom.read_series(shuffled)
    assert np.abs(back - vol).max() <= vol.max() / 1000  # 16-bit quantisation
    single = mri_dicom.read_series({"one.dcm": files["IM0003.dcm"]})
    assert np.allclose(single[0], back[2])


def test_dicom_series_is_simulation_input_like_nifti():
    """A DICOM series and the NIfTI of the same volume give the same simulated problem."""
    from workbench.datasets.mri import mni_slices
    from workbench.io.mri_nifti import nifti_bytes

    vol = mni_slices(N)["test"][:4].astype(np.float64)  # (Z, H, W), row 0 at the top
    files = mri_dicom.series_bytes(vol, scale=60000.0)
    pd = load(_zip(files), "series.zip", size=N)
    pn = load(nifti_bytes(vol), "same.nii", size=N)
    assert pd.kspace.shape == pn.kspace.shape
    assert np.allclose(pd.reference, pn.reference, atol=2e-3 * pn.reference.max())


def test_dicom_refusals():
    vol = np.ones((2, 8, 8))
    phase = mri_dicom.series_bytes(vol, image_type=("ORIGINAL", "PRIMARY", "P", "ND"))
    with pytest.raises(InputError, match="phase"):
        load(phase["IM0001.dcm"], "phase.dcm")
    a = mri_dicom.series_bytes(vol)
    b = mri_dicom.series_bytes(vol)
    two = {"a1.dcm": a["IM0001.dcm"], "b1.dcm": b["IM0001.dcm"]}
    with pytest.raises(InputError, match="2 DICOM series"):
        load(_zip(two), "two.zip")
    with pytest.raises(InputError, match="not a DICOM"):
        load(b"\x00" * 300, "x.dcm")
    with pytest.raises(InputError):
        load(a["IM0001.dcm"][:400], "cut.dcm")


def test_kspace_too_large_for_single_precision_is_refused():
    """Finite float32 k-space of magnitude ~1e30 (a damaged or mis-scaled file) would square to
    inf in the coil-combined reference: refused in one line instead."""
    rng = np.random.default_rng(3)
    k = (rng.standard_normal((1, 4, 16, 12)) + 1j * rng.standard_normal((1, 4, 16, 12))) * 1e30
    buf = io.BytesIO()
    write_fastmri(buf, k.astype(np.complex64))
    with pytest.raises(InputError, match="overflow single precision"):
        load(buf.getvalue(), "huge.h5")
    buf = io.BytesIO()
    write_fastmri(buf, (k * 1e-30).astype(np.complex64))
    assert np.isfinite(load(buf.getvalue(), "fine.h5").reference).all()


@pytest.mark.parametrize(
    ("at", "new", "words"),
    [
        (4, b"D%", "NotImplementedError: Unknown Value Representation"),  # the VR of (0028,1053)
        (8, b"0\xf3", "ValueError: could not convert string to float"),  # its value
    ],
)
def test_dicom_element_malformed_past_the_preamble_is_refused_in_one_line(at, new, words):
    """pydicom converts an element on first access: a bad VR or value in RescaleSlope raised
    from deep inside the reader; now one line naming the file."""
    files = mri_dicom.series_bytes(np.ones((2, 8, 8)))
    raw = bytearray(files["IM0001.dcm"])
    i = raw.find(b"\x28\x00\x53\x10")  # tag (0028,1053) RescaleSlope, explicit VR little endian
    raw[i + at : i + at + 2] = new
    with pytest.raises(InputError, match=f"^IM0001.dcm: malformed DICOM element \\({words}"):
        load(bytes(raw), "IM0001.dcm")


def test_zip_with_a_central_directory_offset_past_the_start_is_refused_in_one_line():
    """An end-of-central-directory offset that makes zipfile seek before the start raised a bare
    ValueError (negative seek value)."""
    import struct

    raw = bytearray(_zip(mri_dicom.series_bytes(np.ones((2, 8, 8)))))
    e = raw.rfind(b"PK\x05\x06")  # end of central directory; the directory's offset at +16
    raw[e + 16 : e + 20] = struct.pack("<I", 0xFFFFFF00)
    with pytest.raises(InputError, match=r"^s\.zip: member .* is corrupt \(negative seek"):
        load(bytes(raw), "s.zip")


def test_kspace_made_non_finite_by_the_oversampling_removal_is_refused(tmp_path):
    """Finite samples near float32's maximum overflow in the readout-oversampling FFT of the
    twix reader, to inf and NaN: the NaN passed the magnitude check and loaded."""
    rng = np.random.default_rng(0)
    k = (rng.uniform(-1, 1, (1, 2, 16, 8)) + 1j * rng.uniform(-1, 1, (1, 2, 16, 8))) * 1e38
    with pytest.raises(InputError, match="NaN or infinite"):
        load(_twix_bytes(tmp_path, k.astype(np.complex64), base_resolution=8), "meas.dat")


def test_ismrmrd_whose_data_is_a_committed_type_not_an_array_is_refused():
    """A damaged (or hand-made) file can link 'data' to a named datatype: it has a dtype with
    'head' and 'data' fields but no shape, and raised AttributeError."""
    k = np.ones((1, 2, 16, 8), np.complex64)
    buf = io.BytesIO(_ismrmrd_bytes(k))
    with h5py.File(buf, "a") as f:
        del f["dataset"]["data"]
        f["dataset"]["data"] = np.dtype([("head", "<i4"), ("data", "<f4")])
    with pytest.raises(InputError, match="'data' is not an array"):
        load(buf.getvalue(), "t.h5")


def test_fastmri_whose_kspace_is_a_group_is_refused():
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f.create_group("kspace")
    with pytest.raises(InputError, match="/kspace is not an array"):
        load(buf.getvalue(), "g.h5")
