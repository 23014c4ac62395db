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


def test_dm_without_rosettasciio_is_a_clear_error():
    try:
        import rsciio  # noqa: F401

        pytest.skip("rosettasciio installed")
    except ImportError:
        pass
    with pytest.raises(InputError, match="rosettasciio"):
        load(b"\x00" * 100, "x.dm4")


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
