"""Readers/writers round trip (E9) and validation of bad input."""

import io

import h5py
import numpy as np
import pytest

from workbench.datasets.eels import DOMAIN, load
from workbench.errors import InputError
from workbench.io import eels as E


@pytest.fixture
def cube():
    rng = np.random.default_rng(0)
    data = rng.poisson(50, (5, 7, 40)).astype(np.float32)
    energy = 690.0 + 0.25 * np.arange(40)
    return data, energy


def test_npz_round_trip(cube):
    data, energy = cube
    buf = io.BytesIO()
    E.write_npz(buf, data, energy, truth=np.eye(5, 7, dtype=bool))
    d = E.read_any(buf.getvalue(), "x.npz")
    np.testing.assert_array_equal(d.data, data)
    np.testing.assert_array_equal(d.energy, energy)
    assert d.truth.shape == (5, 7)


def test_npy_needs_calibration_and_axis_order(cube):
    data, energy = cube
    buf = io.BytesIO()
    np.save(buf, np.transpose(data, (2, 0, 1)))  # (E, y, x)
    with pytest.raises(InputError, match="energy"):
        E.read_any(buf.getvalue(), "x.npy")
    d = E.read_any(buf.getvalue(), "x.npy", axis_order="Eyx", offset=690.0, dispersion=0.25)
    np.testing.assert_array_equal(d.data, data)
    np.testing.assert_allclose(d.energy, energy)


def test_hspy_round_trip_layout(cube, tmp_path):
    data, energy = cube
    p = tmp_path / "si.hspy"
    E.write_hspy(
        p,
        data,
        energy,
        title="SI",
        metadata={"Acquisition_instrument": {"TEM": {"beam_energy": 200.0}}},
    )
    with h5py.File(p) as f:
        assert f.attrs["file_format"] == "HyperSpy"
        g = f["Experiments/SI"]
        assert g["axis-2"].attrs["navigate"] == False  # noqa: E712
        assert g["axis-0"].attrs["navigate"] == True  # noqa: E712
        assert g["metadata/Signal"].attrs["signal_type"] == "EELS"
    d = E.read_any(p.read_bytes(), "si.hspy")
    np.testing.assert_array_equal(d.data, data)
    np.testing.assert_allclose(d.energy, energy)
    assert d.meta["metadata"]["Acquisition_instrument"]["TEM"]["beam_energy"] == 200.0


def test_hspy_energy_axis_first_and_nonuniform(tmp_path):
    # HyperSpy files may store the signal axis anywhere and a non-uniform 'axis' array
    data = np.arange(3 * 4 * 10, dtype=np.float32).reshape(10, 3, 4)
    e = np.cumsum(np.linspace(0.2, 0.3, 10)) + 700
    p = tmp_path / "odd.hspy"
    with h5py.File(p, "w") as f:
        f.attrs["file_format"] = "HyperSpy"
        g = f.create_group("Experiments/odd")
        g["data"] = data
        for i, (nav, size) in enumerate([(False, 10), (True, 3), (True, 4)]):
            a = g.create_group(f"axis-{i}")
            a.attrs.update(
                {
                    "name": "n",
                    "units": "eV" if not nav else "nm",
                    "scale": 1.0,
                    "offset": 0.0,
                    "size": size,
                    "navigate": nav,
                }
            )
            if not nav:
                a["axis"] = e
    d = E.read_any(p.read_bytes(), "odd.hspy")
    assert d.data.shape == (3, 4, 10)
    np.testing.assert_allclose(d.energy, e)
    np.testing.assert_array_equal(d.data[1, 2], data[:, 1, 2])


def test_score_map_written_as_image(tmp_path):
    p = tmp_path / "score.hspy"
    E.write_hspy(p, np.ones((4, 5)), None, title="score", signal_type="")
    with h5py.File(p) as f:
        assert f["Experiments/score/axis-0"].attrs["navigate"] == False  # noqa: E712


@pytest.mark.parametrize("xy", [False, True])
def test_msa_round_trip(xy, tmp_path):
    e = 700.0 + 0.3 * np.arange(50)
    if xy:
        e = e + np.linspace(0, 0.5, 50) ** 2
    y = np.random.default_rng(1).poisson(100, 50).astype(float)
    p = tmp_path / "s.msa"
    E.write_msa(p, y, e, title="ROI mean")
    d = E.read_any(p.read_bytes(), "s.msa")
    assert d.data.shape == (1, 1, 50)
    np.testing.assert_allclose(d.data[0, 0], y, rtol=1e-6)
    np.testing.assert_allclose(d.energy, e, rtol=1e-9, atol=1e-6)
    assert d.meta["msa"]["SIGNALTYPE"] == "EELS"


def test_msa_kev_and_multi_column_lines():
    text = "\n".join(
        [
            "#FORMAT : EMSA/MAS Spectral Data File",
            "#VERSION : 1.0",
            "#NPOINTS : 10",
            "#NCOLUMNS : 5",
            "#XUNITS : keV",
            "#XPERCHAN : 0.0005",
            "#OFFSET : 0.7",
            "#DATATYPE : Y",
            "#SPECTRUM :",
            "1, 2, 3, 4, 5,",
            "6 7 8 9 10",
            "#ENDOFDATA :",
        ]
    )
    d = E.read_msa(text.encode())
    np.testing.assert_allclose(d.energy, 700.0 + 0.5 * np.arange(10))
    np.testing.assert_array_equal(d.data[0, 0], np.arange(1, 11))


def _npz(**arrays):
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


@pytest.mark.parametrize(
    "arrays, match",
    [
        ({"data": np.ones((2, 2, 2, 20)), "energy": np.arange(20.0)}, "dimensions"),
        ({"data": np.ones((2, 2, 20))}, "energy"),
        (
            {"data": np.ones((2, 2, 20)), "energy": np.r_[np.arange(10.0), np.arange(10.0)]},
            "increasing",
        ),
        ({"data": np.ones((2, 2, 20)), "energy": np.arange(19.0)}, "channels"),
        ({"data": np.full((2, 2, 20), np.nan), "energy": np.arange(20.0)}, "NaN"),
        ({"energy": np.arange(20.0)}, "data"),
    ],
)
def test_bad_files_raise_input_error(arrays, match):
    with pytest.raises(InputError, match=match):
        load(_npz(**arrays), "bad.npz")


def test_too_large_and_garbage(monkeypatch):
    monkeypatch.setenv("WORKBENCH_EELS_MAX_MB", "0.001")
    with pytest.raises(InputError, match="limit"):
        load(_npz(data=np.ones((8, 8, 40)), energy=np.arange(40.0)), "big.npz")
    monkeypatch.delenv("WORKBENCH_EELS_MAX_MB")
    for name in ("x.npz", "x.hspy", "x.msa"):
        with pytest.raises(InputError):
            load(b"not a file at all", name)
    with pytest.raises(InputError, match="unsupported"):
        load(b"abc", "x.tif")


def test_malformed_dm_is_a_clear_error_with_or_without_rosettasciio(monkeypatch):
    # the built-in reader refuses a malformed file itself; RosettaSciIO is never asked for it
    for available in (False, True):
        monkeypatch.setattr(E, "_rsciio_available", lambda a=available: a)
        with pytest.raises(InputError, match="not a DigitalMicrograph file") as e:
            load(b"\x00" * 100, "x.dm4")
        assert "\n" not in str(e.value)


def test_load_with_options_crops_and_bins(cube):
    data, energy = cube
    p = load(_npz(data=data, energy=energy), "x.npz", e_min=692.0, e_max=697.0, bin=2)
    assert p.data.shape == (2, 3, 21)
    assert p.energy[0] >= 692.0 and p.energy[-1] <= 697.0
    np.testing.assert_allclose(p.data[0, 0], data[:2, :2, 8:29].sum((0, 1)))


def test_domain_sample_round_trip_through_hspy(tmp_path):
    p = DOMAIN.sample("small_2eV_5pct")
    f = tmp_path / "s.hspy"
    E.write_hspy(f, p.data, p.energy, extra={"truth": p.truth.astype(np.uint8)})
    q = load(f.read_bytes(), "s.hspy")
    np.testing.assert_array_equal(q.data, p.data)
    np.testing.assert_array_equal(q.truth, p.truth)
    assert q.id == load(f.read_bytes(), "s.hspy").id


# ------------------------------------------------------------------------------------------
# files other projects write: RosettaSciIO's return structure, old and multi-signal .hspy,
# images, CL maps, single spectra, off-window data (issue 18). No third-party file is in git:
# each fixture is built here.
# ------------------------------------------------------------------------------------------


def _ax(name, size, offset, scale, units, navigate=None):
    a = {"name": name, "size": size, "offset": offset, "scale": scale, "units": units}
    if navigate is not None:
        a["navigate"] = navigate
    return a


def _dm_si(navigate=False, post=True, units="eV", offset=300.0, scale=1.0, signal_type="EELS"):
    """RosettaSciIO's dict for a Gatan spectrum image: data (E, y, x), the energy axis first,
    record_by 'image' and a to_signal1D post-processing step (as its DM reader returns)."""
    rng = np.random.default_rng(3)
    data = rng.poisson(100, (2048, 2, 2)).astype(np.float32)
    nav = (lambda v: v) if navigate else (lambda v: None)
    axes = [
        _ax("Energy loss", 2048, offset, scale, units, nav(True)),
        _ax("y", 2, 0.0, 0.5, "nm", nav(False)),
        _ax("x", 2, 0.0, 0.5, "nm", nav(False)),
    ]
    return {
        "data": data,
        "axes": axes,
        "metadata": {
            "General": {"title": "EELS Spectrum Image"},
            "Signal": {"signal_type": signal_type, "record_by": "image"},
        },
        "original_metadata": {},
        "post_process": (
            [lambda s: s.to_signal1D(optimize=True), lambda s: s.squeeze()]
            if post
            else [lambda s: s.squeeze()]
        ),
        "mapping": {},
    }


def _dm(monkeypatch, items):
    # the seam both DM readers feed (the built-in one, RosettaSciIO for unsupported content)
    monkeypatch.setattr(E, "_dm_items", lambda raw, filename: items)


@pytest.mark.parametrize("navigate", [False, True])
def test_gatan_spectrum_image_energy_first_with_post_process(monkeypatch, navigate):
    it = _dm_si(navigate=navigate)
    _dm(monkeypatch, [it])
    p = load(b"DM", "si.dm4")
    assert p.data.shape == (2, 2, 2048)
    np.testing.assert_allclose(p.energy, 300.0 + np.arange(2048))
    for y in range(2):
        for x in range(2):
            np.testing.assert_array_equal(p.data[y, x], it["data"][:, y, x])


def test_gatan_without_to_signal1d_is_two_signal_axes(monkeypatch):
    _dm(monkeypatch, [_dm_si(navigate=True, post=False)])
    with pytest.raises(InputError, match="2 signal axes"):
        load(b"DM", "eftem.dm4")


def test_kev_axis_converted(monkeypatch):
    _dm(monkeypatch, [_dm_si(units="keV", offset=0.3, scale=0.001)])
    p = load(b"DM", "si.dm3")
    np.testing.assert_allclose(p.energy, 300.0 + np.arange(2048), atol=1e-9)
    assert any("keV" in n for n in p.meta["notices"])


def _dm_single(kind):
    rng = np.random.default_rng(4)
    if kind == "spectrum":
        return {
            "data": rng.poisson(50, 1024).astype(np.float32),
            "axes": [_ax("Energy loss", 1024, 400.0, 0.5, "eV")],
            "metadata": {"Signal": {"signal_type": "EELS", "record_by": "spectrum"}},
            "post_process": [lambda s: s.squeeze()],
        }
    if kind == "stem_image":
        return {
            "data": rng.random((68, 68)).astype(np.float32),
            "axes": [_ax("y", 68, 0.0, 0.2, "nm"), _ax("x", 68, 0.0, 0.2, "nm")],
            "metadata": {"Signal": {"signal_type": "", "record_by": "image"}},
            "post_process": [lambda s: s.squeeze()],
        }
    if kind == "cl_map":  # a CL spectrum image: wavelength in nm, signal type CL
        it = _dm_si(units="nm", offset=300.0, scale=0.5, signal_type="CL")
        it["axes"][0]["name"] = "Wavelength"
        return it
    if kind == "wavelength_untyped":
        it = _dm_si(units="nm", offset=300.0, scale=0.5, signal_type="")
        it["axes"][0]["name"] = "Wavelength"
        return it
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind, match",
    [
        ("spectrum", "single spectrum"),
        ("stem_image", "2 signal axes"),
        ("cl_map", "signal type 'CL'"),
        ("wavelength_untyped", "no energy axis"),
    ],
)
def test_gatan_non_spectrum_images_refused(monkeypatch, kind, match):
    _dm(monkeypatch, [_dm_single(kind)])
    with pytest.raises(InputError, match=match) as e:
        load(b"DM", "f.dm3")
    assert "\n" not in str(e.value)


def test_wavelength_signal_axis_named_in_refusal():
    # a HyperSpy map whose signal axis is a wavelength: refused for its units
    axes = [_ax("y", 3, 0, 1, "nm", True), _ax("x", 3, 0, 1, "nm", True)]
    axes.append(_ax("Wavelength", 20, 400, 1, "nm", False))
    with pytest.raises(InputError, match="wavelength or length"):
        E.to_spectrum_image(np.ones((3, 3, 20)), axes, filename="cl.hspy")


def test_post_process_detection():
    assert E._post_to_signal1d([lambda s: s.to_signal1D(optimize=True)])
    assert not E._post_to_signal1d([lambda s: s.squeeze()])
    assert not E._post_to_signal1d(None)


def test_multi_signal_gatan_choice(monkeypatch):
    survey = _dm_single("stem_image")
    survey["metadata"]["General"] = {"title": "HAADF"}
    si = _dm_si()
    _dm(monkeypatch, [survey, si])
    p = load(b"DM", "two.dm4")  # the only EELS spectrum image is read, and the user is told
    assert p.data.shape == (2, 2, 2048)
    assert any("2 signals" in n for n in p.meta["notices"])
    assert [i.usable for i in E.list_signals(b"DM", "two.dm4")] == [False, True]
    with pytest.raises(InputError, match="2 signal axes"):
        load(b"DM", "two.dm4", signal="0")
    np.testing.assert_array_equal(load(b"DM", "two.dm4", signal="EELS Spectrum Image").data, p.data)
    _dm(monkeypatch, [_dm_si(), _dm_si(offset=500.0)])
    with pytest.raises(InputError, match="choose one with signal="):
        load(b"DM", "ambiguous.dm4")
    q = load(b"DM", "ambiguous.dm4", signal="1")
    assert q.energy[0] == 500.0
    with pytest.raises(InputError, match="no signal 'nope'"):
        load(b"DM", "ambiguous.dm4", signal="nope")


def _hspy_multi(path, *signals):
    """Write several signals into one HyperSpy file (title -> (data, axes, md))."""
    with h5py.File(path, "w") as f:
        f.attrs["file_format"] = "HyperSpy"
        for title, data, axes, md in signals:
            g = f.create_group(f"Experiments/{title}")
            g["data"] = data
            for i, a in enumerate(axes):
                ga = g.create_group(f"axis-{i}")
                ga.attrs.update({k: v for k, v in a.items() if v is not None})
            m = g.create_group(md.pop("_group", "metadata"))
            for k, v in md.items():
                if isinstance(v, dict):
                    m.create_group(k).attrs.update(v)
                else:
                    m.attrs[k] = v


def test_old_hspy_with_record_by(tmp_path):
    # HyperSpy < 1.0 files: no navigate flags; mapped_parameters.record_by says which is signal
    data = np.random.default_rng(5).poisson(40, (4, 5, 30)).astype(np.float32)
    axes = [_ax("y", 4, 0, 1, "nm"), _ax("x", 5, 0, 1, "nm"), _ax("E", 30, 690, 0.5, "eV")]
    p = tmp_path / "old.hspy"
    md = {"_group": "mapped_parameters", "record_by": "spectrum", "signal_type": "EELS"}
    _hspy_multi(p, ("old", data, axes, md))
    d = load(p.read_bytes(), "old.hspy")
    np.testing.assert_array_equal(d.data, data)
    np.testing.assert_allclose(d.energy, 690 + 0.5 * np.arange(30))


def test_multi_signal_hspy(tmp_path):
    rng = np.random.default_rng(6)
    si = rng.poisson(40, (4, 5, 30)).astype(np.float32)
    si_axes = [
        _ax("y", 4, 0, 1, "nm", True),
        _ax("x", 5, 0, 1, "nm", True),
        _ax("Energy loss", 30, 690, 0.5, "eV", False),
    ]
    img_axes = [_ax("y", 8, 0, 1, "nm", False), _ax("x", 8, 0, 1, "nm", False)]
    eels = {"Signal": {"signal_type": "EELS"}}
    p = tmp_path / "multi.hspy"
    _hspy_multi(p, ("HAADF", rng.random((8, 8)), img_axes, {}), ("SI", si, si_axes, eels))
    raw = p.read_bytes()
    d = load(raw, "multi.hspy")
    np.testing.assert_array_equal(d.data, si)
    assert any("'SI'" in n for n in d.meta["notices"])
    infos = E.list_signals(raw, "multi.hspy")
    assert [i.usable for i in infos] == [False, True]
    assert [i.title for i in infos] == ["HAADF", "SI"]
    with pytest.raises(InputError, match="signal axes"):
        load(raw, "multi.hspy", signal="HAADF")


def test_hspy_image_and_uncalibrated_refused(tmp_path):
    p = tmp_path / "image.hspy"
    E.write_hspy(p, np.random.default_rng(7).random((512, 512)), None, title="img")
    with pytest.raises(InputError, match="2 signal axes"):
        load(p.read_bytes(), "image.hspy")
    axes = [_ax("y", 3, 0, 1, "nm", True), _ax("x", 3, 0, 1, "nm", True)]
    axes.append(_ax("channel", 20, 0, 1, "<undefined>", False))  # HyperSpy: no units
    q = tmp_path / "raw.hspy"
    _hspy_multi(q, ("raw", np.ones((3, 3, 20)), axes, {}))
    with pytest.raises(InputError, match="no energy axis"):
        load(q.read_bytes(), "raw.hspy")
    # the same file typed EELS: the one signal axis is taken for eV, and the user is told
    r = tmp_path / "typed.hspy"
    _hspy_multi(r, ("typed", np.ones((3, 3, 20)), axes, {"Signal": {"signal_type": "EELS"}}))
    t = load(r.read_bytes(), "typed.hspy")
    assert t.data.shape == (3, 3, 20) and any("assumed eV" in n for n in t.meta["notices"])


@pytest.mark.parametrize("kind", ["msa", "hspy"])
def test_single_spectra_refused_at_load(tmp_path, kind):
    y = np.random.default_rng(8).poisson(100, 200).astype(float)
    e = 650 + 0.5 * np.arange(200)
    p = tmp_path / f"s.{kind}"
    (E.write_msa if kind == "msa" else E.write_hspy)(p, y, e)
    with pytest.raises(InputError, match="single spectrum"):
        load(p.read_bytes(), p.name)


def test_msa_wavelength_and_other_spectroscopies_refused():
    base = "#FORMAT : EMSA/MAS Spectral Data File\n#NPOINTS : 8\n#XPERCHAN : 1\n#OFFSET : 400\n"
    body = "#SPECTRUM :\n1 2 3 4 5 6 7 8\n#ENDOFDATA :\n"
    with pytest.raises(InputError, match="wavelength or length"):
        E.read_msa((base + "#XUNITS : nm\n" + body).encode(), "cl.msa")
    with pytest.raises(InputError, match="not EELS"):
        E.read_msa((base + "#SIGNALTYPE : EDS\n#XUNITS : keV\n" + body).encode(), "x.msa")
    d = E.read_msa((base + "#SIGNALTYPE : ELS\n#XUNITS : eV\n" + body).encode(), "e.msa")
    assert d.data.shape == (1, 1, 8)
    # ISO 22029 files name the quantity with the unit in parentheses
    d = E.read_msa((base + "#XUNITS : Energy Loss (keV)\n" + body).encode(), "iso.msa")
    np.testing.assert_allclose(d.energy, 400e3 + 1e3 * np.arange(8))


def _low_loss_line_scan(tmp_path):
    """A low-loss line scan: -100 eV, 0.5 eV/channel, 17 x 1024 (no Fe-L edge in range)."""
    rng = np.random.default_rng(9)
    e = -100.0 + 0.5 * np.arange(1024)
    zlp = 1e4 * np.exp(-0.5 * (e / 1.5) ** 2) + 200 * np.exp(-0.5 * ((e - 22) / 6) ** 2) + 5
    data = rng.poisson(np.broadcast_to(zlp, (17, 1024))).astype(np.float32)
    p = tmp_path / "lowloss.hspy"
    E.write_hspy(p, data, e, title="low loss")
    return p


def test_windows_outside_the_data_refused_before_the_run(tmp_path):
    from workbench import registry
    from workbench.datasets.eels import check, suggest_windows

    p = load(_low_loss_line_scan(tmp_path).read_bytes(), "lowloss.hspy")
    assert p.data.shape == (1, 17, 1024)
    for name in ("pca_t2", "pca_recon", "cvae3d"):
        spec = registry.get_solver("eels", name)
        with pytest.raises(InputError, match=r"-100\.0-411\.5 eV") as e:
            check(p, spec, spec.params())
        assert "\n" not in str(e.value) and "--param" in str(e.value)
        # the windows offered (page, message) lie inside the data and pass the check
        sug = suggest_windows(p.energy, spec.Params)
        assert sug and all(-100.0 <= v <= 411.5 for v in sug.values())
        check(p, spec, spec.params(sug))
    # the defaults fit a core-loss cube: nothing suggested
    spec = registry.get_solver("eels", "cvae3d")
    assert suggest_windows(650 + 0.25 * np.arange(400), spec.Params) == {}


def _cli(capsys, *args):
    from workbench.cli import main

    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def _stored():
    from workbench.store import RunStore

    return RunStore().list()


def test_cli_refusals_exit_2_one_line_nothing_stored(tmp_path, capsys, monkeypatch):
    ll = _low_loss_line_scan(tmp_path)
    msa = tmp_path / "one.msa"
    E.write_msa(msa, np.ones(100), 650 + np.arange(100.0))
    img = tmp_path / "img.hspy"
    E.write_hspy(img, np.ones((68, 68)), None)
    for f in (ll, msa, img):
        code, out, err = _cli(capsys, "solve", "eels", "--solver", "pca_t2", "--input", str(f))
        assert code == 2, err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    _dm(monkeypatch, [_dm_single("cl_map")])
    dm = tmp_path / "cl.dm4"
    dm.write_bytes(b"DM")
    code, _, err = _cli(capsys, "solve", "eels", "--solver", "pca_t2", "--input", str(dm))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert _stored() == []


def test_cli_gatan_si_runs_with_notices(tmp_path, capsys, monkeypatch):
    import json

    survey = _dm_single("stem_image")
    _dm(monkeypatch, [survey, _dm_si()])
    dm = tmp_path / "si.dm4"
    dm.write_bytes(b"DM")
    args = ["solve", "eels", "--solver", "pca_t2", "--input", str(dm), "--json", "--no-figure"]
    # 4 pixels: k = 3 components would reproduce every pixel (all scores tie), so refused
    code, out, err = _cli(capsys, *args, "--param", "k=3")
    assert code == 2 and "k = 3 components need at least 5 pixels" in err
    code, out, err = _cli(capsys, *args, "--param", "k=2", "--out", str(tmp_path / "o"))
    assert code == 0, err
    summary = json.loads(out)
    assert summary["status"] != "failed"
    assert any("2 signals" in n for n in summary["notices"])
    code, out, err = _cli(capsys, *args, "--param", "k=2", "--param", "signal=0")
    assert code == 2 and "signal axes" in err
    assert len(_stored()) == 1
