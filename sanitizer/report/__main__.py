"""``python -m sanitizer.report OUT [--max-rows N]``: (re)write OUT/report.html for a finished run."""

from __future__ import annotations

import argparse
import json
import sys

from sanitizer.report import MAX_ROWS, write_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sanitizer.report", description=__doc__)
    parser.add_argument("output", help="the run's output folder (holding provenance.json and quarantine/)")
    parser.add_argument("--max-rows", type=int, default=MAX_ROWS, help="suspects listed in the table")
    args = parser.parse_args(argv)
    out = args.output.rstrip("/")
    if "://" in out:
        from apache_beam.io.filesystems import FileSystems

        with FileSystems.open(f"{out}/provenance.json") as fh:
            provenance = json.loads(fh.read().decode("utf-8"))
    else:
        try:
            with open(f"{out}/provenance.json", encoding="utf-8") as fh:
                provenance = json.load(fh)
        except FileNotFoundError:
            print(f"error: no provenance.json in {out!r}; is it a sanitize output folder?", file=sys.stderr)
            return 2
    print(write_report(out, provenance, args.max_rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
