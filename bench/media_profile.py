"""Where the memory of one default ``sanitize run`` goes, over time: a timeline of its resident memory.

    python bench/media_profile.py --input FILE --label-column LABEL [--every 0.2] [--first ROWS]

Runs ``sanitize run`` in this process (the DirectRunner runs the pipeline here too) while a thread samples,
every ``--every`` seconds, the process's resident memory (``VmRSS``), Arrow's allocated bytes and the
run's stage. Every scored batch is logged when its scoring starts and ends (rows, memory), and so is every
batch the read stage emits, so a climb can be put against the stage and the batches in flight. Prints the
timeline (a line per stage change, per batch event and per 256 MiB climb), then the peak of each stage.

``--first ROWS`` runs on the first ROWS rows of FILE instead (written once beside it, same row groups), so
two sizes of one data set are compared on the same rows.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MIB = 2**20


def rss_bytes() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class Timeline:
    """Samples of (seconds, RSS, Arrow bytes, stage) and logged events."""

    def __init__(self, every: float, every_climb: bool = False):
        import pyarrow as pa

        self.pa, self.every, self.t0 = pa, every, time.perf_counter()
        self.lines: list[tuple[float, int, int, str]] = []
        self.peaks: dict[str, int] = {}
        self.stop = threading.Event()
        self.last = 0
        self.high = 0
        self.every_climb = every_climb
        self.stacks: list[tuple[float, int, list[str]]] = []

    def stage(self) -> str:
        from sanitizer.runs import progress

        return progress._stage or "-"

    def note(self, what: str) -> None:
        rss, arrow = rss_bytes(), self.pa.total_allocated_bytes()
        self.lines.append((time.perf_counter() - self.t0, rss, arrow, what))

    def sample(self) -> None:
        stage = None
        while not self.stop.is_set():
            rss, now = rss_bytes(), self.stage()
            self.peaks[now] = max(self.peaks.get(now, 0), rss)
            if rss > self.high + 64 * MIB:
                self.high = rss
                self.stacks.append((time.perf_counter() - self.t0, rss, stacks()))
            if now != stage or rss > self.last + 256 * MIB or rss < self.last - 256 * MIB:
                climb = rss > self.last + 256 * MIB and self.every_climb
                self.note(f"stage {now}" if now != stage else "; ".join(stacks()) if climb else "")
                stage, self.last = now, rss
            time.sleep(self.every)

    def print(self) -> None:
        print(f"{'s':>7} {'RSS MiB':>8} {'Arrow MiB':>9}  event")
        for t, rss, arrow, what in self.lines:
            print(f"{t:>7.1f} {rss / MIB:>8.0f} {arrow / MIB:>9.0f}  {what}")
        print("what the threads ran at each new high (64 MiB above the last):")
        for t, rss, lines in self.stacks[-8:]:
            print(f"  {t:.1f}s {rss / MIB:.0f} MiB")
            for line in lines:
                print(f"    {line}")
        print("peak RSS per stage: " + ", ".join(f"{k} {v / MIB:.0f} MiB" for k, v in self.peaks.items()))


def stacks() -> list[str]:
    """Per thread running project or Beam code: its innermost frames there (file:line function)."""
    import traceback

    out = []
    for ident, frame in sys._current_frames().items():
        if ident == threading.get_ident():
            continue
        frames = [f for f in traceback.extract_stack(frame) if "sanitizer" in f.filename or "apache_beam" in f.filename]
        ours = [f for f in frames if "/sanitizer/" in f.filename] or frames
        if ours:
            out.append(" < ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in reversed(ours[-4:])))
    return out


def instrument(tl: Timeline) -> None:
    """Log every batch read and every batch scored (start and end)."""
    from sanitizer.beam import read, score

    process, score_table = read.ReadSplitFn.process, score.ScoreFn.score_table

    def logged_process(self, split):
        for out in process(self, split):
            if hasattr(out, "num_rows") and self.count_rows:
                tl.note(f"read batch {out.num_rows:,} rows, {out.nbytes / MIB:.0f} MiB")
            yield out

    def logged_score(self, table, *args, **kwargs):
        tl.note(f"score start {table.num_rows:,} rows")
        out = score_table(self, table, *args, **kwargs)
        tl.note(f"score end {table.num_rows:,} rows")
        return out

    read.ReadSplitFn.process, score.ScoreFn.score_table = logged_process, logged_score

    from apache_beam.runners.portability.fn_api_runner import fn_runner

    execute = fn_runner.FnApiRunner._execute_bundle

    def logged_bundle(self, context, manager, bundle_input):
        name = manager.stage.name
        tl.note(f"runner stage start {name[:90]} (buffered {buffered(context) / MIB:.0f} MiB)")
        before = buffered(context)
        out = execute(self, context, manager, bundle_input)
        tl.note(f"runner stage end {name[:90]} (buffered {buffered(context) / MIB:.0f} MiB)")
        if buffered(context) > before + 16 * MIB:
            for key, size in sorted(held(context).items(), key=lambda kv: -kv[1])[:12]:
                tl.note(f"  holds {size / MIB:.0f} MiB: {key}")
        return out

    fn_runner.FnApiRunner._execute_bundle = logged_bundle


def held(context) -> dict[str, int]:
    """Bytes of encoded elements the runner holds between its stages and as side inputs, by buffer."""
    out = {}
    for name, buffer in list(context.pcoll_buffers.items()):
        out[f"buffer {name}"] = sum(len(b) for b in getattr(buffer, "_inputs", ()) or ())
    state = context.state_servicer._state
    state = getattr(state, "_underlying", state)
    for key, values in list(state.items()):
        out[f"state {key[:60]!r}"] = sum(len(b) for b in values if isinstance(b, bytes))
    return out


def buffered(context) -> int:
    """Bytes of encoded elements the runner holds between its stages and as side inputs."""
    return sum(held(context).values())


def first_rows(path: Path, rows: int) -> Path:
    """The first ``rows`` rows of ``path`` in a file beside it (row groups kept), written once."""
    import pyarrow.parquet as pq

    target = path.with_name(f"{path.stem}-first{rows}.parquet")
    if target.exists() and pq.read_metadata(target).num_rows == rows:
        return target
    f = pq.ParquetFile(path)
    group = f.metadata.row_group(0).num_rows
    with pq.ParquetWriter(target.with_suffix(".tmp"), f.schema_arrow) as writer:
        done = 0
        for i in range(f.num_row_groups):
            if done >= rows:
                break
            table = f.read_row_group(i).slice(0, rows - done)
            writer.write_table(table, row_group_size=group)
            done += table.num_rows
    target.with_suffix(".tmp").rename(target)
    return target


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--input", required=True)
    ap.add_argument("--label-column", default="label")
    ap.add_argument("--every", type=float, default=0.2, help="seconds between samples")
    ap.add_argument("--first", type=int, default=0, help="run on the first ROWS rows of the input")
    ap.add_argument("--stacks", action="store_true", help="log what the threads run at every climb")
    ap.add_argument("--output", default=str(HERE / "_data" / "media_scale" / "out-profile"))
    args, extra = ap.parse_known_args()
    path = Path(args.input)
    if args.first:
        path = first_rows(path, args.first)
    shutil.rmtree(args.output, ignore_errors=True)
    from sanitizer.cli.main import main as cli

    tl = Timeline(args.every, args.stacks)
    instrument(tl)
    sampler = threading.Thread(target=tl.sample, daemon=True)
    sampler.start()
    os.environ.setdefault("SANITIZER_PROGRESS", "1")
    try:
        rc = cli(["run", "--input", str(path), "--output", args.output, "--label-column", args.label_column,
                  *extra])
    finally:
        tl.stop.set()
        sampler.join()
    tl.print()
    print(f"{path.name}: rc {rc}, peak RSS {max(tl.peaks.values()) / MIB:.0f} MiB")
    shutil.rmtree(args.output, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
