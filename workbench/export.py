"""Exports: figures (PNG/SVG/PDF), data (NPZ/HDF5/CSV) and run bundles (zip).

Figures go through plotly + kaleido, which drives the system Chromium; one kaleido server is
started per process on first use so later exports take ~0.3 s instead of ~2 s.

Short-lived processes (the CLI: one figure per call) would start a browser on every call, so
:func:`figure_bytes_shared` sends the figure to a *shared renderer* instead: one background process
per user and installation that keeps its kaleido server (and Chromium) warm, listens on a Unix
socket and exits after ``WORKBENCH_RENDERER_IDLE`` seconds (default 300) without a request. It
renders with the same ``plotly.io.to_image`` call on the same figure dict, so the image is the one
the app exports. ``WORKBENCH_RENDERER=inprocess`` turns it off; any failure falls back to
rendering in the calling process.
"""

from __future__ import annotations

import io
import json
import os
import struct
import sys
import threading
import warnings
import zipfile
from typing import Any

import numpy as np

FIGURE_FORMATS = ("png", "svg", "pdf")
DATA_FORMATS = ("npz", "h5", "csv")
MIME = {
    "png": "image/png",
    "svg": "image/svg+xml",
    "pdf": "application/pdf",
    "npz": "application/octet-stream",
    "h5": "application/x-hdf5",
    "csv": "text/csv",
    "zip": "application/zip",
    "json": "application/json",
    "html": "text/html",
    "nii.gz": "application/gzip",
}

_kaleido_lock = threading.Lock()
_kaleido_started = False


def _ensure_kaleido() -> None:
    global _kaleido_started
    if _kaleido_started:
        return
    import kaleido

    try:
        kaleido.start_sync_server(silence_warnings=True)
    except TypeError:  # older signature
        kaleido.start_sync_server()
    except RuntimeError:  # already running in this process
        pass
    _kaleido_started = True


def _styled(fig: Any, width: int | None, height: int | None) -> tuple[Any, int, int]:
    """The figure in the one workbench style (:func:`workbench.viz.style.style`, as the page
    draws it) and its export size: the figure's own ``layout.width``/``height`` when it sets
    them (the page's height; images keep 1:1 at any width), else 1000 × 450 px."""
    import plotly.graph_objects as go

    if isinstance(fig, go.Figure):
        from workbench.viz.style import style

        style(fig)
        width = width or fig.layout.width
        height = height or fig.layout.height
    return fig, int(width or 1000), int(height or 450)


def figure_bytes(
    fig: Any,
    fmt: str = "png",
    width: int | None = None,
    height: int | None = None,
    scale: float = 2,
) -> bytes:
    """Render a plotly figure to PNG, SVG or PDF bytes, in the style the page shows it.

    ``width``/``height`` are CSS pixels (PDF and SVG keep them as 1/96 in); the PNG has
    ``scale`` times as many pixels. By default the figure's own size, else 1000 × 450.
    """
    if fmt not in FIGURE_FORMATS:
        raise ValueError(f"figure format must be one of {FIGURE_FORMATS}")
    fig, width, height = _styled(fig, width, height)
    opts = {"fmt": fmt, "width": width, "height": height, "scale": scale if fmt == "png" else 1}
    return _render_dict(fig, opts)


# ---- the shared renderer ------------------------------------------------------------------


def renderer_address() -> str:
    """The Unix socket of this user's renderer for this interpreter and this ``workbench``.

    Keyed by the interpreter and the package's path, so two checkouts or environments never
    render each other's figures with the wrong code; kept in the temp folder because socket
    paths are limited to ~100 characters.
    """
    import hashlib
    import tempfile

    import workbench

    if os.environ.get("WORKBENCH_RENDERER_SOCKET"):  # a private renderer (the start-up bench)
        return os.environ["WORKBENCH_RENDERER_SOCKET"]
    key = f"{sys.executable}\0{os.path.abspath(workbench.__file__)}\0{workbench.__version__}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return os.path.join(tempfile.gettempdir(), f"workbench-render-{uid}-{digest}.sock")


def _send(sock: Any, *parts: bytes) -> None:
    for part in parts:
        sock.sendall(struct.pack("!Q", len(part)) + part)


def _recv_exact(sock: Any, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            raise ConnectionError("renderer closed the connection")
        buf += chunk
    return bytes(buf)


def _recv(sock: Any, limit: int = 1 << 30) -> bytes:
    (n,) = struct.unpack("!Q", _recv_exact(sock, 8))
    if n > limit:
        raise ConnectionError(f"message of {n} bytes exceeds {limit}")
    return _recv_exact(sock, n)


def _render_dict(fig: Any, opts: dict[str, Any]) -> bytes:
    """The one rendering call, in process or in the renderer: plotly.io.to_image on kaleido."""
    import plotly.io as pio

    with _kaleido_lock:  # kaleido's sync server is not re-entrant
        _ensure_kaleido()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pio.to_image(
                fig,
                format=opts["fmt"],
                width=opts["width"],
                height=opts["height"],
                scale=opts["scale"],
                validate=False,
            )


def serve_renderer(address: str | None = None, idle_s: float | None = None) -> None:
    """Run the shared renderer until ``idle_s`` seconds pass without a request.

    Requests are served one at a time (kaleido's server is not re-entrant); clients wait in the
    socket's backlog. A second renderer started for the same address exits at once.
    """
    import fcntl
    import socket

    address = address or renderer_address()
    if idle_s is None:
        idle_s = float(os.environ.get("WORKBENCH_RENDERER_IDLE", "300"))
    with open(address + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one process at a time checks and binds the address
        if os.path.exists(address):
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(address)
                return  # a live renderer already serves this address
            except OSError:
                os.unlink(address)  # left behind by a renderer that died
            finally:
                probe.close()
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)  # the socket is the user's alone
        try:
            srv.bind(address)
        finally:
            os.umask(old)
        srv.listen(64)
    srv.settimeout(idle_s)
    try:
        while True:
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                break
            with conn:
                conn.settimeout(120)
                try:
                    opts = json.loads(_recv(conn, 1 << 16))
                    fig = json.loads(_recv(conn))
                    _send(conn, b"ok", _render_dict(fig, opts))
                except Exception as exc:  # a bad figure must not end the renderer
                    try:
                        _send(conn, b"error", f"{type(exc).__name__}: {exc}".encode())
                    except OSError:
                        pass
    finally:
        with open(address + ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            srv.close()
            try:
                os.unlink(address)
            except FileNotFoundError:
                pass
        if _kaleido_started:
            import kaleido

            kaleido.stop_sync_server(silence_warnings=True)


def _spawn_renderer(address: str) -> None:
    import subprocess

    import workbench

    root = os.path.dirname(os.path.dirname(os.path.abspath(workbench.__file__)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    code = f"from workbench.export import serve_renderer; serve_renderer({address!r})"
    subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # outlives the CLI call and ignores its Ctrl-C
        close_fds=True,
        env=env,
        cwd=root,
    )


def _ask_renderer(address: str, opts: dict[str, Any], fig_json: bytes, wait_s: float) -> bytes:
    import socket
    import time

    t_end = time.monotonic() + wait_s
    while True:
        if hasattr(os, "getuid") and os.path.exists(address):
            if os.stat(address).st_uid != os.getuid():  # a socket planted by another user
                raise PermissionError(f"{address} is not owned by this user")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(address)
            break
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            if time.monotonic() > t_end:
                raise
            time.sleep(0.02)
    with sock:
        sock.settimeout(180)  # the first figure waits for Chromium to start
        _send(sock, json.dumps(opts).encode(), fig_json)
        status, payload = _recv(sock, 1 << 16), _recv(sock)
    if status != b"ok":
        raise RuntimeError(payload.decode(errors="replace"))
    return payload


def figure_bytes_shared(
    fig: Any,
    fmt: str = "png",
    width: int | None = None,
    height: int | None = None,
    scale: float = 2,
) -> bytes:
    """:func:`figure_bytes` through the shared renderer (started on first use): for short-lived
    processes such as the CLI, which would otherwise start a browser per call."""
    if fmt not in FIGURE_FORMATS:
        raise ValueError(f"figure format must be one of {FIGURE_FORMATS}")
    fig, width, height = _styled(fig, width, height)
    opts = {"fmt": fmt, "width": width, "height": height, "scale": scale if fmt == "png" else 1}
    if os.environ.get("WORKBENCH_RENDERER", "shared") == "shared" and sys.platform != "win32":
        fig_json = fig if isinstance(fig, (bytes, str)) else fig.to_json()
        fig_json = fig_json.encode() if isinstance(fig_json, str) else fig_json
        address = renderer_address()
        try:
            return _ask_renderer(address, opts, fig_json, wait_s=0)
        except (FileNotFoundError, ConnectionRefusedError):
            try:
                _spawn_renderer(address)
                return _ask_renderer(address, opts, fig_json, wait_s=20)
            except Exception:
                pass
        except Exception:
            pass
    return figure_bytes(fig, fmt, width, height, scale)


def _flat(arrays: dict[str, Any]) -> dict[str, np.ndarray]:
    out = {}
    for k, v in arrays.items():
        if v is None:
            continue
        a = np.asarray(v)
        if a.dtype == object:
            continue
        out[k] = a
    return out


def npz_bytes(arrays: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **_flat(arrays))
    return buf.getvalue()


def hdf5_bytes(arrays: dict[str, Any], attrs: dict[str, Any] | None = None) -> bytes:
    import h5py

    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        for k, a in _flat(arrays).items():
            f.create_dataset(k, data=a, compression="gzip" if a.size > 1024 else None)
        for k, v in (attrs or {}).items():
            f.attrs[k] = v if isinstance(v, (int, float, str)) else json.dumps(v, default=str)
    return buf.getvalue()


def csv_bytes(array: Any, header: list[str] | None = None) -> bytes:
    """A 1-D or 2-D array as CSV (complex arrays as magnitude)."""
    a = np.asarray(array)
    if np.iscomplexobj(a):
        a = np.abs(a)
    if a.ndim == 0:
        a = a.reshape(1, 1)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim > 2:
        raise ValueError(f"CSV holds 1-D or 2-D arrays; this one has shape {a.shape}")
    buf = io.StringIO()
    np.savetxt(buf, a, delimiter=",", header=",".join(header) if header else "", comments="")
    return buf.getvalue().encode()


def table_csv_bytes(rows: list[dict[str, Any]]) -> bytes:
    """A list of dicts (a metrics table) as CSV."""
    import csv

    cols: list[str] = []
    for r in rows:
        cols += [c for c in r if c not in cols]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols)
    w.writeheader()
    for r in rows:
        w.writerow(r)
    return buf.getvalue().encode()


def data_bytes(arrays: dict[str, Any], fmt: str, primary: str = "output") -> bytes:
    """Arrays as NPZ, HDF5, or (the primary array) CSV."""
    if fmt == "npz":
        return npz_bytes(arrays)
    if fmt == "h5":
        return hdf5_bytes(arrays)
    if fmt == "csv":
        return csv_bytes(arrays[primary])
    raise ValueError(f"data format must be one of {DATA_FORMATS}")


def run_bundle(store: Any, run_id: str, figures: bool = True) -> bytes:
    """A zip with the run's params, metrics, versions, arrays and its figure (PNG + SVG)."""
    from workbench.registry import get_domain, resolve
    from workbench.store import result_to_arrays

    info = store.get(run_id)
    result = store.load_result(run_id)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("run.json", json.dumps(info.as_dict(), indent=2, default=str))
        z.writestr("params.json", json.dumps(info.params, indent=2, default=str))
        z.writestr("metrics.json", json.dumps(result.metrics, indent=2, default=str))
        z.writestr("versions.json", json.dumps(info.versions, indent=2, default=str))
        arrays = {k: v for k, v in result_to_arrays(result).items() if k != "__json__"}
        z.writestr("result.npz", npz_bytes(arrays))
        if figures and result.output.size:
            try:
                problem = store.load_problem(info.problem_id)
                fig = resolve(get_domain(info.domain).figure)(problem, result)
                z.writestr("figure.png", figure_bytes(fig, "png"))
                z.writestr("figure.svg", figure_bytes(fig, "svg"))
            except Exception as exc:  # a bundle without a figure is still a bundle
                z.writestr("figure_error.txt", f"{type(exc).__name__}: {exc}")
    return buf.getvalue()
