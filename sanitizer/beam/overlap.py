"""DoFns whose elements are worked on by background threads while the runner reads the next ones.

A DoFn's ``process`` runs on the runner's thread, one element after another: the read of the next batch
waits for the work on this one. :class:`OverlappedDoFn` hands each element to a small pool instead and
emits a batch's outputs once its work is done, oldest first (so the outputs come in the order a plain
DoFn would give them), holding at most ``MAX_IN_FLIGHT`` elements. Everything is flushed in
``finish_bundle``, so no output outlives its bundle. The work must be safe to run on several threads at
once; numpy, Arrow and BLAS release the interpreter while they compute, so two batches keep two cores busy.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import apache_beam as beam
from apache_beam.pvalue import TaggedOutput

from sanitizer.beam.metrics import MetricUpdates


class OverlappedDoFn(beam.DoFn):
    """Subclasses implement ``work(element, *side_inputs) -> list`` of outputs (values, TaggedOutputs, or
    MetricUpdates, which are applied on the runner's thread, where Beam's metrics context is) and call
    :meth:`overlapped` from ``process``."""

    MAX_IN_FLIGHT = 3
    WORKERS = 2

    def setup(self):
        self._workers = ThreadPoolExecutor(self.WORKERS)

    def teardown(self):
        workers = getattr(self, "_workers", None)
        if workers is not None:
            workers.shutdown(wait=False)

    def start_bundle(self):
        self._pending = []

    def work(self, element, *args) -> list:
        raise NotImplementedError

    def overlapped(self, window, timestamp, element, *args):
        """Submit ``element``'s work; yield the outputs of the finished elements at the head of the queue."""
        self._pending.append((self._workers.submit(self.work, element, *args), window, timestamp))
        while len(self._pending) > self.MAX_IN_FLIGHT or (self._pending and self._pending[0][0].done()):
            future, _, _ = self._pending.pop(0)
            for out in future.result():
                if isinstance(out, MetricUpdates):
                    out.apply()
                else:
                    yield out

    def finish_bundle(self):
        from apache_beam.utils.windowed_value import WindowedValue

        pending, self._pending = self._pending, []
        for future, window, timestamp in pending:
            for out in future.result():
                if isinstance(out, MetricUpdates):
                    out.apply()
                elif isinstance(out, TaggedOutput):
                    yield TaggedOutput(out.tag, WindowedValue(out.value, timestamp, [window]))
                else:
                    yield WindowedValue(out, timestamp, [window])
