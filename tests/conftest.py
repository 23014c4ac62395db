"""Suite-wide settings: a private run store, one thread, passive OpenMP."""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
# the CLI's shared figure renderer (a warm Chromium) should not outlive the suite by minutes
os.environ.setdefault("WORKBENCH_RENDERER_IDLE", "30")

# AppTest.from_file("app_pages/<page>.py") puts app_pages/ first on sys.path while the page runs,
# and app_pages/ot.py is the OT page: a job thread that imported POT for the first time then
# (the batch page test's emd runs) bound `ot` to the page script for the rest of the session,
# and every later POT call failed. POT is imported once here, before any page runs.
import ot  # noqa: E402, F401
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _private_store(tmp_path, monkeypatch):
    """Every test gets its own WORKBENCH_HOME: nothing touches the user's store. Pages run in
    this process (AppTest) queue their jobs in threads: the app's default worker process would be
    one per test (one queue per home), each living, warmed, until the suite ends. The jobs'
    process backend has its own tests (tests/core/test_jobs.py), the browser tests' servers use
    it."""
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path / "wb-home"))
    monkeypatch.setenv("WORKBENCH_JOBS", "thread")


@pytest.fixture(autouse=True)
def _restore_main_module():
    """AppTest leaves ``sys.modules["__main__"]`` pointing at the page script it ran; a later
    test that starts "spawn" worker processes would then re-run that page in every worker
    (seen as a BrokenProcessPool in the tumour database build). Put the real one back."""
    import sys

    main = sys.modules.get("__main__")
    yield
    if main is not None:
        sys.modules["__main__"] = main


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip)
