"""How a worker uses its cores: one thread per library call, many calls side by side; heavy imports early.

A scoring worker runs batches side by side (and on Dataflow one DoFn thread
per core), and the fit stage fits detectors side by side; a library that also
starts a thread per core oversubscribes the cores. Measured on the 1M-row
default bench: 60.2 s with the libraries' own threads, 56.3-56.7 s without. Results do
not depend on the core count either, since every BLAS reduction runs in one
order.
"""

from __future__ import annotations

import sys
import threading

WARM_MODULES = ("faiss", "sklearn.linear_model", "sklearn.ensemble", "sklearn.neighbors", "torch")
_warm: threading.Thread | None = None
_warm_lock = threading.Lock()
_limits = None  # threadpoolctl's limiter, to restore the original BLAS/OpenMP pools
_faiss_threads: int | None = None
_torch_threads: int | None = None


def one_thread_per_library_call() -> None:
    """faiss, BLAS/OpenMP and torch each run single-threaded in this process, until
    :func:`restore_library_threads` (``sanitize run`` and ``sanitizer.run`` call it when the job ends)."""
    global _limits, _faiss_threads, _torch_threads
    with _warm_lock:
        try:
            import faiss

            if _faiss_threads is None:
                _faiss_threads = faiss.omp_get_max_threads()
            faiss.omp_set_num_threads(1)
        except ImportError:  # pragma: no cover - faiss is a dependency
            pass
        from threadpoolctl import threadpool_limits

        torch = sys.modules.get("torch")  # only a detector that uses torch imports it
        if torch is not None and _torch_threads is None:
            # Read before the OpenMP limit below (torch reports its OpenMP pool's size); a torch imported
            # only once the limit is in force gets the OpenMP pools' original size back.
            _torch_threads = torch.get_num_threads() if _limits is None else _openmp_default()
        if _limits is None:
            _limits = threadpool_limits(limits=1)  # in force for the process until restored
        if torch is not None:
            torch.set_num_threads(1)


def _openmp_default() -> int:
    import os

    info = getattr(_limits, "_original_info", None) or []
    counts = [lib.get("num_threads") for lib in info if lib.get("user_api") == "openmp" and lib.get("num_threads")]
    return max(counts) if counts else (os.cpu_count() or 1)


def restore_library_threads() -> None:
    """Give faiss, BLAS/OpenMP and torch back the threads they had (a training step in the same process
    after an in-process run must not be left single-threaded)."""
    global _limits, _faiss_threads, _torch_threads
    with _warm_lock:
        if _limits is not None:
            _limits.restore_original_limits()
            _limits = None
        if _faiss_threads is not None:
            import faiss

            faiss.omp_set_num_threads(_faiss_threads)
            _faiss_threads = None
        if _torch_threads is not None and "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(_torch_threads)
        _torch_threads = None


def _import_all() -> None:
    import importlib

    for name in WARM_MODULES:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - a missing optional module is the detector's to report
            pass


def start_warm_imports() -> None:
    """Import the detectors' libraries on a background thread (once per process) while the sample is read."""
    global _warm
    with _warm_lock:
        if _warm is None:
            _warm = threading.Thread(target=_import_all, name="sanitizer-warm-imports", daemon=True)
            _warm.start()


def finish_warm_imports() -> None:
    """Wait for :func:`start_warm_imports` (no two threads import the same modules at once)."""
    thread = _warm
    if thread is not None:
        thread.join()
