"""Samples, the upload loader's validation, and the domain metrics."""

import io

import numpy as np
import pytest

from workbench.datasets import ot as dot
from workbench.errors import InputError
from workbench.io import ot as oio


def npz(**arrays):
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def test_samples_are_normalised():
    for s in dot.SAMPLES[:3] + dot.SAMPLES[5:]:
        p = s.factory()
        assert abs(p.a.sum() - 1) < 1e-12 and abs(p.b.sum() - 1) < 1e-12
        assert p.C.shape == (p.n, p.m) and p.C.max() == pytest.approx(1.0)
        assert np.all(p.a > 0) and np.all(p.b > 0)
    d = dot.digits_w1()
    assert d.shape_a == (28, 28) and d.index_a.size == d.n and d.cost == "euclidean"


def test_load_cost_matrix_npz_and_renormalise_notice():
    a = np.array([0.2, 0.3, 0.5]) * 2
    b = np.array([0.5, 0.5])
    C = np.array([[0.0, 2.0], [1.0, 1.0], [2.0, 0.0]])
    p = dot.load(npz(a=a, b=b, C=C), "costs.npz")
    assert p.cost == "custom" and p.cost_scale == 2.0
    assert abs(p.a.sum() - 1) < 1e-15
    assert any("renormalised" in n for n in p.meta["notices"])


@pytest.mark.parametrize(
    "arrays,msg",
    [
        (dict(a=[0.5, np.nan], b=[1.0], C=[[1.0], [1.0]]), "NaN"),
        (dict(a=[1.5, -0.5], b=[1.0], C=[[1.0], [1.0]]), "non-negative"),
        (dict(a=[0.5, 0.5], b=[1.0], C=[[1.0, 2.0], [1.0, 2.0]]), "shape"),
        (dict(a=[0.5, 0.5], b=[1.0], C=[[-1.0], [1.0]]), "non-negative"),
        (dict(a=[0.0, 0.0], b=[1.0], C=[[1.0], [1.0]]), "zero"),
        (dict(a=[0.5, 0.5], b=[1.0], C=[[np.inf], [1.0]]), "NaN or inf"),
        (dict(a=[0.5, 0.5], b=[1.0]), "needs C"),
    ],
)
def test_load_rejects_bad_npz(arrays, msg):
    arrays = {k: np.asarray(v, dtype=float) for k, v in arrays.items()}
    if msg == "needs C":
        with pytest.raises(InputError, match="NPZ must hold"):
            dot.load(npz(**arrays), "x.npz")
        return
    with pytest.raises(InputError, match=msg):
        dot.load(npz(**arrays), "x.npz")


def test_absurd_sizes_and_formats_rejected():
    with pytest.raises(InputError, match="too large|more than"):
        dot.make_problem(
            np.ones(30_000), np.ones(10), C=None, X=np.zeros((30_000, 1)), Y=np.zeros((10, 1))
        )
    with pytest.raises(InputError, match="unsupported"):
        dot.load(b"hello", "x.txt")
    with pytest.raises(InputError, match="NPZ"):
        dot.load(b"not a zip", "x.npz")
    with pytest.raises(InputError, match="empty"):
        dot.load(b"", "x.csv")
    with pytest.raises(InputError, match=r"\(2, H, W\)"):
        buf = io.BytesIO()
        np.save(buf, np.ones((3, 4)))
        dot.load(buf.getvalue(), "img.npy")


def test_csv_clouds():
    text = "side,x,y,w\na,0,0,1\na,1,0,1\nb,0,1,2\nb,1,1,2\nb,0.5,0.5,0\n"
    p = dot.load(text.encode(), "clouds.csv", cost="euclidean")
    assert (p.n, p.m) == (2, 3) and p.cost == "euclidean"
    assert p.b[2] == 0.0
    with pytest.raises(InputError, match="side"):
        dot.load(b"x,y\n0,0\n1,1\n2,2\n", "bad.csv")
    with pytest.raises(InputError, match="line 3"):
        dot.load(b"side,x,y\na,0,0\nc,1,1\nb,2,2\n", "bad.csv")
    with pytest.raises(InputError, match="non-numeric"):
        dot.load(b"side,x,y\na,0,0\nb,q,1\n", "bad.csv")
    # unweighted clouds get uniform weights
    p2 = dot.load(b"side,x,y\na,0,0\na,1,1\nb,2,2\n", "u.csv")
    np.testing.assert_allclose(p2.a, [0.5, 0.5])


def test_images_png_and_npy_zero_pixels_dropped_and_reinserted():
    from PIL import Image

    from workbench.solvers.ot import sinkhorn

    A = np.zeros((8, 8))
    A[2:4, 2:5] = 1.0
    B = np.zeros((8, 8))
    B[5:7, 4:7] = 2.0
    img = np.concatenate([A, B], axis=1)
    buf = io.BytesIO()
    Image.fromarray((img / img.max() * 255).astype(np.uint8)).save(buf, format="PNG")
    p = dot.load(buf.getvalue(), "pair.png")
    assert (p.n, p.m) == (6, 6) and p.shape_a == (8, 8)
    buf2 = io.BytesIO()
    np.save(buf2, np.stack([A, B]))
    q = dot.load(buf2.getvalue(), "pair.npy", cost="euclidean")
    assert q.n == 6 and q.cost == "euclidean"
    with pytest.raises(InputError, match="negative"):
        dot.from_images(-A, B)
    # floored images keep every pixel; plans of dropped zero masses are re-inserted as zeros
    f = dot.from_images(A, B, floor=1e-6)
    assert f.n == 64
    r = sinkhorn.solve(
        dot.make_problem(np.r_[0.0, 0.5, 0.5], np.r_[1.0], C=np.ones((3, 1))),
        sinkhorn.Params(reg=0.1),
    )
    assert r.output.shape == (3, 1) and r.output[0, 0] == 0 and r.status == "converged"


def test_evaluate_same_for_every_solver():
    from workbench.solvers.ot import emd, sinkhorn_newton

    p = dot.hist1d()
    r1 = emd.solve(p, emd.Params())
    r2 = sinkhorn_newton.solve(p, sinkhorn_newton.Params(reg=1e-2))
    m1, m2 = dot.evaluate(p, r1), dot.evaluate(p, r2)
    assert m1["cost_gap"] == pytest.approx(0.0, abs=1e-12)
    assert m2["cost_gap"] > 0 and m2["marginal_error"] <= 1e-8
    assert set(m1) <= set(m2)


def test_plan_export_coo():
    P = np.array([[0.5, 1e-20], [0.0, 0.5]])
    coo = oio.plan_to_coo(P)
    assert list(coo["row"]) == [0, 1] and list(coo["col"]) == [0, 1]
    assert oio.write_plan_csv(P).startswith(b"row,col,value\n0,0,0.5")
    z = np.load(io.BytesIO(oio.write_plan_npz(P)))
    assert tuple(z["shape"]) == (2, 2)
