"""Memory and speed of the default ``sanitize run`` on 25,000 and 100,000 64x64 images, and on 100,000 texts.

    python bench/media_scale.py [--images 25000,100000] [--texts 100000] [--seed 0] [--config FILE]
                                [--no-passthrough] [--max-mib 12000]

Makes, offline from ``--seed`` and kept under bench/_data/media_scale/ (a rerun reuses them):

* images: 64x64 RGB PNG in the Hugging Face layout (``image: struct<bytes: binary, path: string>``,
  ``label: string``, 10 classes "0" ... "9"), row groups of 12,500 rows. The run cuts its batches by
  weight (the rows as read plus their decoded pixels), so every set is scored in batches of the same rows
  (3,781 at the default 32-pixel image size). Each row is one of ``bench/media_data.py``'s 32x32 images
  (scikit-learn's digits scans and DejaVu glyphs, painted), upscaled to a random side in [64, 72], cropped
  to 64x64 at a random offset and given a random order of its colour channels. Rows are drawn in chunks of
  2,500 from one generator, so a smaller set is the first rows of a larger one.
* texts: modeldata's product reviews (training + testing, 5,000), repeated with a per-row number appended
  so every text is distinct (``review: string``, ``score: string``), four row groups.

For each file, each in a fresh subprocess on the DirectRunner:

* passthrough: ReadFromParquetBatched -> WriteToParquetBatched (``bench/throughput.py``'s; left out with
  ``--no-passthrough``);
* sanitize: ``sanitize run --input FILE --output DIR --label-column LABEL``, the default configuration
  (``--config FILE`` adds a config file, e.g. to switch a detector off).

Prints rows, wall and CPU seconds (the whole subprocess tree, interpreter start included), rows/s, the ratio
of sanitize's rows/s to the passthrough's, the peak memory (RSS summed over the process tree, sampled every
50 ms from outside), how many times stderr says Beam's "Data output stream buffer size ... exceeds 536870912
bytes", and the peak ratio of the largest image set to the smallest. A run whose tree passes ``--max-mib``
is stopped (the machines are shared) and its row says so. The machines are shared and noisy: read the
ratios and the CPU seconds beside the wall seconds. ``bench/media_profile.py`` shows where one run's memory
goes, stage by stage.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "_data" / "media_scale"
SIDE = 64
CLI = "import sys; from sanitizer.cli.main import main; sys.exit(main(sys.argv[1:]))"
WARNING = "exceeds 536870912"
CHUNK = 2_500
ROW_GROUP = 12_500
"""Rows per row group of every image file: the run reads a batch at most a row group long, so sets of
different sizes are compared at the same batch rows."""


def _row_image(base, rng):
    """One 64x64 RGB image from a 32x32 one: upscaled to [64, 72], cropped at random, channels reordered."""
    import numpy as np
    from PIL import Image

    side = int(rng.integers(SIDE, SIDE + 9))
    big = np.asarray(Image.fromarray(base, "RGB").resize((side, side), Image.BICUBIC))
    y, x = rng.integers(0, side - SIDE + 1, size=2)
    return np.ascontiguousarray(big[y:y + SIDE, x:x + SIDE][:, :, rng.permutation(3)])


def make_images_file(rows: int, path: Path, seed: int) -> None:
    """The image table of ``rows`` rows (see the module docstring); kept when a file with that many rows is there."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    from media_data import make_images, png

    if path.exists() and pq.read_metadata(path).num_rows == rows:
        return
    base = make_images(seed)
    rng = np.random.default_rng([seed, 64])
    schema = pa.schema([("image", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
                        ("label", pa.string())])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with pq.ParquetWriter(tmp, schema) as writer:
        pending = []
        for start in range(0, rows, CHUNK):
            picks = rng.integers(len(base.labels), size=min(CHUNK, rows - start))
            data = [png(_row_image(base.pixels[j], rng)) for j in picks]
            names = [None if base.source[j] == "digits" else f"{start + i:06d}.png" for i, j in enumerate(picks)]
            image = pa.StructArray.from_arrays([pa.array(data, pa.binary()), pa.array(names, pa.string())],
                                               names=["bytes", "path"])
            pending.append(pa.table({"image": image, "label": pa.array(list(base.labels[picks]), pa.string())},
                                    schema=schema))
            if sum(t.num_rows for t in pending) >= ROW_GROUP or start + CHUNK >= rows:
                writer.write_table(pa.concat_tables(pending), row_group_size=ROW_GROUP)
                pending = []
    tmp.rename(path)


def make_texts_file(rows: int, path: Path) -> None:
    """The review texts, repeated to ``rows`` distinct rows (see the module docstring); kept when there."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    from media_data import reviews

    if path.exists() and pq.read_metadata(path).num_rows == rows:
        return
    df, text, label = reviews()
    at = np.arange(rows) % len(df)
    texts = [f"{df[text].iat[j]} {i}" for i, j in enumerate(at)]
    table = pa.table({"review": pa.array(texts, pa.string()),
                      "score": pa.array(df[label].astype(str).to_numpy()[at].tolist(), pa.string())})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, row_group_size=max(1, rows // 4))


MAX_MIB = 12_000
"""A run whose process tree passes this many MiB is stopped (``--max-mib``)."""


def run_capped(cmd: list[str], max_mib: float) -> dict:
    """Wall seconds, peak tree RSS (MiB), rc and stderr of a subprocess; stopped (``stopped``: True) once its
    tree passes ``max_mib``."""
    import subprocess
    import tempfile
    import time

    from throughput import tree_rss_bytes

    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as err:  # a pipe could fill while the run is watched
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, text=True, start_new_session=True)
        peak, stopped = 0, False
        try:
            while proc.poll() is None:
                peak = max(peak, tree_rss_bytes(proc.pid))
                if peak > max_mib * 2**20 and not stopped:
                    stopped = True
                    os.killpg(proc.pid, signal.SIGKILL)
                time.sleep(0.05)
        finally:  # the bench stopped (Ctrl-C, a timeout's SIGTERM): its run goes with it
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        err.seek(0)
        stderr = err.read()
    return {"wall_s": time.perf_counter() - started, "peak_mib": peak / 2**20, "rc": proc.returncode,
            "stderr": stderr, "stopped": stopped}


def measured(cmd: list[str], max_mib: float = MAX_MIB) -> dict:
    """:func:`run_capped` (wall seconds, peak tree RSS, rc, stderr) plus the tree's CPU seconds and the count of
    Beam's buffer-size warning in its stderr."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = run_capped(cmd, max_mib)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    r["cpu_s"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    r["warnings"] = r["stderr"].count(WARNING)
    r["buffer_lines"] = sum("buffer size" in line for line in r["stderr"].splitlines())
    return r


def passthrough(path: Path, max_mib: float = MAX_MIB) -> dict:
    out = DATA / "out-passthrough"
    shutil.rmtree(out, ignore_errors=True)
    r = measured([sys.executable, str(HERE / "throughput.py"), "--child", "passthrough", "--path", str(path),
                  "--out", str(out), "--"], max_mib)
    shutil.rmtree(out, ignore_errors=True)
    return r


def sanitize(path: Path, label: str, config: str | None = None, max_mib: float = MAX_MIB) -> dict:
    out = DATA / "out-sanitize"
    shutil.rmtree(out, ignore_errors=True)
    r = measured([sys.executable, "-c", CLI, "run", "--input", str(path), "--output", str(out),
                  "--label-column", label, *(["--config", config] if config else [])], max_mib)
    prov = out / "provenance.json"
    if prov.exists():
        p = json.loads(prov.read_text())
        r["counts"], r["timings"] = p.get("counts", {}), p.get("timings", {})
    shutil.rmtree(out, ignore_errors=True)
    return r


HEADER = (f"{'set':<7} {'rows':>8} | {'pass wall':>9} {'cpu':>6} {'MiB':>6} {'warn':>4} | {'sanitize wall':>13} "
          f"{'cpu':>6} {'MiB':>6} {'warn':>4} | {'rows/s':>7} {'ratio':>5}  rc, held")


NOT_RUN = {"wall_s": float("nan"), "cpu_s": float("nan"), "peak_mib": float("nan"), "warnings": 0, "rc": 0,
           "buffer_lines": 0, "stopped": False}


def compare(kind: str, path: Path, rows: int, label: str, config: str | None = None, with_passthrough: bool = True,
            max_mib: float = MAX_MIB) -> dict:
    from throughput import print_breakdown

    p = passthrough(path, max_mib) if with_passthrough else NOT_RUN
    s = sanitize(path, label, config, max_mib)
    held = (s.get("counts") or {}).get("quarantined")
    print(f"{kind:<7} {rows:>8,} | {p['wall_s']:>9.1f} {p['cpu_s']:>6.1f} {p['peak_mib']:>6.0f} {p['warnings']:>4} | "
          f"{s['wall_s']:>13.1f} {s['cpu_s']:>6.1f} {s['peak_mib']:>6.0f} {s['warnings']:>4} | "
          f"{rows / s['wall_s']:>7.0f} {p['wall_s'] / s['wall_s']:>5.2f}  rc {s['rc']}, "
          f"{'?' if held is None else f'{held:,}'} held", flush=True)
    for name, r in (("passthrough", p), ("sanitize", s)):
        if r["stopped"]:
            print(f"  {name} stopped: its processes passed {max_mib:,.0f} MiB")
        elif r["rc"] != 0:
            print(f"  {name} failed:\n    " + "\n    ".join(r["stderr"].strip().splitlines()[-8:]))
        if r["buffer_lines"] > r["warnings"]:
            print(f"  {name}: {r['buffer_lines']} stderr lines say 'buffer size'")
    print_breakdown(s.get("timings") or {})
    return {"passthrough": p, "sanitize": s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", default="25000,100000", help="comma-separated image counts ('' for none)")
    ap.add_argument("--texts", type=int, default=100_000, help="text rows (0 for none)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--config", help="a config file every sanitize run reads (e.g. a detector switched off)")
    ap.add_argument("--no-passthrough", action="store_true", help="run sanitize only")
    ap.add_argument("--max-mib", type=float, default=MAX_MIB, help="stop a run whose processes pass this")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so a run in progress is stopped too
    sys.path.insert(0, str(HERE))
    sizes = sorted(int(r) for r in args.images.split(",") if r)
    files = []
    if sizes:
        for rows in sizes:
            path = DATA / f"images-{SIDE}px-seed{args.seed}-{rows}-rg{ROW_GROUP}.parquet"
            make_images_file(rows, path, args.seed)
            files.append(("images", rows, path, "label"))
    if args.texts:
        path = DATA / f"reviews-{args.texts}.parquet"
        make_texts_file(args.texts, path)
        files.append(("texts", args.texts, path, "score"))
    configured = f"config {args.config}" if args.config else "default configuration"
    print(f"{os.cpu_count()} cores; DirectRunner; {configured}; wall and CPU seconds of the whole process "
          f"tree; ratio = sanitize rows/s / passthrough rows/s; warn = stderr lines with {WARNING!r}")
    for _, rows, path, _ in files:
        print(f"  {path.name}: {rows:,} rows, {path.stat().st_size / 2**20:.0f} MiB")
    print(HEADER)
    peaks = {}
    for kind, rows, path, label in files:
        r = compare(kind, path, rows, label, args.config, not args.no_passthrough, args.max_mib)
        if kind == "images":
            peaks[rows] = r["sanitize"]["peak_mib"]
    if len(peaks) > 1:
        small, big = min(peaks), max(peaks)
        print(f"sanitize peak memory, {big:,} / {small:,} images: {peaks[big]:.0f} / {peaks[small]:.0f} MiB = "
              f"{peaks[big] / peaks[small]:.2f} (bar 1.3)")


if __name__ == "__main__":
    main()
