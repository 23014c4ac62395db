"""AppTest of the EELS page: sample, navigator, a stored run and its result views."""

from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

PAGE = Path(__file__).resolve().parents[2] / "app_pages" / "eels.py"


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path))
    return tmp_path


def _uploaded(name: str, data: bytes) -> AppTest:
    """The page after ``data`` was uploaded as the core-loss file."""
    at = AppTest.from_file(str(PAGE), default_timeout=180)
    at.run()
    at.radio(key="wb.eels.picker.source").set_value("Upload").run()
    up = at.get("file_uploader")[0]
    if not hasattr(up, "upload"):
        pytest.skip("this Streamlit's AppTest cannot upload files")
    up.upload(name, data, "application/octet-stream").run()
    return at


def test_page_renders_sample_and_navigator(home):
    at = AppTest.from_file(str(PAGE), default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    assert "EELS anomaly detection" in at.title[0].value
    assert any("Which score detects what" in e.label for e in at.expander)
    assert len(at.get("plotly_chart")) >= 2  # navigator + spectrum


def test_page_shows_stored_run(home):
    import dataclasses

    from workbench import registry
    from workbench.store import RunStore

    dom = registry.get_domain("eels")
    problem = dom.sample(dom.samples[0].name)
    spec = registry.get_solver("eels", "pca_t2")
    result = spec.solve(problem, spec.Params())
    RunStore(str(home)).save(problem, "pca_t2", dataclasses.asdict(spec.Params()), result)
    at = AppTest.from_file(str(PAGE), default_timeout=180)
    at.run()
    assert not at.exception, at.exception
    charts = at.get("plotly_chart")
    assert len(charts) >= 5  # navigator, spectrum, score maps, ROC/PR, histogram, ...
    assert np.isfinite(result.output).all()


def test_page_offers_windows_inside_low_loss_data_and_asks_for_the_signal(home, tmp_path):
    import io

    import h5py

    from workbench.io import eels as E

    # a low-loss line scan: the default Fe-L windows lie outside it
    e = -100.0 + 0.5 * np.arange(1024)
    data = np.random.default_rng(0).poisson(50, (17, 1024)).astype(np.float32)
    buf = io.BytesIO()
    E.write_hspy(buf, data, e, title="low loss")
    at = _uploaded("lowloss.hspy", buf.getvalue())
    assert not at.exception, at.exception
    assert any("outside this data" in i.value for i in at.info)
    lo = at.number_input(key="wb.eels.solve.cvae3d.edge_lo").value
    hi = at.number_input(key="wb.eels.solve.cvae3d.edge_hi").value
    assert -100.0 <= lo < hi <= 411.5

    # a file with an image and two spectrum images: the page asks which one
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f.attrs["file_format"] = "HyperSpy"
        for t, off in (("SI a", 650.0), ("SI b", 700.0)):
            g = f.create_group(f"Experiments/{t}")
            g["data"] = np.ones((3, 3, 40), np.float32)
            for i, (u, nav, o) in enumerate(
                (("nm", True, 0.0), ("nm", True, 0.0), ("eV", False, off))
            ):
                g.create_group(f"axis-{i}").attrs.update(
                    {
                        "units": u,
                        "navigate": nav,
                        "offset": o,
                        "scale": 1.0,
                        "size": g["data"].shape[i],
                    }
                )
    at.get("file_uploader")[0].upload("two.hspy", buf.getvalue(), "application/octet-stream").run()
    assert not at.exception, at.exception
    sel = at.selectbox(key="wb.eels.signal")
    assert 680.0 <= at.number_input(key="wb.eels.solve.cvae3d.edge_lo").value < 690.0
    sel.set_value(1).run()
    assert not at.exception, at.exception
    assert any("700" in str(m.value) for m in at.metric)
    # the defaults fit this one: the windows set for the earlier files are gone
    assert at.number_input(key="wb.eels.solve.cvae3d.edge_lo").value == 690.0
    assert not any("outside this data" in i.value for i in at.info)


def test_page_takes_the_low_loss_image_of_the_scan_as_the_drift_reference(home):
    import io

    from workbench.physics.eels.synth import generate

    def npz(data, energy):
        buf = io.BytesIO()
        np.savez(buf, data=np.asarray(data, np.float32), energy=energy)
        return buf.getvalue()

    g = generate(ny=8, nx=8, fraction=0.0, seed=5, drift=0.3)
    e_ll = -10.0 + 0.1 * np.arange(400)
    zlp = 1e4 * np.exp(-0.5 * ((e_ll - g["drift_map"][..., None]) / 0.4) ** 2) + 5.0
    at = _uploaded("core.npz", npz(g["data"], g["energy"]))
    assert not at.exception, at.exception

    def low_loss_uploader():
        ups = [u for u in at.get("file_uploader") if "Low-loss" in u.proto.label]
        assert len(ups) == 1
        return ups[0]

    low_loss_uploader().upload("ll.npz", npz(zlp, e_ll), "application/octet-stream").run()
    assert not at.exception, at.exception
    assert any("alignment uses its zero-loss peak" in c.value for c in at.caption)
    # a core-loss file offered as the low-loss image: one line, and the page goes on without it
    low_loss_uploader().upload("core.npz", npz(g["data"], g["energy"]), "x").run()
    assert not at.exception, at.exception
    assert any("used alone" in e.value for e in at.error)
    assert not any("alignment uses its zero-loss peak" in c.value for c in at.caption)
