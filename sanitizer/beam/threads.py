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


def one_thread_per_library_call() -> None:
    """faiss, BLAS/OpenMP and torch each run single-threaded in this process from now on."""
    try:
        import faiss

        faiss.omp_set_num_threads(1)
    except ImportError:  # pragma: no cover - faiss is a dependency
        pass
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)  # stays in force for the process
    if "torch" in sys.modules:  # only a detector that uses torch imports it
        sys.modules["torch"].set_num_threads(1)


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
