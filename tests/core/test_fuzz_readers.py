"""Property: any bytes given to any domain's loader give a problem or an InputError, nothing else,
and never allocate more than a bounded amount on the way."""

from __future__ import annotations

import gzip
import io
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench import registry
from workbench.errors import InputError
from workbench.problems import Problem

MAGIC = {
    "npz": b"PK\x03\x04",
    "npy": b"\x93NUMPY",
    "h5": b"\x89HDF\r\n\x1a\n",
    "hdf5": b"\x89HDF\r\n\x1a\n",
    "gz": b"\x1f\x8b\x08",
    "png": b"\x89PNG\r\n\x1a\n",
    "json": b"{",
    "nii": b"\x5c\x01\x00\x00",
}


def _valid_npz() -> bytes:
    buf = io.BytesIO()
    np.savez(buf, data=np.ones((4, 4, 16), np.float32), wt=np.zeros((8, 8, 8), np.uint8))
    return buf.getvalue()


def _mutations(ext: str):
    seeds = [MAGIC.get(ext, b""), _valid_npz(), gzip.compress(b"\0" * 1000)]
    return st.one_of(
        st.binary(max_size=2048),
        st.builds(lambda head, tail: head + tail, st.sampled_from(seeds), st.binary(max_size=512)),
        st.builds(
            lambda base, i, b: base[:i] + bytes([b]) + base[i + 1 :],
            st.just(_valid_npz()),
            st.integers(0, 400),
            st.integers(0, 255),
        ),
    )


CASES = [(d.name, ext) for d in registry.domains() for ext in d.upload_types]


@pytest.mark.parametrize(("domain", "ext"), CASES)
def test_any_bytes_give_a_problem_or_an_input_error(domain, ext):
    load = registry.get_domain(domain).load

    @settings(
        max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True
    )
    @given(data=_mutations(ext))
    def check(data):
        tracemalloc.start()
        try:
            try:
                out = load(data, f"fuzz.{ext}")
            except InputError as e:
                assert "\n" not in str(e)
            else:
                assert isinstance(out, Problem)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 300 * 2**20

    check()
