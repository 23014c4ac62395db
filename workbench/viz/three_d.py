"""3D scenes: a small serialisable description rendered by pyvista in a child process.

A :class:`Scene` is a list of layers (isosurfaces, volumes, orthogonal slices, height surfaces)
over arrays. It renders off screen to PNG and exports a self-contained vtk.js HTML view. Both
happen in a child process (``python -m workbench.viz.three_d``): pyvista's HTML export fails in
Streamlit's script thread (it needs the main thread's event loop), and a crash in a GL driver
must not take the server down.

Example
-------
>>> vol = np.random.default_rng(0).random((16, 16, 16))      # doctest: +SKIP
>>> scene = Scene(title="demo").isosurface(vol, 0.5, color="tomato")  # doctest: +SKIP
>>> png = scene.to_png()                                      # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class Scene:
    """Layers over arrays with a common voxel ``spacing`` and ``origin`` (x, y, z order)."""

    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    title: str = ""
    background: str = "white"
    layers: list[dict[str, Any]] = field(default_factory=list)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def _add(self, kind: str, arrays: dict[str, np.ndarray], **opts: Any) -> Scene:
        i = len(self.layers)
        keys = {}
        for k, a in arrays.items():
            key = f"l{i}_{k}"
            self.arrays[key] = np.ascontiguousarray(a, dtype=np.float32)
            keys[k] = key
        self.layers.append({"kind": kind, "arrays": keys, **opts})
        return self

    def isosurface(
        self,
        volume: np.ndarray,
        level: float,
        color: str = "red",
        opacity: float = 1.0,
        name: str = "",
    ) -> Scene:
        """The surface ``volume == level`` (marching cubes), e.g. a tumour core at 0.5."""
        return self._add(
            "isosurface",
            {"volume": volume},
            level=float(level),
            color=color,
            opacity=float(opacity),
            name=name,
        )

    def volume(
        self,
        volume: np.ndarray,
        cmap: str = "viridis",
        opacity: str = "sigmoid",
        clim: tuple | None = None,
        name: str = "",
    ) -> Scene:
        """Direct volume rendering with a transfer-function opacity (``"sigmoid"``, ``"linear"``...)."""
        return self._add(
            "volume", {"volume": volume}, cmap=cmap, opacity=opacity, clim=clim, name=name
        )

    def slices(
        self, volume: np.ndarray, cmap: str = "gray", clim: tuple | None = None, name: str = ""
    ) -> Scene:
        """Three orthogonal slices through the centre."""
        return self._add("slices", {"volume": volume}, cmap=cmap, clim=clim, name=name)

    def surface(
        self,
        z: np.ndarray,
        x: np.ndarray | None = None,
        y: np.ndarray | None = None,
        cmap: str = "viridis",
        warp: float = 1.0,
        name: str = "",
    ) -> Scene:
        """A height field ``z[i, j]`` over the grid ``x[j]``, ``y[i]`` (e.g. a 2-D PDE solution)."""
        z = np.asarray(z)
        x = np.arange(z.shape[1]) if x is None else np.asarray(x)
        y = np.arange(z.shape[0]) if y is None else np.asarray(y)
        return self._add(
            "surface", {"z": z, "x": x, "y": y}, cmap=cmap, warp=float(warp), name=name
        )

    # ---- serialisation --------------------------------------------------------------------
    def to_npz_bytes(self) -> bytes:
        head = {
            "spacing": list(self.spacing),
            "origin": list(self.origin),
            "title": self.title,
            "background": self.background,
            "layers": self.layers,
        }
        buf = io.BytesIO()
        np.savez_compressed(buf, __scene__=np.array(json.dumps(head)), **self.arrays)
        return buf.getvalue()

    @classmethod
    def from_npz(cls, path: str | os.PathLike) -> Scene:
        with np.load(path, allow_pickle=False) as z:
            head = json.loads(str(z["__scene__"]))
            arrays = {k: z[k] for k in z.files if k != "__scene__"}
        return cls(
            spacing=tuple(head["spacing"]),
            origin=tuple(head["origin"]),
            title=head["title"],
            background=head["background"],
            layers=head["layers"],
            arrays=arrays,
        )

    def key(self) -> str:
        return hashlib.sha256(self.to_npz_bytes()).hexdigest()[:16]

    # ---- rendering (child process) --------------------------------------------------------
    def render(
        self,
        png: bool = True,
        html: bool = True,
        window: tuple[int, int] = (900, 700),
        timeout: float = 180,
    ) -> dict[str, bytes]:
        """Render in a child process; returns ``{"png": bytes, "html": bytes}`` as requested."""
        with tempfile.TemporaryDirectory(prefix="wb-scene-") as tmp:
            src = Path(tmp) / "scene.npz"
            src.write_bytes(self.to_npz_bytes())
            cmd = [
                sys.executable,
                "-m",
                "workbench.viz.three_d",
                str(src),
                tmp,
                f"{window[0]}x{window[1]}",
            ]
            if png:
                cmd.append("--png")
            if html:
                cmd.append("--html")
            env = {
                **os.environ,
                "VTK_DEFAULT_OPENGL_WINDOW": "vtkEGLRenderWindow",
                "PYVISTA_OFF_SCREEN": "true",
            }
            proc = subprocess.run(cmd, capture_output=True, timeout=timeout, env=env)
            if proc.returncode != 0:
                raise RuntimeError(
                    "3D rendering failed: " + proc.stderr.decode(errors="replace")[-800:]
                )
            out = {}
            for fmt in ("png", "html"):
                p = Path(tmp) / f"scene.{fmt}"
                if p.exists():
                    out[fmt] = p.read_bytes()
            return out

    def to_png(self, window: tuple[int, int] = (900, 700)) -> bytes:
        return self.render(png=True, html=False, window=window)["png"]

    def to_html(self) -> bytes:
        return self.render(png=False, html=True)["html"]


_FALLBACK_JS = """<script>
/* workbench: show the server-rendered PNG when this browser's WebGL cannot draw the scene */
(function () {
  var PNG = "data:image/png;base64,%s";
  var done = false;
  function fallback(why) {
    if (done) return;
    done = true;
    var show = function () {
      document.body.innerHTML = '<img id="wb-fallback" alt="3D view (server-rendered)" src="' +
        PNG + '" style="display:block;max-width:100%%;max-height:92vh;margin:auto">' +
        '<p style="font:12px sans-serif;color:#555;text-align:center">Interactive 3D view ' +
        'unavailable in this browser (' + why + '): server-rendered image, same colours.</p>';
    };
    if (document.body) show(); else window.addEventListener("DOMContentLoaded", show);
  }
  var orig = HTMLCanvasElement.prototype.getContext;
  HTMLCanvasElement.prototype.getContext = function (type, attrs) {
    if (type && String(type).indexOf("webgl") === 0) {
      attrs = Object.assign({}, attrs || {}, {preserveDrawingBuffer: true});
    }
    var ctx = orig.call(this, type, attrs);
    if (!ctx && type && String(type).indexOf("webgl") === 0) fallback("no WebGL context");
    return ctx;
  };
  var probe = document.createElement("canvas");
  if (!(orig.call(probe, "webgl2") || orig.call(probe, "webgl"))) {
    fallback("no WebGL");
    return;
  }
  window.addEventListener("webglcontextlost", function () { fallback("WebGL context lost"); },
                          true);
  window.addEventListener("error", function (e) {
    if (/gl|shader|texture|context/i.test(String(e && e.message))) fallback("WebGL error");
  });
  /* a scene drawn blank (only the colour bar): nothing but background in the frame's centre */
  setTimeout(function () {
    if (done) return;
    var cs = Array.prototype.slice.call(document.querySelectorAll("canvas"));
    if (!cs.length) { fallback("nothing drawn"); return; }
    cs.sort(function (a, b) { return b.width * b.height - a.width * a.height; });
    var cv = cs[0];
    try {
      var t = document.createElement("canvas");
      t.width = 64; t.height = 64;
      var g = t.getContext("2d");
      g.drawImage(cv, 0, 0, 64, 64);
      var d = g.getImageData(0, 0, 64, 64).data, n = 0;
      var bg = [d[0], d[1], d[2]];
      for (var y = 16; y < 48; y++) for (var x = 10; x < 44; x++) {
        var i = 4 * (64 * y + x);
        if (Math.abs(d[i] - bg[0]) + Math.abs(d[i + 1] - bg[1]) + Math.abs(d[i + 2] - bg[2]) > 24) n++;
      }
      if (n < 12) fallback("blank render");
    } catch (err) { /* a tainted canvas: cannot tell, keep the interactive view */ }
  }, %d);
})();
</script>
"""


def with_png_fallback(html: bytes, png: bytes, probe_ms: int = 6000) -> bytes:
    """The vtk.js page ``html`` with a guard that swaps in the server-rendered ``png`` when the
    browser's WebGL fails: no WebGL context, a lost context, a GL error, or a frame whose centre
    is still only background ``probe_ms`` after load (the blank EELS volume of issue 23).

    The guard runs before vtk.js (it asks for ``preserveDrawingBuffer`` so the frame can be read
    back); the PNG is rendered from the same scene with the same colour range.
    """
    import base64

    script = (_FALLBACK_JS % (base64.b64encode(png).decode(), int(probe_ms))).encode()
    low = html[:4096].lower()
    at = low.find(b"<head>")
    if at >= 0:
        at += len(b"<head>")
    else:
        at = low.find(b"<script")
        at = 0 if at < 0 else at
    return html[:at] + script + html[at:]


def _plotter(scene: Scene, window: tuple[int, int]) -> Any:
    import pyvista as pv
    import pyvista.plotting  # noqa: F401  (pyvista imports plotting lazily)

    pl = pv.Plotter(off_screen=True, window_size=list(window))
    pl.set_background(scene.background)
    for layer in scene.layers:
        arr = {k: scene.arrays[v] for k, v in layer["arrays"].items()}
        kind = layer["kind"]
        if kind == "surface":
            xx, yy = np.meshgrid(arr["x"], arr["y"])
            z = arr["z"]
            grid = pv.StructuredGrid(xx, yy, z * layer["warp"])
            grid["value"] = z.ravel(order="F")
            pl.add_mesh(grid, scalars="value", cmap=layer["cmap"], show_scalar_bar=True)
            continue
        vol = arr["volume"]
        img = pv.ImageData(dimensions=vol.shape, spacing=scene.spacing, origin=scene.origin)
        img.point_data["value"] = vol.ravel(order="F")
        if kind == "isosurface":
            if not (np.nanmin(vol) < layer["level"] < np.nanmax(vol)):
                continue  # nothing crosses the level: an empty layer, not an error
            mesh = img.contour([layer["level"]], scalars="value")
            if mesh.n_points:
                pl.add_mesh(
                    mesh,
                    color=layer["color"],
                    opacity=layer["opacity"],
                    smooth_shading=True,
                    label=layer["name"] or None,
                )
        elif kind == "volume":
            # an explicit colour range (the layer's, else the data's) so the PNG and the
            # vtk.js view map the same values to the same colours; the bar inside the frame
            clim = layer.get("clim") or [float(np.nanmin(vol)), float(np.nanmax(vol))]
            pl.add_volume(
                img,
                scalars="value",
                cmap=layer["cmap"],
                opacity=layer["opacity"],
                clim=clim,
                scalar_bar_args={
                    "title": layer.get("name") or "value",
                    "vertical": True,
                    "position_x": 0.86,
                    "position_y": 0.15,
                    "width": 0.06,
                    "height": 0.6,
                    "title_font_size": 12,
                    "label_font_size": 10,
                    "color": "black",
                    "fmt": "%.2g",
                },
            )
        elif kind == "slices":
            pl.add_mesh(
                img.slice_orthogonal(),
                scalars="value",
                cmap=layer["cmap"],
                clim=layer.get("clim"),
                show_scalar_bar=False,
            )
    if scene.title:
        pl.add_text(scene.title, font_size=10, color="black")
    if any(layer.get("name") and layer["kind"] == "isosurface" for layer in scene.layers):
        try:
            pl.add_legend(bcolor="white", size=(0.22, 0.08), loc="upper left")
        except Exception:  # legend without labelled actors
            pass
    pl.show_axes()
    pl.camera_position = "iso"
    return pl


def _main(argv: list[str]) -> int:
    src, outdir, window = argv[0], Path(argv[1]), tuple(int(v) for v in argv[2].split("x"))
    scene = Scene.from_npz(src)
    pl = _plotter(scene, window)
    if "--png" in argv:
        pl.screenshot(str(outdir / "scene.png"))
    if "--html" in argv:
        pl.export_html(str(outdir / "scene.html"))
    pl.close()
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
