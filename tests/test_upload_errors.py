"""Every bad upload gets one message that names the file once, and the next file's message
replaces it (AppTest of the domain pages' uploader)."""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 120

# a file the domain cannot read (for tumour an .h5, which its uploader used to reject in the
# browser with an empty red chip), then a corrupt .npz
CASES = {
    "tumor": ("scan.h5", b"\x89HDF\r\n\x1a\n" + b"\0" * 64),
    "ot": ("scan.h5", b"\x89HDF\r\n\x1a\n" + b"\0" * 64),
    "mri": ("scan.h5", b"not an hdf5 file" * 8),
}
CORRUPT_NPZ = ("broken.npz", b"PK\x03\x04" + b"\x13" * 200)


def _errors(at):
    return [e.value for e in at.error]


@pytest.mark.parametrize(
    "domain",
    [pytest.param(d, marks=pytest.mark.slow) if d == "tumor" else d for d in sorted(CASES)],
)  # the tumour page builds its sample patient first (slow on a busy machine)
def test_one_message_per_bad_file_and_the_next_file_replaces_it(domain, tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path))
    at = AppTest.from_file(str(ROOT / "app_pages" / f"{domain}.py"), default_timeout=TIMEOUT)
    at.run()
    at.radio(key=f"wb.{domain}.picker.source").set_value("Upload").run()
    assert not at.exception
    up = at.file_uploader(key=f"wb.{domain}.picker.upload")
    name, data = CASES[domain]
    up.upload(name, data, "application/octet-stream").run()
    assert not at.exception
    errs = _errors(at)
    assert len(errs) == 1, errs
    assert errs[0].count(name) == 1 and len(errs[0]) > len(name) + 5, errs
    name2, data2 = CORRUPT_NPZ
    at.file_uploader(key=f"wb.{domain}.picker.upload").upload(
        name2, data2, "application/octet-stream"
    ).run()
    errs = _errors(at)
    assert len(errs) == 1 and errs[0].count(name2) == 1 and name not in errs[0], errs
    assert "pickle" not in errs[0].lower(), errs  # numpy's "pickled (object) data" text
