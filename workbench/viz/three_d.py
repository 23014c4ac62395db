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
            pl.add_volume(
                img,
                scalars="value",
                cmap=layer["cmap"],
                opacity=layer["opacity"],
                clim=layer.get("clim"),
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
            pl.add_legend(bcolor="white", size=(0.14, 0.07))
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
