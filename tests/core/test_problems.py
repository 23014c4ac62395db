import numpy as np

from workbench.problems import OTProblem


def _p(seed=0):
    rng = np.random.default_rng(seed)
    a = np.full(4, 0.25)
    return OTProblem(name="t", a=a, b=a, C=rng.random((4, 4)), shape_a=(2, 2), meta={"k": 1})


def test_id_is_a_content_hash():
    assert _p(0).id == _p(0).id
    assert _p(0).id != _p(1).id


def test_arrays_round_trip():
    p = _p()
    q = OTProblem.from_arrays(p.to_arrays())
    assert q.id == p.id
    np.testing.assert_array_equal(q.C, p.C)
    assert q.shape_a == (2, 2) and q.X is None and q.meta == {"k": 1}
