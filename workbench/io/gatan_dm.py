"""Gatan DigitalMicrograph ``.dm3``/``.dm4`` reader (the project's own, BSD, no dependency).

A DM file is a tree of tags after a 12- (DM3) or 16-byte (DM4) header::

    header      version (int32 BE, 3 or 4), root length (uint32 BE / uint64 BE for DM4),
                byte order of the tag data (int32 BE: 1 little, 0 big)
    tag group   sorted (uint8), open (uint8), tag count (uint32 BE / uint64 BE)
    tag entry   kind (uint8: 20 group, 21 data), label length (uint16 BE), label (bytes),
                DM4 only: the entry's size in bytes (uint64 BE), then
                20 -> a tag group;
                21 -> "%%%%", info length n (uint32/uint64 BE), n info words (same width, BE),
                      the value in the header's byte order.

The info words describe the value's type: a simple type ``[t]`` (2 int16, 3 int32, 4 uint16,
5 uint32, 6 float32, 7 float64, 8 bool, 9 int8, 10 uint8, 11 int64, 12 uint64), a string
``[18, nbytes]``, a struct ``[15, 0, nfields, 0, t1, ..., 0, tn]`` and an array
``[20, <element type>, count]`` whose element is any of these (a simple type, a struct, a
string or an array). The images are the groups of ``ImageList``; each has ``ImageData`` with
``Data`` (an array), ``DataType`` (the image's type code), ``Dimensions`` (sizes, fastest axis
first) and ``Calibrations/Dimension`` (``Origin``, ``Scale``, ``Units`` per axis, so that the
calibrated coordinate of index i is ``Scale * (i - Origin)``).

Hostile input: every count, length and array size is checked against the bytes that remain
before anything is built, arrays are never copied while parsing (they stay as offsets into the
file), the nesting depth and the total number of tags are bounded, and every failure is one
line :class:`~workbench.errors.InputError`. Image data types the reader does not decode (packed
complex FFT data) raise :class:`DMUnsupported`, which the EELS reader may hand to RosettaSciIO.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from workbench.errors import InputError
from workbench.io.limits import check_decoded

#: Deepest nesting of tag groups accepted (real files nest about 10 deep).
MAX_DEPTH = 64
#: Most tags accepted in one file (the rosettasciio test files hold 119-718 tags; a hostile
#: 3.1 MB file of 200k one-byte tags is refused after ~12 MB of Python objects and ~1.3 s CPU).
MAX_TAGS = 200_000
#: Longest info array accepted (a struct of 1000 fields needs 2003 words).
MAX_INFO = 4096

#: Simple tag types: info code -> numpy type character (the byte order is the file's).
SIMPLE = {2: "i2", 3: "i4", 4: "u2", 5: "u4", 6: "f4", 7: "f8", 8: "b1", 9: "i1", 10: "u1"}
SIMPLE.update({11: "i8", 12: "u8"})

#: Image data types (``ImageData/DataType``) -> numpy type; 23 is RGBA packed in 4 bytes.
IMAGE_TYPES = {1: "i2", 2: "f4", 3: "c8", 6: "u1", 7: "i4", 9: "i1", 10: "u2", 11: "u4"}
IMAGE_TYPES.update({12: "f8", 13: "c16", 14: "b1", 8: "u4", 23: "u4"})
#: Image data types known but not decoded here (packed complex FFT data, 4-bit, ...).
UNSUPPORTED_IMAGE = {0: "null", 4: "4-byte packed", 5: "packed complex", 27: "packed complex"}
UNSUPPORTED_IMAGE.update({28: "packed complex"})


class DMUnsupported(InputError):
    """A valid DigitalMicrograph file with content this reader does not decode."""


@dataclass(frozen=True)
class DMArray:
    """An array value left in the file: ``count`` items of ``dtype`` at byte ``offset``."""

    offset: int
    count: int
    dtype: np.dtype

    def view(self, raw: bytes) -> np.ndarray:
        """The items as a read-only view of ``raw`` (no copy)."""
        return np.frombuffer(raw, self.dtype, self.count, self.offset)


class TagGroup:
    """A tag group: its entries in file order, as (label, value) pairs; labels may be empty."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, Any]] = []

    def get(self, path: str, default: Any = None) -> Any:
        """The value at a ``/``-separated path of labels (first match), or ``default``."""
        node: Any = self
        for name in path.split("/"):
            if not isinstance(node, TagGroup):
                return default
            node = next((v for k, v in node.entries if k == name), _MISSING)
            if node is _MISSING:
                return default
        return node

    def values(self) -> list[Any]:
        """The values in file order (DM's lists, such as ``Dimensions``, have empty labels)."""
        return [v for _, v in self.entries]


_MISSING = object()


class _Parser:
    """One pass over the bytes of a DM file; ``raw`` is never copied."""

    def __init__(self, raw: bytes, filename: str) -> None:
        self.raw = memoryview(raw)
        self.n = len(raw)
        self.filename = filename
        self.pos = 0
        self.tags = 0

    # -- primitives ------------------------------------------------------------------------------

    def fail(self, why: str) -> InputError:
        return InputError(f"{self.filename}: not a DigitalMicrograph file: {why}")

    def need(self, nbytes: int, what: str) -> None:
        if nbytes < 0 or nbytes > self.n - self.pos:
            raise self.fail(
                f"{what} needs {nbytes:,} bytes at byte {self.pos:,} but "
                f"{max(self.n - self.pos, 0):,} remain (truncated or corrupt)"
            )

    def unpack(self, fmt: str, what: str) -> Any:
        size = struct.calcsize(fmt)
        self.need(size, what)
        v = struct.unpack_from(fmt, self.raw, self.pos)[0]
        self.pos += size
        return v

    def word(self, what: str) -> int:
        """A header-width unsigned integer: 4 bytes in DM3, 8 in DM4, always big-endian."""
        return self.unpack(">Q" if self.version == 4 else ">I", what)

    # -- structure -------------------------------------------------------------------------------

    def header(self) -> None:
        if self.n < 16:
            raise self.fail(f"{self.n} bytes, shorter than a header")
        self.version = struct.unpack_from(">i", self.raw, 0)[0]
        if self.version not in (3, 4):
            raise self.fail(f"version {self.version}, expected 3 or 4")
        self.pos = 4
        self.word("the root length")  # informative only: writers disagree on what it counts
        order = self.unpack(">i", "the byte order")
        if order not in (0, 1):
            raise self.fail(f"byte-order flag {order}, expected 0 or 1")
        self.endian = "<" if order == 1 else ">"

    def group(self, depth: int) -> TagGroup:
        if depth > MAX_DEPTH:
            raise self.fail(f"tag groups nested deeper than {MAX_DEPTH}")
        self.unpack(">B", "a group's sorted flag")
        self.unpack(">B", "a group's open flag")
        ntags = self.word("a group's tag count")
        # an entry takes at least 3 bytes (kind, label length): a count the bytes cannot hold is
        # refused before the loop, so a huge declared count costs nothing
        if ntags * 3 > self.n - self.pos:
            raise self.fail(f"a group declares {ntags:,} tags in {self.n - self.pos:,} bytes")
        g = TagGroup()
        for _ in range(ntags):
            self.tags += 1
            if self.tags > MAX_TAGS:
                raise self.fail(f"more than {MAX_TAGS:,} tags")
            kind = self.unpack(">B", "a tag's kind")
            nlabel = self.unpack(">H", "a tag's label length")
            self.need(nlabel, "a tag label")
            label = bytes(self.raw[self.pos : self.pos + nlabel]).decode("latin-1")
            self.pos += nlabel
            if self.version == 4:
                size = self.unpack(">Q", "a tag's size")
                self.need(size, "a tag")
            if kind == 20:
                g.entries.append((label, self.group(depth + 1)))
            elif kind == 21:
                g.entries.append((label, self.data(label)))
            else:
                raise self.fail(f"tag kind {kind} for {label!r}, expected 20 (group) or 21 (data)")
        return g

    def data(self, label: str) -> Any:
        self.need(4, "a data tag's delimiter")
        if bytes(self.raw[self.pos : self.pos + 4]) != b"%%%%":
            raise self.fail(f"data tag {label!r} lacks the %%%% delimiter")
        self.pos += 4
        ninfo = self.word("an info-array length")
        width = 8 if self.version == 4 else 4
        if ninfo < 1 or ninfo > MAX_INFO:
            raise self.fail(f"data tag {label!r} has an info array of {ninfo:,} words")
        self.need(ninfo * width, "an info array")
        info = [self.word("an info word") for _ in range(ninfo)]
        spec, used = self.spec(info, 0, label, 0)
        if used != ninfo:
            raise self.fail(f"data tag {label!r}: {ninfo - used} unused info words")
        nbytes = self.nbytes(spec)
        self.need(nbytes, f"the value of {label!r}")
        value = self.value(spec, label)
        self.pos += nbytes
        return value

    def spec(self, info: list[int], i: int, label: str, depth: int) -> tuple[tuple, int]:
        """The type described by ``info[i:]`` and the index after it.

        A type is ``("s", code)``, ``("str", nbytes)``, ``("struct", codes)`` or
        ``("arr", element, count)``.
        """
        if depth > 8:
            raise self.fail(f"data tag {label!r}: arrays nested too deep")

        def at(k: int) -> int:
            if k >= len(info):
                raise self.fail(f"data tag {label!r}: info array too short")
            return info[k]

        t = at(i)
        if t in SIMPLE:
            return ("s", t), i + 1
        if t == 18:
            return ("str", at(i + 1)), i + 2
        if t == 15:
            nfields = at(i + 2)
            if nfields < 1 or 3 + 2 * nfields > len(info) - i:
                raise self.fail(f"data tag {label!r}: a struct of {nfields:,} fields")
            codes = tuple(at(i + 4 + 2 * k) for k in range(nfields))
            bad = [c for c in codes if c not in SIMPLE]
            if bad:
                raise self.fail(f"data tag {label!r}: unknown struct field type {bad[0]}")
            return ("struct", codes), i + 3 + 2 * nfields
        if t == 20:
            elem, j = self.spec(info, i + 1, label, depth + 1)
            return ("arr", elem, at(j)), j + 1
        raise self.fail(f"data tag {label!r}: unknown type code {t}")

    def dtype(self, spec: tuple) -> np.dtype:
        e = self.endian
        if spec[0] == "s":
            return np.dtype(e + SIMPLE[spec[1]])
        if spec[0] == "str":
            return np.dtype(f"S{spec[1]}")
        if spec[0] == "struct":
            return np.dtype([(f"f{k}", e + SIMPLE[c]) for k, c in enumerate(spec[1])])
        return np.dtype((self.dtype(spec[1]), (spec[2],)))

    def nbytes(self, spec: tuple) -> int:
        """Bytes the value takes, in Python integers (no overflow, nothing allocated)."""
        if spec[0] == "s":
            return np.dtype(SIMPLE[spec[1]]).itemsize
        if spec[0] == "str":
            return spec[1]
        if spec[0] == "struct":
            return sum(np.dtype(SIMPLE[c]).itemsize for c in spec[1])
        return self.nbytes(spec[1]) * spec[2]

    def value(self, spec: tuple, label: str) -> Any:
        if spec[0] == "s":
            return np.frombuffer(self.raw, self.dtype(spec), 1, self.pos)[0].item()
        if spec[0] == "str":
            return bytes(self.raw[self.pos : self.pos + spec[1]]).decode("utf-8", "replace")
        if spec[0] == "struct":
            return tuple(np.frombuffer(self.raw, self.dtype(spec), 1, self.pos)[0].item())
        elem, count = spec[1], spec[2]
        if self.nbytes(elem) == 0:
            raise self.fail(f"data tag {label!r}: an array of empty elements")
        try:
            dt = self.dtype(elem)
        except (ValueError, TypeError, OverflowError):
            raise self.fail(f"data tag {label!r}: an unrepresentable array element") from None
        return DMArray(self.pos, count, dt)


def parse(raw: bytes, filename: str = "file.dm4") -> tuple[int, TagGroup]:
    """The version (3 or 4) and root tag group of a DM file; arrays stay in ``raw``.

    Raises
    ------
    InputError
        One line, ``"<file>: not a DigitalMicrograph file: <why>"``.
    """
    p = _Parser(raw, filename)
    p.header()
    root = p.group(0)
    return p.version, root


def text(value: Any, raw: bytes) -> str:
    """A tag value as text: DM stores most strings as arrays of UTF-16 code units (type 4)."""
    if isinstance(value, str):
        return value
    if isinstance(value, DMArray) and value.count <= 4096 and value.dtype.kind in "uiS":
        a = value.view(raw)
        if a.dtype.itemsize == 2:
            enc = "utf-16-le" if a.dtype.byteorder in ("<", "=") else "utf-16-be"
            return a.tobytes().decode(enc, "replace").rstrip("\x00")
        if a.dtype.itemsize == 1:
            return a.tobytes().decode("utf-8", "replace").rstrip("\x00")
    return ""


def _number(value: Any, default: float) -> float:
    return float(value) if isinstance(value, (int, float)) else default


def _image(img: TagGroup, raw: bytes, filename: str, index: int) -> dict[str, Any]:
    """One ImageList entry as the dict :func:`workbench.io.eels.from_rsciio` consumes."""
    where = f"image {index}"
    dims = img.get("ImageData/Dimensions")
    data = img.get("ImageData/Data")
    dtype_code = img.get("ImageData/DataType")
    if not isinstance(dims, TagGroup) or not isinstance(data, DMArray):
        raise InputError(f"{filename}: not a DigitalMicrograph file: {where} has no data")
    sizes = dims.values()
    if not sizes or not all(isinstance(s, int) and s >= 1 for s in sizes):
        raise InputError(f"{filename}: not a DigitalMicrograph file: {where} has bad dimensions")
    if dtype_code in UNSUPPORTED_IMAGE:
        raise DMUnsupported(
            f"{filename}: {where} holds DigitalMicrograph data type {dtype_code} "
            f"({UNSUPPORTED_IMAGE[dtype_code]}), which the built-in reader does not decode"
        )
    if dtype_code not in IMAGE_TYPES:
        raise InputError(
            f"{filename}: not a DigitalMicrograph file: {where} has unknown data type {dtype_code!r}"
        )
    order = data.dtype.byteorder if data.dtype.byteorder in "<>" else "<"
    dt = np.dtype(order + IMAGE_TYPES[dtype_code])
    nbytes = data.count * data.dtype.itemsize
    n = int(np.prod(sizes, dtype=object))
    if n * dt.itemsize != nbytes:
        raise InputError(
            f"{filename}: not a DigitalMicrograph file: {where} declares {n:,} values of "
            f"{dt.itemsize} bytes but holds {nbytes:,} bytes"
        )
    check_decoded(nbytes, filename, f"{where}")
    # DM lists dimensions fastest first (x, y, E...): C order reverses them
    arr = np.frombuffer(raw, dt, n, data.offset).reshape(tuple(sizes[::-1]))
    arr = arr.astype(dt.newbyteorder("="), copy=True)

    cal = img.get("ImageData/Calibrations/Dimension")
    cals = cal.values() if isinstance(cal, TagGroup) else []
    dm_axes = []
    for k, size in enumerate(sizes):
        c = cals[k] if k < len(cals) and isinstance(cals[k], TagGroup) else TagGroup()
        scale = _number(c.get("Scale"), 1.0)
        origin = _number(c.get("Origin"), 0.0)
        units = text(c.get("Units"), raw).strip()
        dm_axes.append(
            {"size": int(size), "offset": -origin * scale, "scale": scale, "units": units}
        )
    axes = dm_axes[::-1]

    md_signal = text(img.get("ImageTags/Meta Data/Signal"), raw).strip()
    fmt = text(img.get("ImageTags/Meta Data/Format"), raw).strip()
    units = [a["units"] for a in axes]
    if md_signal == "X-ray":
        signal_type = "EDS_TEM"
    elif md_signal == "CL" or img.get("ImageTags/Acquisition/Monarc Spectrometer") is not None:
        signal_type = "CL"
    elif md_signal == "EELS" or img.get("ImageTags/spim/eels") is not None or "eV" in units:
        signal_type = "EELS"
    else:
        signal_type = md_signal
    spim = fmt in ("Spectrum image", "Spectrum") or img.get("ImageTags/spim") is not None
    # which axes are signal axes, as DM means them: a 1-D image is a spectrum, a 2-D spectrum
    # image a line scan (signal last in DM's order, i.e. first here), otherwise an image stack
    # whose two fastest axes are the signal; a 3-D spectrum image is then made 1-D by a step
    navigate = [True] * len(axes)
    if len(axes) == 1 or (spim and len(axes) == 2):
        navigate[-1] = False
    else:
        navigate[-2:] = [False, False]
    to_spectrum = len(axes) > 2 and (fmt == "Spectrum image" or spim or units.count("eV") == 1)
    # names as RosettaSciIO gives them: the first axis in the signal's own unit is named for
    # it, the others x, y, z from the fastest
    special = {
        "EELS": ("eV", "Energy loss"),
        "CL": ("nm", "Wavelength"),
    }
    unit, name = special.get(signal_type, ("", ""))
    for i, a in enumerate(axes):
        a["navigate"] = navigate[i]
        a["name"] = ""
    if unit in units:
        axes[units.index(unit)]["name"] = name
    plain = [i for i, a in enumerate(axes) if not a["name"]]
    for i, name in zip(plain[::-1], ("x", "y", "z"), strict=False):
        axes[i]["name"] = name
    title = text(img.get("Name"), raw).strip()
    return {
        "data": arr,
        "axes": axes,
        "metadata": {
            "General": {"title": title},
            "Signal": {"signal_type": signal_type},
        },
        "original_metadata": {},
        "post_process": ["to_signal1D"] if to_spectrum else [],
        "mapping": {},
    }


def read_items(raw: bytes, filename: str = "file.dm4") -> list[dict[str, Any]]:
    """The images of a DM3/DM4 file (thumbnails skipped) as RosettaSciIO-style signal dicts.

    Each dict holds ``data`` (C order: DM's dimension list reversed), ``axes`` (array order,
    ``size``/``offset``/``scale``/``units``/``name``/``navigate``, with ``offset = -Origin *
    Scale``), ``metadata`` (``General.title``, ``Signal.signal_type``: "EELS" when the image's
    ``Meta Data/Signal`` says so or an axis is in eV) and ``post_process`` (``["to_signal1D"]``
    for a spectrum image stored energy-first, as RosettaSciIO asks).

    Raises
    ------
    InputError
        One line, for a file that is not a well-formed DM file or holds no image.
    DMUnsupported
        A well-formed file whose image data type is not decoded here.
    """
    raw = bytes(raw)
    _, root = parse(raw, filename)
    images = root.get("ImageList")
    if not isinstance(images, TagGroup) or not images.entries:
        raise InputError(f"{filename}: not a DigitalMicrograph file: no ImageList")
    thumbs = root.get("Thumbnails")
    skip = set()
    if isinstance(thumbs, TagGroup):
        skip = {t.get("ImageIndex") for t in thumbs.values() if isinstance(t, TagGroup)}
    entries = [(i, g) for i, g in enumerate(images.values()) if isinstance(g, TagGroup)]
    kept = [(i, g) for i, g in entries if i not in skip]
    if not isinstance(thumbs, TagGroup) and len(kept) > 1:
        # no thumbnail list: the first entry is the RGB preview when it is RGB
        if kept[0][1].get("ImageData/DataType") in (8, 23):
            kept = kept[1:]
    if not kept:
        raise InputError(f"{filename}: not a DigitalMicrograph file: only a thumbnail")
    return [_image(g, raw, filename, i) for i, g in kept]
