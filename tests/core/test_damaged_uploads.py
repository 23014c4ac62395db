"""Damaged uploads (HDF5, NPZ, CSV): refused in one line, never a crash of the process that reads them."""

from __future__ import annotations

import gzip
import io
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from workbench import registry
from workbench.errors import InputError
from workbench.io import h5_sandbox
from workbench.io.limits import h5_damage
from workbench.problems import Problem

DATA = Path(__file__).resolve().parents[1] / "data"
# byte-flipped files written by the project's writers on which libhdf5 kills the interpreter:
# an ISMRMRD file (51 KB; "double free or corruption" while h5py reads the acquisition table)
# and a HyperSpy file (a segfault while the reader lists a metadata group's attributes, which a
# generic walk of every object in a child survived)
CRASHERS = [
    ("ismrmrd_libhdf5_abort.h5.gz", "mri", "scan.h5", 'f["dataset"]["data"][()]'),
    ("hspy_libhdf5_segfault.hspy.gz", "eels", "map.hspy", None),
]

_LOAD = """
import sys
from workbench import registry
from workbench.errors import InputError
raw = open(sys.argv[1], "rb").read()
try:
    registry.get_domain(sys.argv[2]).load(raw, sys.argv[3])
    print("LOADED")
except InputError as e:
    print("INPUT_ERROR", e)
"""

_RAW_READ = """
import io, sys, h5py
with h5py.File(io.BytesIO(open(sys.argv[1], "rb").read()), "r") as f:
    {}
"""


@pytest.mark.parametrize(("fixture", "domain", "name", "raw_read"), CRASHERS)
def test_a_file_that_crashes_libhdf5_is_refused_and_the_reader_survives(
    tmp_path, fixture, domain, name, raw_read
):
    path = tmp_path / name
    path.write_bytes(gzip.decompress((DATA / fixture).read_bytes()))
    # in a child, so that a regression fails this test instead of killing pytest
    r = subprocess.run(
        [sys.executable, "-c", _LOAD, str(path), domain, name], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr[-2000:]
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"INPUT_ERROR {name}: damaged HDF5 file")
    if raw_read:  # h5py alone dies on it too: the sandbox said so
        code = _RAW_READ.format(raw_read)
        raw = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True)
        if raw.returncode < 0 or raw.returncode > 1:
            assert "crashed" in lines[0]


def _seeds() -> dict[str, tuple[str, bytes]]:
    from workbench.io import eels as E
    from workbench.io import mri_fastmri, mri_ismrmrd

    rng = np.random.default_rng(0)
    out = {}
    b = io.BytesIO()
    E.write_hspy(b, rng.poisson(50, (6, 5, 64)).astype(np.float32), np.linspace(680, 743, 64))
    out["x.hspy"] = ("eels", b.getvalue())
    k = rng.standard_normal((1, 4, 32, 24)) + 1j * rng.standard_normal((1, 4, 32, 24))
    b = io.BytesIO()
    mri_ismrmrd.write_ismrmrd(b, k.astype(np.complex64))
    out["ismrmrd.h5"] = ("mri", b.getvalue())
    b = io.BytesIO()
    mri_fastmri.write_fastmri(b, k[0].astype(np.complex64))
    out["fastmri.h5"] = ("mri", b.getvalue())
    return out


@pytest.mark.parametrize("name", ["x.hspy", "ismrmrd.h5", "fastmri.h5"])
def test_byte_flipped_hdf5_uploads_give_a_problem_or_one_line_error(name):
    """Flipped bytes in the metadata raise OSError, KeyError, RuntimeError, ValueError or
    UnicodeDecodeError inside h5py; each must reach the user as one InputError line."""
    domain, raw = _seeds()[name]
    load = registry.get_domain(domain).load
    rnd = random.Random(7)
    errors = 0
    for _ in range(12):
        b = bytearray(raw)
        for _ in range(rnd.choice([2, 8, 32])):
            b[rnd.randrange(min(len(b), 4096))] = rnd.randrange(256)  # mostly metadata
        try:
            out = load(bytes(b), name)
        except InputError as e:
            errors += 1
            assert "\n" not in str(e)
        else:
            assert isinstance(out, Problem)
    assert errors > 0  # the flips did reach the readers' error paths


def test_h5_damage_turns_library_errors_into_one_line_and_passes_input_errors():
    with pytest.raises(InputError, match=r"^a\.h5: damaged HDF5 file \(Unable to open object\)$"):
        with h5_damage("a.h5"):
            raise KeyError("Unable to open object\nsecond line")
    with pytest.raises(InputError, match="^own message$"):
        with h5_damage("a.h5"):
            raise InputError("own message")


def test_preflight_passes_good_files_once_and_ignores_non_hdf5(monkeypatch):
    raw = _seeds()["x.hspy"][1]
    reader = "workbench.io.eels:read_hspy"
    h5_sandbox._VERDICTS.clear()
    h5_sandbox.h5_preflight(raw, "x.hspy", reader)  # a good file passes

    def no_child(*a, **k):
        raise AssertionError("the verdict was cached; no second child")

    monkeypatch.setattr(h5_sandbox.subprocess, "run", no_child)
    h5_sandbox.h5_preflight(raw, "x.hspy", reader)
    h5_sandbox.h5_preflight(b"not hdf5 at all", "x.h5", reader)  # left to the readers' own checks


@pytest.mark.parametrize(("domain", "name"), [("eels", "cube.npz"), ("mri", "k.npz")])
def test_npz_whose_directory_offset_points_before_the_start_is_refused(domain, name):
    """zipfile trusts the end-of-central-directory offset; past the start it seeks to a negative
    position (ValueError) when the member is read -- in MRI's lazy NpzFile outside any handler."""
    import struct

    rng = np.random.default_rng(1)
    buf = io.BytesIO()
    cube = rng.poisson(20, (4, 4, 32)).astype(np.float32)
    k = (rng.standard_normal((2, 8, 8)) + 1j * rng.standard_normal((2, 8, 8))).astype(np.complex64)
    np.savez(buf, data=cube, energy=np.linspace(680, 711, 32), kspace=k)
    raw = bytearray(buf.getvalue())
    e = raw.rfind(b"PK\x05\x06")
    raw[e + 16 : e + 20] = struct.pack("<I", 0xFFFFFF00)
    with pytest.raises(InputError) as exc:
        registry.get_domain(domain).load(bytes(raw), name)
    assert "\n" not in str(exc.value) and name in str(exc.value)


def test_csv_with_a_carriage_return_inside_a_field_is_refused_in_one_line():
    from workbench.io.ot import read_csv_clouds

    with pytest.raises(InputError, match=r"^CSV is malformed \(new-line character"):
        read_csv_clouds(b"side,x,y\na,0.1\r0.2,3\nb,1,2\nb,1,3\n")
