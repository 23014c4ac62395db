"""Every malformed .msa/.hspy/.h5/.npz case is refused with a one-line InputError; data that are
no longer counts are detected and the count-based scores refuse them."""

import io

import h5py
import numpy as np
import pytest

from workbench.datasets.eels import DOMAIN, load, synthetic
from workbench.errors import InputError
from workbench.io import eels as E
from workbench.physics.eels import spectra as SP


def _msa(**over):
    h = {
        "FORMAT": "EMSA/MAS Spectral Data File",
        "VERSION": "1.0",
        "NPOINTS": "10",
        "NCOLUMNS": "1",
        "XUNITS": "eV",
        "YUNITS": "counts",
        "DATATYPE": "Y",
        "XPERCHAN": "0.5",
        "OFFSET": "700",
    }
    h.update(over)
    lines = [f"#{k:<12}: {v}" for k, v in h.items()] + ["#SPECTRUM    :"]
    return "\n".join(lines + [str(i) for i in range(1, 11)] + ["#ENDOFDATA   :"]).encode()


def _h5(build):
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        build(f)
    return buf.getvalue()


def _hspy(energy_attrs=None, truth=None):
    def build(f):
        f.attrs["file_format"] = "HyperSpy"
        f.attrs["file_format_version"] = "3.1"
        g = f.create_group("Experiments/si")
        g.create_dataset("data", data=np.ones((3, 4, 20), np.float32))
        spec = [("y", 3, 0.0, 1.0, "nm"), ("x", 4, 0.0, 1.0, "nm"), ("E", 20, 700.0, 0.5, "eV")]
        for i, (name, size, off, scale, units) in enumerate(spec):
            a = g.create_group(f"axis-{i}")
            d = dict(name=name, size=size, offset=off, scale=scale, units=units, navigate=i < 2)
            if i == 2 and energy_attrs:
                d.update(energy_attrs)
            for k, v in d.items():
                a.attrs[k] = v
        g.create_group("metadata/Signal").attrs["signal_type"] = "EELS"
        if truth is not None:
            g.create_dataset("truth", data=truth)

    return _h5(build)


def _npz(**arrays):
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _refused(fn, match):
    with pytest.raises(InputError, match=match) as e:
        fn()
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    "over, match",
    [
        ({"XPERCHAN": ""}, "#XPERCHAN is empty"),
        ({"OFFSET": ""}, "#OFFSET is empty"),
        ({"OFFSET": "abc"}, "#OFFSET is 'abc', not a number"),
        ({"NPOINTS": ""}, "#NPOINTS is empty"),
        ({"NCOLUMNS": "two"}, "#NCOLUMNS is 'two'"),
        ({"NPOINTS": "50"}, "says 50 points"),
        ({"XUNITS": "nm"}, "wavelength or length"),
    ],
)
def test_malformed_msa_refused(over, match):
    _refused(lambda: E.read_msa(_msa(**over), "s.msa"), match)


def test_wellformed_msa_still_reads():
    d = E.read_msa(_msa(), "s.msa")
    np.testing.assert_allclose(d.energy, 700.0 + 0.5 * np.arange(10))


@pytest.mark.parametrize("key", ["scale", "offset", "navigate", "units", "size"])
def test_hspy_array_valued_axis_scalars_refused(key):
    val = {
        "scale": np.array([0.5, 0.5]),
        "offset": np.array([700.0, 701.0]),
        "navigate": np.array([False, True]),
        "units": np.array([b"eV", b"nm"]),
        "size": np.array([20, 20]),
    }[key]
    _refused(lambda: load(_hspy({key: val}), "x.hspy"), f"'{key}' holds 2 values")


def test_hspy_one_element_array_scalars_accepted_and_text_numbers_checked():
    d = load(_hspy({"scale": np.array([0.5]), "offset": np.array([700.0])}), "x.hspy")
    np.testing.assert_allclose(d.energy, 700.0 + 0.5 * np.arange(20))
    _refused(lambda: load(_hspy({"scale": "half"}), "x.hspy"), "'scale' is 'half', not a number")


def test_non_ev_units_refused():
    _refused(lambda: load(_hspy({"units": "nm"}), "x.hspy"), "wavelength or length")


def test_truth_of_the_wrong_shape_is_reported():
    bad = np.ones((5, 5), bool)
    _refused(lambda: load(_hspy(truth=bad[:2, :2]), "x.hspy"), r"truth mask has shape \(2, 2\)")
    npz = _npz(data=np.ones((3, 4, 20)), energy=700 + 0.5 * np.arange(20), truth=bad)
    _refused(lambda: load(npz, "x.npz"), r"truth mask has shape \(5, 5\)")

    def plain(f):
        f.create_dataset("data", data=np.ones((3, 4, 20)))
        f.create_dataset("energy", data=700 + 0.5 * np.arange(20))
        f.create_dataset("truth", data=bad)

    _refused(lambda: load(_h5(plain), "x.h5"), "truth mask")


def test_plain_hdf5_size_checked_before_reading(monkeypatch):
    def plain(f):
        # declared 8 x 8 x 4000 float64, stored compressed-empty: tiny file, big array
        f.create_dataset("data", shape=(8, 8, 4000), dtype="f8", compression="gzip")
        f.create_dataset("energy", data=np.arange(4000.0))

    raw = _h5(plain)
    assert len(raw) < 100_000
    monkeypatch.setenv("WORKBENCH_EELS_MAX_MB", "1")
    calls = []
    orig = h5py.Dataset.__getitem__

    def spy(self, key):
        calls.append(self.name)
        return orig(self, key)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
    _refused(lambda: load(raw, "x.h5"), "exceeds")
    assert "/data" not in calls  # refused from the declared shape, nothing read

    def group(f):
        f.create_group("data")

    monkeypatch.delenv("WORKBENCH_EELS_MAX_MB")
    _refused(lambda: load(_h5(group), "x.h5"), "group, not an array")


def test_count_diagnosis_flags_processed_data_and_passes_counts():
    p = synthetic(dict(ny=24, nx=24, seed=0, spike_rate=0.05, gain=2.0, read_noise=1.0))
    assert SP.count_diagnosis(p.data) is None
    e = p.energy
    assert "negative" in SP.count_diagnosis(SP.subtract_powerlaw(p.data, e, 660, 700)[0])
    assert "same total" in SP.count_diagnosis(SP.normalise(p.data, "sum"))
    assert "maximum of 1" in SP.count_diagnosis(SP.normalise(p.data, "max"))
    assert "Poisson" in SP.count_diagnosis(p.data * 1e-3)


def test_count_based_scores_refuse_background_subtracted_data():
    from workbench.solvers.eels import pca_recon, pca_t2

    p = DOMAIN.sample("small_2eV_5pct", background="powerlaw")
    _refused(lambda: pca_recon.solve(p, pca_recon.Params(k=3)), "needs raw counts")
    r = pca_recon.solve(p, pca_recon.Params(k=3, score="pearson"))
    assert "warning" in r.message and np.isfinite(r.output).all()
    assert "warning" in pca_t2.solve(p, pca_t2.Params(k=3)).message


def _h5(build) -> bytes:
    b = io.BytesIO()
    with h5py.File(b, "w") as f:
        build(f)
    return b.getvalue()


@pytest.mark.parametrize(
    ("build", "words"),
    [
        (
            lambda f: f.create_dataset("Experiments", data=np.zeros(3)),
            "/Experiments is not a group",
        ),
        (
            lambda f: f.create_group("Experiments").create_dataset("EELS", data=np.zeros(3)),
            "/Experiments/EELS is not a signal group",
        ),
    ],
)
def test_hspy_entries_of_the_wrong_kind_are_refused_in_one_line(build, words):
    """A damaged link (or a hand-made file) can make /Experiments or a signal an array: the
    reader and the page's signal list raised AttributeError on it."""
    raw = _h5(build)
    with pytest.raises(InputError, match=words):
        load(raw, "x.hspy")
    assert all(not s.usable for s in E.list_signals(raw, "x.hspy"))
