import io
import zipfile

import h5py
import numpy as np
import plotly.graph_objects as go
import pytest

from workbench.export import csv_bytes, data_bytes, figure_bytes, run_bundle, table_csv_bytes
from workbench.jobs import execute
from workbench.store import RunStore


@pytest.fixture(scope="module")
def fig():
    return go.Figure(go.Heatmap(z=np.arange(12.0).reshape(3, 4)))


@pytest.mark.parametrize(
    "fmt, magic", [("png", b"\x89PNG\r\n\x1a\n"), ("pdf", b"%PDF-"), ("svg", b"<svg")]
)
def test_figure_formats(fig, fmt, magic):
    assert figure_bytes(fig, fmt).startswith(magic)


def test_data_round_trips():
    arrays = {"output": np.arange(6.0).reshape(2, 3), "x": np.arange(3)}
    with np.load(io.BytesIO(data_bytes(arrays, "npz")), allow_pickle=False) as z:
        np.testing.assert_array_equal(z["output"], arrays["output"])
    with h5py.File(io.BytesIO(data_bytes(arrays, "h5")), "r") as f:
        np.testing.assert_array_equal(f["x"][()], arrays["x"])
    back = np.loadtxt(io.BytesIO(data_bytes(arrays, "csv")), delimiter=",")
    np.testing.assert_array_equal(back, arrays["output"])
    with pytest.raises(ValueError, match="1-D or 2-D"):
        csv_bytes(np.zeros((2, 2, 2)))
    assert table_csv_bytes([{"a": 1}, {"a": 2, "b": 3}]).decode().splitlines() == [
        "a,b",
        "1,",
        "2,3",
    ]


def test_run_bundle(toy, tmp_path):
    store = RunStore(tmp_path)
    _, rid = execute(toy.SPEC, toy.make(8), toy.SPEC.params(max_iter=20), store=store)
    z = zipfile.ZipFile(io.BytesIO(run_bundle(store, rid)))
    names = set(z.namelist())
    assert {
        "run.json",
        "params.json",
        "metrics.json",
        "versions.json",
        "result.npz",
        "figure.png",
    } <= names
    assert z.read("figure.png").startswith(b"\x89PNG")


def test_shared_renderer_gives_the_in_process_image(fig, monkeypatch):
    """The CLI's shared renderer (a warm kaleido in a background process) draws the very image
    that in-process rendering draws, and a second call is served by the same process."""
    import os

    from PIL import Image

    from workbench.export import figure_bytes_shared, renderer_address

    monkeypatch.setenv("WORKBENCH_RENDERER", "shared")
    monkeypatch.setenv("WORKBENCH_RENDERER_IDLE", "20")  # do not outlive the suite for long
    shared = figure_bytes_shared(fig, "png", width=400, height=300)
    assert os.path.exists(renderer_address())  # the renderer is up and listening
    inode = os.stat(renderer_address()).st_ino
    again = figure_bytes_shared(fig, "svg")
    assert again.startswith(b"<svg") and os.stat(renderer_address()).st_ino == inode
    local = figure_bytes(fig, "png", width=400, height=300)
    a, b = (np.asarray(Image.open(io.BytesIO(x)).convert("RGB")) for x in (shared, local))
    assert a.shape == b.shape == (600, 800, 3)
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 2
