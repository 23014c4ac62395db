"""The built-in Gatan DigitalMicrograph reader: round trips through a tiny writer, hostile files.

The writer below is the test's own: it lays out the DM3/DM4 tag tree (header, groups, data tags
with their info arrays) for a 4 x 3 x 50 EELS spectrum image with calibrations and an RGB
thumbnail, so the reader is checked against the format description, not against another reader.
"""

from __future__ import annotations

import struct
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.datasets.eels import load
from workbench.errors import InputError
from workbench.io import eels as E
from workbench.io import gatan_dm as G

CODES = {"i2": 2, "i4": 3, "u2": 4, "u4": 5, "f4": 6, "f8": 7, "u1": 10, "i8": 11}


def S(code: str, v):
    """A simple data tag."""
    return ("s", CODES[code], v)


def A(code: str, a):
    """An array data tag."""
    return ("a", CODES[code], np.asarray(a).ravel())


def T(text: str):
    """A string as DM stores most of them: an array of UTF-16 code units."""
    return A("u2", np.frombuffer(text.encode("utf-16-le"), "<u2"))


class Writer:
    """Serialise a tag tree (groups are lists of (label, value)) as DM3 or DM4 bytes."""

    def __init__(self, version: int = 4, little: bool = True):
        self.v, self.e = version, "<" if little else ">"

    def word(self, n: int) -> bytes:
        return struct.pack(">Q" if self.v == 4 else ">I", n)

    def group(self, entries) -> bytes:
        return (
            b"\x00\x01" + self.word(len(entries)) + b"".join(self.entry(k, v) for k, v in entries)
        )

    def entry(self, label: str, v) -> bytes:
        body = self.group(v) if isinstance(v, list) else self.data(v)
        head = bytes([20 if isinstance(v, list) else 21]) + struct.pack(">H", len(label))
        head += label.encode("latin-1")
        return head + (struct.pack(">Q", len(body)) if self.v == 4 else b"") + body

    def data(self, leaf) -> bytes:
        kind, code, v = leaf
        np_code = {c: k for k, c in CODES.items()}[code]
        if kind == "s":
            info, payload = [code], np.array(v, self.e + np_code).tobytes()
        else:
            info, payload = [20, code, v.size], v.astype(self.e + np_code).tobytes()
        return b"%%%%" + self.word(len(info)) + b"".join(self.word(i) for i in info) + payload

    def file(self, root) -> bytes:
        body = self.group(root) + b"\x00" * 8
        return (
            struct.pack(">i", self.v)
            + self.word(len(body))
            + struct.pack(">i", 1 if self.e == "<" else 0)
            + body
        )


def _cube():
    rng = np.random.default_rng(7)
    return rng.poisson(100.0, (4, 3, 50)).astype(np.float32)  # (y, x, E)


def _si_tree(cube, *, origin=-1400.0, scale=0.5, units="eV", signal="EELS", image=None):
    """ImageList = [RGB thumbnail, spectrum image]; DM lists dimensions x, y, E (fastest first)."""
    ny, nx, ne = cube.shape
    thumb = [
        ("ImageData", [
            ("Data", A("u4", np.arange(64, dtype=np.uint32))),
            ("DataType", S("i4", 23)),
            ("Dimensions", [("", S("u4", 8)), ("", S("u4", 8))]),
        ]),
    ]  # fmt: skip
    cal = [
        [("Origin", S("f4", 0.0)), ("Scale", S("f4", 2.0)), ("Units", T("nm"))],
        [("Origin", S("f4", 0.0)), ("Scale", S("f4", 2.0)), ("Units", T("nm"))],
        [("Origin", S("f4", origin)), ("Scale", S("f4", scale)), ("Units", T(units))],
    ]
    si = image or [
        ("ImageData", [
            ("Calibrations", [("Dimension", [("", c) for c in cal])]),
            ("Data", A("f4", np.ascontiguousarray(cube.transpose(2, 0, 1)))),  # C order (E, y, x)
            ("DataType", S("i4", 2)),
            ("Dimensions", [("", S("u4", nx)), ("", S("u4", ny)), ("", S("u4", ne))]),
        ]),
        ("ImageTags", [("Meta Data", [("Format", T("Spectrum image")), ("Signal", T(signal))])]),
        ("Name", T("EELS Spectrum Image")),
    ]  # fmt: skip
    return [
        ("ImageList", [("", thumb), ("", si)]),
        ("Thumbnails", [("", [("ImageIndex", S("u4", 0))])]),
    ]


def _si_file(version=4, little=True, **kw):
    cube = _cube()
    return cube, Writer(version, little).file(_si_tree(cube, **kw))


def _one_line_error(raw: bytes, name: str = "bad.dm4", match: str = "") -> str:
    with pytest.raises(InputError, match=match) as e:
        G.read_items(raw, name)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{name}: ")
    return msg


@pytest.mark.parametrize("version", [3, 4])
@pytest.mark.parametrize("little", [True, False])
def test_round_trip_spectrum_image(version, little):
    cube, raw = _si_file(version, little)
    items = G.read_items(raw, "si.dm4")
    assert len(items) == 1  # the thumbnail is skipped
    it = items[0]
    assert it["data"].shape == (50, 4, 3)  # DM's (x, y, E) reversed
    assert it["data"].dtype == np.float32 and it["data"].dtype.isnative
    np.testing.assert_array_equal(it["data"], cube.transpose(2, 0, 1))
    e_ax = it["axes"][0]
    assert (e_ax["size"], e_ax["units"], e_ax["name"]) == (50, "eV", "Energy loss")
    assert e_ax["offset"] == pytest.approx(700.0) and e_ax["scale"] == pytest.approx(0.5)
    assert [a["units"] for a in it["axes"][1:]] == ["nm", "nm"]
    assert it["metadata"]["General"]["title"] == "EELS Spectrum Image"
    assert it["metadata"]["Signal"]["signal_type"] == "EELS"
    assert it["post_process"] == ["to_signal1D"]
    d = E.read_dm(raw, f"si.dm{version}")
    np.testing.assert_array_equal(d.data, cube)
    np.testing.assert_allclose(d.energy, 700.0 + 0.5 * np.arange(50))


def test_load_through_the_page_loader():
    cube, raw = _si_file(4)
    p = load(raw, "si.dm4")
    assert p.data.shape == (4, 3, 50)
    np.testing.assert_allclose(p.energy, 700.0 + 0.5 * np.arange(50))
    assert [i.usable for i in E.list_signals(raw, "si.dm4")] == [True]


def test_ev_axis_alone_marks_eels():
    cube, raw = _si_file(3, signal="")
    it = G.read_items(raw, "si.dm3")[0]
    assert it["metadata"]["Signal"]["signal_type"] == "EELS"
    np.testing.assert_array_equal(E.read_dm(raw, "si.dm3").data, cube)


def test_two_d_image_refused_as_spectrum():
    img = [
        ("ImageData", [
            ("Data", A("f4", np.ones(12))),
            ("DataType", S("i4", 2)),
            ("Dimensions", [("", S("u4", 4)), ("", S("u4", 3))]),
        ]),
        ("Name", T("HAADF")),
    ]  # fmt: skip
    raw = Writer(4).file(_si_tree(_cube(), image=img))
    assert G.read_items(raw, "img.dm4")[0]["data"].shape == (3, 4)
    with pytest.raises(InputError, match="2 signal axes") as e:
        load(raw, "img.dm4")
    assert "\n" not in str(e.value)


def test_not_dm_and_truncated_files():
    _one_line_error(b"\x00" * 100, match="not a DigitalMicrograph file: version 0")
    _one_line_error(b"DM", match="shorter than a header")
    _, raw = _si_file(4)
    for cut in (20, 40, len(raw) // 3, len(raw) // 2, len(raw) - 200):
        _one_line_error(raw[:cut], match="not a DigitalMicrograph file")


def _tiny(info: list[int], payload: bytes = b"", version: int = 4) -> bytes:
    """A file whose root holds one data tag 'X' with the given info array."""
    w = Writer(version)
    body = b"%%%%" + w.word(len(info)) + b"".join(w.word(i) for i in info) + payload
    entry = b"\x15" + struct.pack(">H", 1) + b"X"
    entry += (struct.pack(">Q", len(body)) if version == 4 else b"") + body
    root = b"\x00\x01" + w.word(1) + entry
    return struct.pack(">i", version) + w.word(len(root)) + struct.pack(">i", 1) + root


def test_huge_declared_array_costs_no_memory():
    raw = _tiny([20, 7, 2**40], b"\x00" * 120)
    assert len(raw) < 220
    tracemalloc.start()
    try:
        _one_line_error(raw, match="needs 8,796,093,022,208 bytes")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 10 * 2**20


def test_huge_tag_count_and_info_length_refused():
    w = Writer(4)
    raw = struct.pack(">i", 4) + w.word(0) + struct.pack(">i", 1) + b"\x00\x01" + w.word(2**60)
    _one_line_error(raw + b"\x00" * 64, match="declares")
    raw = _tiny([20, 7, 2])
    raw = raw.replace(b"%%%%" + w.word(3), b"%%%%" + w.word(2**62))
    _one_line_error(raw, match="info array of")


def test_total_tag_count_bounded(monkeypatch):
    monkeypatch.setattr(G, "MAX_TAGS", 10)
    _, raw = _si_file(3)
    _one_line_error(raw, match="more than 10 tags")


def test_deep_nesting_refused():
    w = Writer(3)
    level = b"\x14" + struct.pack(">H", 1) + b"G" + b"\x00\x01" + w.word(1)
    root = b"\x00\x01" + w.word(1) + level * 2000  # every group holds one group, all the way down
    raw = struct.pack(">i", 3) + w.word(len(root)) + struct.pack(">i", 1) + root
    _one_line_error(raw, match=f"nested deeper than {G.MAX_DEPTH}")


def test_bad_delimiter_unknown_type_and_kind():
    _one_line_error(_tiny([7], b"\x00" * 8).replace(b"%%%%", b"%%%&"), match="delimiter")
    _one_line_error(_tiny([99], b"\x00" * 8), match="unknown type code 99")
    _one_line_error(_tiny([15, 0, 1, 0, 99], b"\x00" * 8), match="unknown struct field type")
    _one_line_error(
        _tiny([7], b"\x00" * 8).replace(b"\x15\x00\x01X", b"\x16\x00\x01X"), match="tag kind 22"
    )


def test_structs_strings_and_arrays_of_structs_parse():
    # a struct of (int16, float64), an 18 string and an array of 2 structs of 2 uint8
    payload = struct.pack("<hd", -3, 2.5)
    _, root = G.parse(_tiny([15, 0, 2, 0, 2, 0, 7], payload))
    assert root.get("X") == (-3, 2.5)
    _, root = G.parse(_tiny([18, 5], b"hello"))
    assert root.get("X") == "hello"
    raw = _tiny([20, 15, 0, 2, 0, 10, 0, 10, 2], bytes([1, 2, 3, 4]))
    _, root = G.parse(raw)
    assert root.get("X").view(raw).tolist() == [(1, 2), (3, 4)]


def _unsupported_file():
    img = [
        ("ImageData", [
            ("Data", A("f4", np.ones(8))),
            ("DataType", S("i4", 27)),  # packed complex FFT data
            ("Dimensions", [("", S("u4", 4)), ("", S("u4", 2))]),
        ]),
    ]  # fmt: skip
    return Writer(4).file(_si_tree(_cube(), image=img))


def test_unsupported_falls_back_to_rosettasciio_only_when_importable(monkeypatch):
    raw = _unsupported_file()
    with pytest.raises(G.DMUnsupported, match="data type 27"):
        G.read_items(raw, "fft.dm4")
    monkeypatch.setattr(E, "_rsciio_available", lambda: False)
    with pytest.raises(InputError, match="built-in reader does not decode") as e:
        E.read_dm(raw, "fft.dm4")
    assert "\n" not in str(e.value)
    called = []
    monkeypatch.setattr(E, "_rsciio_available", lambda: True)
    monkeypatch.setattr(E, "_rsciio_items", lambda raw, filename: called.append(filename) or [])
    with pytest.raises(InputError, match="holds no signal"):
        E.read_dm(raw, "fft.dm4")
    assert called == ["fft.dm4"]
    # a malformed file never goes to RosettaSciIO
    with pytest.raises(InputError, match="not a DigitalMicrograph file"):
        E.read_dm(b"\x00" * 100, "bad.dm4")
    assert called == ["fft.dm4"]


_, _VALID = _si_file(4)
_VALID3 = _si_file(3)[1]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.booleans(),
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=4),
)
def test_fuzz_byte_flips_give_a_result_or_one_line_error(dm3, flips):
    buf = bytearray(_VALID3 if dm3 else _VALID)
    for pos, val in flips:
        buf[pos % len(buf)] = val
    try:
        items = G.read_items(bytes(buf), "fuzz.dm4")
    except InputError as e:
        assert "\n" not in str(e)
    else:
        assert all(isinstance(it["data"], np.ndarray) for it in items)
