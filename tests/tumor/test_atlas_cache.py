"""The on-disk cache of the atlas grids (``workbench.physics.tumor.atlas``).

A cache file must give back exactly the arrays that were built (bit for bit), and a file that is
not exactly what this key and grid would write -- truncated, garbage, another key, another grid,
altered arrays, a pickle -- must be ignored and rebuilt, never trusted. The logic is exercised
with small stand-in maps (a build patched in); one test builds a real grid.
"""

import json
import zipfile

import numpy as np
import pytest

from workbench.physics.tumor import atlas as A


@pytest.fixture
def clean_caches():
    """The per-process cache of the maps emptied before and after: the test sees the disk
    afresh and leaves no stand-in maps behind (``load_atlas``'s own entries stay valid)."""
    A._grid_maps.cache_clear()
    yield
    A._grid_maps.cache_clear()


def _maps(n, seed=0):
    rng = np.random.default_rng(seed)
    return tuple(rng.random((n, n, n), dtype=np.float32) for _ in range(3))


def test_round_trip_is_bit_exact(tmp_path):
    maps = _maps(9)
    path = tmp_path / "c" / "atlas9.npz"
    assert A.write_atlas_cache(path, 9, "k" * 64, maps)
    got = A.read_atlas_cache(path, 9, "k" * 64)
    assert got is not None
    for a, b in zip(maps, got, strict=True):
        assert b.dtype == np.float32 and np.array_equal(a, b)
    assert not list(path.parent.glob(".tmp-*"))  # the temporary file was renamed, not left


def _rewrite(path, **change):
    """The cache file with some members replaced (``None`` drops one)."""
    with np.load(path, allow_pickle=False) as z:
        members = {k: z[k] for k in z.files}
    for k, v in change.items():
        if v is None:
            members.pop(k)
        else:
            members[k] = v
    np.savez(path, **members)


@pytest.mark.parametrize(
    "damage",
    ["missing", "truncated", "garbage", "other key", "other grid", "altered array", "no meta",
     "extra member", "pickled meta", "float64"],
)  # fmt: skip
def test_damaged_or_foreign_file_is_not_trusted(tmp_path, damage):
    key, n = "a" * 64, 9
    maps = _maps(n)
    path = tmp_path / "atlas9.npz"
    A.write_atlas_cache(path, n, key, maps)
    if damage == "missing":
        path.unlink()
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "garbage":
        path.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 8)
    elif damage == "other key":
        key = "b" * 64
    elif damage == "other grid":
        n = 10
    elif damage == "altered array":  # the stored sha256 no longer matches
        gm = maps[0].copy()
        gm[1, 2, 3] = np.nextafter(gm[1, 2, 3], np.float32(2))
        _rewrite(path, gm=gm)
    elif damage == "no meta":
        _rewrite(path, meta=None)
    elif damage == "extra member":
        _rewrite(path, extra=np.zeros(3))
    elif damage == "pickled meta":  # an object array would need unpickling: refused
        _rewrite(path, meta=np.array([{"key": key}], dtype=object))
    elif damage == "float64":  # the right values in another dtype, with a matching digest
        m64 = tuple(m.astype(np.float64) for m in maps)
        meta = {"key": key, "n": n, "recipe": A.ATLAS_RECIPE, "sha256": A._payload_digest(maps)}
        _rewrite(path, gm=m64[0], wm=m64[1], t1=m64[2], meta=np.array(json.dumps(meta)))
    assert A.read_atlas_cache(path, n, key) is None


def test_unwritable_cache_folder_costs_only_the_rebuild(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    assert not A.write_atlas_cache(blocker / "cache" / "atlas9.npz", 9, "k" * 64, _maps(9))
    assert not list(tmp_path.glob("**/.tmp-*"))


def test_miss_builds_and_writes_then_hit_reads(tmp_path, monkeypatch, clean_caches):
    """A miss builds once and writes the file; the next process reads it without building; a
    damaged file is rebuilt and replaced. A read-only home still gets its maps."""
    n = 9
    built = []

    def fake_build(m):
        built.append(m)
        return _maps(m, seed=len(built))

    monkeypatch.setattr(A, "build_grid_maps", fake_build)
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path / "home"))
    first = A._grid_maps(n)
    path = A.atlas_cache_path(n, A.atlas_cache_key(n))
    assert built == [n] and path.is_file()
    assert all(not a.flags.writeable for a in first)  # shared arrays cannot be changed in place

    A._grid_maps.cache_clear()  # a new process
    again = A._grid_maps(n)
    assert built == [n]  # read, not built
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))

    path.write_bytes(b"not a zip file")
    A._grid_maps.cache_clear()
    rebuilt = A._grid_maps(n)
    assert built == [n, n]
    assert zipfile.is_zipfile(path)
    assert A.read_atlas_cache(path, n, A.atlas_cache_key(n)) is not None
    assert all(np.array_equal(a, b) for a, b in zip(rebuilt, A._grid_maps(n), strict=True))

    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("WORKBENCH_HOME", str(blocker))
    A._grid_maps.cache_clear()
    assert A._grid_maps(n)[0].shape == (n, n, n) and built == [n, n, n]


def test_key_names_the_templates_and_the_grid():
    k = A.atlas_cache_key(32)
    assert len(k) == 64 and k == A.atlas_cache_key(32)
    assert k != A.atlas_cache_key(64)
    assert A.atlas_cache_path(32, k).name == f"atlas32_{k[:16]}.npz"


def test_real_grid_from_the_cache_equals_the_build(tmp_path, monkeypatch, clean_caches):
    """The 32^3 maps read back from the cache are the built ones, bit for bit (GM, WM, T1)."""
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path / "home"))
    builds = []
    real_build = A.build_grid_maps

    def counted(n):
        builds.append(n)
        return real_build(n)

    monkeypatch.setattr(A, "build_grid_maps", counted)
    built = A._grid_maps(32)  # a miss: built, then written
    A._grid_maps.cache_clear()
    read = A._grid_maps(32)
    assert builds == [32]
    for a, b in zip(built, read, strict=True):
        assert b.dtype == np.float32 and np.array_equal(a, b)
    gm, wm, _ = read
    assert float(gm.min()) >= 0 and float((gm + wm).max()) <= 1.0 + 1e-6
    atlas = A.load_atlas(32, with_t1=False)
    assert atlas.t1 is None and np.array_equal(atlas.gm, gm)


def test_no_home_folder_still_builds(monkeypatch, clean_caches):
    """Without a home folder (``Path.home()`` fails in some containers) the maps are built and
    nothing is cached."""
    import workbench.store

    def no_home():
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(workbench.store, "default_home", no_home)
    monkeypatch.setattr(A, "build_grid_maps", lambda m: _maps(m))
    assert A._grid_maps(9)[1].shape == (9, 9, 9)
