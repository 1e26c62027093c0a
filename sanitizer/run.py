"""Run one sanitize job end to end: plan, pipeline, accounting, provenance, manifest."""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import time
from datetime import datetime, timezone
from typing import Any

from sanitizer import fs as fs_util
from sanitizer import lineage, progress
from sanitizer import provenance as prov
from sanitizer.config import Config
from sanitizer.errors import ConfigError, InputError, SanitizerError
from sanitizer.plan import Plan, make_plan
from sanitizer.review import provenance_entry as review_provenance
from sanitizer.sources import input_is_literal

log = logging.getLogger("sanitizer")


def _fs():
    from apache_beam.io.filesystems import FileSystems

    return FileSystems


MARKER = ".sanitizer-run.json"  # written when a run claims its output folder, removed once it publishes
_OUR_FILES = (prov.MANIFEST, prov.PROVENANCE, "report.html", "lineage.json", MARKER)
_OUR_FOLDERS = ("_work", "validation")  # wholly ours: intermediate state, Great Expectations results
_SHARD_FOLDERS = ("clean", "quarantine")
_SHARD_NAME = re.compile(r"part-\d{5}-of-\d{5}\.parquet")  # the sinks' names (shard_name_template)
_TEMP_FOLDER = re.compile(r"beam-temp-part-[0-9a-f]{32}")  # Beam's sink staging folders, left by a killed run
_WRITE_ERRNOS = (errno.ENOSPC, errno.EFBIG, errno.EROFS, errno.EDQUOT)


def check_paths(input_uri: str, out: str, files=()) -> None:
    """Refuse, before anything is written or deleted, an output Beam would misread or that overlaps the input.

    * glob characters in ``out``: Beam's file sinks match ``OUT/clean/part*`` when
      they finalise, so ``run[1]`` would delete the shards of a sibling ``run1``;
    * ``out`` inside a folder that is read as input: the next run would read its
      own output, and ``--overwrite`` would delete input;
    * an input (file, folder or any file it expands to) inside ``out``, or an input
      glob that matches ``out`` or the files a run writes there.

    Called before planning reads anything (``files`` empty), and again with the
    planned files.
    """
    fs_util.check_output_path(out)
    out_key = fs_util.normalise(out)
    literal = input_is_literal(input_uri)
    if literal:
        in_key = fs_util.normalise(input_uri)
        if _is_folder(input_uri) and fs_util.is_inside(out_key, in_key):
            raise ConfigError(
                f"output {out!r} is inside the input folder {input_uri!r}: a run would read its own output "
                f"next time and --overwrite would delete input; choose an --output outside {input_uri!r}"
            )
        if fs_util.is_inside(in_key, out_key):
            raise ConfigError(
                f"input {input_uri!r} is inside the output folder {out!r}, which a run writes and --overwrite "
                f"clears; move the input out of {out!r} or choose another --output"
            )
    for f in files:
        for path in (f.path, *f.aliases):
            if fs_util.is_inside(fs_util.normalise(path), out_key):
                raise ConfigError(
                    f"input file {path!r} is inside the output folder {out!r}, which a run writes and --overwrite "
                    f"clears; move the input out of {out!r} or choose another --output"
                )
    if not literal:
        regex = fs_util.pattern_regex(input_uri if fs_util.is_remote(input_uri) else os.path.abspath(input_uri))
        bases = {out.rstrip("/")} if fs_util.is_remote(out) else {os.path.abspath(out), out_key}
        for base in sorted(bases):
            for probe in (base, *(f"{base}/{name}" for name in _PROBES)):
                if regex.match(probe):
                    raise ConfigError(
                        f"input glob {input_uri!r} also matches the output folder {out!r} (e.g. {probe}); a run "
                        "would read its own output. Narrow the glob or choose an --output it cannot match"
                    )


def _is_folder(path: str) -> bool:
    if not fs_util.is_remote(path):
        return os.path.isdir(path)
    return not _fs().exists(path)  # an object prefix


_PROBES = ("clean/part-00000-of-00001.parquet", "quarantine/part-00000-of-00001.parquet", prov.MANIFEST,
           prov.PROVENANCE, "lineage.json", "report.html", "_work/stats.json", "validation/summary.json",
           "review/decisions.jsonl", "review/decisions/20260101T000000Z-0.jsonl",
           "clean/part-released-0.parquet")


def input_warnings(files) -> list[str]:
    """One warning for input files reached by more than one path (read once each, as discover decided)."""
    pairs = [(alias, f.path) for f in files for alias in f.aliases]
    if not pairs:
        return []
    named = "; ".join(f"{a!r} is the same file as {p!r}" for a, p in pairs[:5])
    more = f" (and {len(pairs) - 5} more)" if len(pairs) > 5 else ""
    return [f"{len(pairs)} input path(s) lead to files already read through another path (symlinks or hard "
            f"links), so each file was read once: {named}{more}"]


def check_identical_inputs(inputs: list[dict]) -> None:
    """Refuse two different input files with the same bytes: their rows would count twice."""
    first: dict[str, str] = {}
    for item in inputs:
        if item["bytes"] == 0:
            continue
        other = first.setdefault(item["sha256"], item["uri"])
        if other != item["uri"]:
            raise InputError(
                f"input files {other!r} and {item['uri']!r} are identical (sha256 {item['sha256'][:16]}...), so "
                "their rows would be read twice; remove the copy or narrow --input"
            )


def check_inputs_unchanged(files, inputs: list[dict]) -> None:
    """Fail when an input file's size or modification time differs from what planning saw.

    The sampling pass, the scoring pass and the provenance sha256 each read the
    files; if one changed in between they may have seen different data. Checked
    after the pipeline (the last read), before anything is published; the bytes
    hashed for provenance must also have been as many as planning saw.
    """
    for f, item in zip(files, inputs):
        try:
            now = fs_util.stat(f.path)
        except Exception as exc:  # noqa: BLE001 - a file that is gone has changed too
            now, detail = None, f"it can no longer be read: {exc}"
        else:
            detail = f"size {f.size} -> {now[0]} bytes, modified {_when(f.mtime)} -> {_when(now[1])}"
            if item["bytes"] != f.size:
                now, detail = None, f"{f.size} bytes at planning, {item['bytes']} bytes hashed"
        if now is None or now != (f.size, f.mtime):
            raise SanitizerError(
                f"input file {f.path!r} changed during the run ({detail}); the passes that sampled, scored and "
                "hashed it may have read different data, so nothing was published. Run again once the input "
                "is no longer being written"
            )


def _when(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="microseconds")


def _write_failure(out: str, exc) -> SanitizerError:
    return SanitizerError(
        f"could not write to {out}: {exc}; free space or choose another --output (nothing was published)"
    )


def _is_write_error(exc: OSError, out: str) -> bool:
    """An OSError about the output: a full disk / quota / read-only filesystem, or a path inside ``out``."""
    if exc.errno in _WRITE_ERRNOS:
        return True
    name = getattr(exc, "filename", None)
    return name is not None and fs_util.is_inside(fs_util.normalise(str(name)), fs_util.normalise(out))


def _read_record(path: str, keys: tuple[str, ...]):
    """A JSON object of ours at ``path`` (it has every key in ``keys``), None if absent; False if foreign."""
    fs = _fs()
    if not fs.exists(path):
        return None
    try:
        with fs.open(path) as fh:
            record = json.loads(fh.read().decode("utf-8"))
    except (ValueError, UnicodeDecodeError, OSError):
        return False
    return record if isinstance(record, dict) and all(k in record for k in keys) else False


def _list_names(folder: str) -> list[tuple[str, bool]]:
    """(name, is_folder) of each entry directly inside ``folder``, on any filesystem."""
    if not fs_util.is_remote(folder):
        if not os.path.isdir(folder):
            return []
        return sorted((e.name, e.is_dir(follow_symlinks=False)) for e in os.scandir(folder))
    metas = _fs().match([fs_util.escape_glob(folder.rstrip("/")) + "/**"])[0].metadata_list
    names: dict[str, bool] = {}
    for m in metas:
        rest = m.path[len(folder.rstrip("/")) + 1:]
        head, _, tail = rest.partition("/")
        names[head] = names.get(head, False) or bool(tail)
    return sorted(names.items())


def _owned_paths(out: str, present: list[str]) -> list[str]:
    """What an earlier run of ours wrote in ``out`` (manifest first), or a ConfigError saying why not.

    Proof of ownership is a manifest, a provenance record or a run marker of ours.
    Inside clean/ and quarantine/ every entry must be named by one of our records
    (the manifest, superseded ``manifest-*.json``, provenance outputs,
    ``review/publication-*.json``), be a Beam staging folder, or - for a run that
    was interrupted (its marker is there) - carry our shard name. Anything else
    is the user's: nothing is deleted. ``review/`` is never deleted: it holds
    reviewers' decisions, which outlive a rerun (``--decisions`` reads them).
    """
    fs = _fs()
    manifest = _read_record(f"{out}/{prov.MANIFEST}", ("manifest_version", "run_id", "clean"))
    provenance = _read_record(f"{out}/{prov.PROVENANCE}", ("run_id", "outputs"))
    marker = _read_record(f"{out}/{MARKER}", ("sanitizer_run",))
    foreign = [name for name, rec in ((prov.MANIFEST, manifest), (prov.PROVENANCE, provenance), (MARKER, marker))
               if rec is False]
    if not (manifest or provenance or marker):
        raise ConfigError(
            f"output {out!r} holds {', '.join(present)} but no sanitize run (no manifest.json, provenance.json "
            "or run marker of ours), so --overwrite deletes nothing there; choose another --output or move "
            "those files away"
        )
    superseded = []
    for m in fs.match([fs_util.escape_glob(out) + "/manifest-*.json"])[0].metadata_list:
        rec = _read_record(m.path, ("manifest_version", "run_id", "clean"))
        (superseded.append((m.path, rec)) if rec else foreign.append(prov.relative(m.path, out)))
    publications = []
    for m in fs.match([fs_util.escape_glob(out) + "/review/publication-*.json"])[0].metadata_list:
        rec = _read_record(m.path, ("publication_id", "outputs"))
        if rec:
            publications.append(rec)

    named: set[str] = set()
    for rec in [manifest] + [r for _, r in superseded]:
        for part in _SHARD_FOLDERS:
            named.update(s.get("path") for s in ((rec or {}).get(part) or {}).get("shards", []))
    for part in _SHARD_FOLDERS:
        named.update(s.get("path") for s in ((provenance or {}).get("outputs") or {}).get(part, []))
    for rec in publications:
        outputs = rec.get("outputs") or {}
        named.update(s.get("path") for s in outputs.get("clean", []) if isinstance(s, dict))
        if isinstance(outputs.get("released_shard"), dict):
            named.add(outputs["released_shard"].get("path"))
    for part in _SHARD_FOLDERS:
        for name, is_folder in _list_names(f"{out}/{part}"):
            rel = f"{part}/{name}"
            if rel in named and not is_folder:
                continue
            if is_folder and _TEMP_FOLDER.fullmatch(name):
                continue
            if marker and not is_folder and _SHARD_NAME.fullmatch(name):
                continue
            foreign.append(rel + ("/" if is_folder else ""))
    if foreign:
        listed = ", ".join(foreign[:8]) + (f" (and {len(foreign) - 8} more)" if len(foreign) > 8 else "")
        raise ConfigError(
            f"output {out!r} holds {listed}, which no sanitize run of ours wrote (its manifest, provenance and "
            "publication records do not name them), so --overwrite deletes nothing; move them out of "
            f"{out!r} or choose another --output"
        )
    doomed = [f"{out}/{prov.MANIFEST}"] + [p for p, _ in superseded]
    doomed += [f"{out}/{name}{tmp}" for name in _OUR_FILES for tmp in ("", ".tmp") if name != prov.MANIFEST or tmp]
    doomed += [f"{out}/{name}" for name in _SHARD_FOLDERS + _OUR_FOLDERS]
    return doomed


def prepare_output(out: str, overwrite: bool) -> None:
    """Claim ``out`` for this run; with overwrite, first remove the earlier run of ours (manifest goes first).

    Refuses (ConfigError, nothing deleted) a folder that holds a run without
    ``overwrite``, and with it anything :func:`_owned_paths` cannot prove a run
    of ours wrote. The run marker is written before anything is deleted, so a run
    killed at any point leaves a folder the next ``--overwrite`` recognises.
    """
    fs = _fs()
    present = [p for p in (prov.MANIFEST, prov.PROVENANCE, "clean", "quarantine", "_work", MARKER)
               if fs.exists(f"{out}/{p}")]
    present += [prov.relative(m.path, out)
                for m in fs.match([fs_util.escape_glob(out) + "/manifest-*.json"])[0].metadata_list]
    if present and not overwrite:
        raise ConfigError(
            f"output {out!r} already holds a run ({', '.join(present)}); "
            "choose an empty folder or pass --overwrite to replace it"
        )
    doomed = _owned_paths(out, present) if present else []
    try:
        if not fs_util.is_remote(out):
            os.makedirs(out, exist_ok=True)
        prov.write_atomic(f"{out}/{MARKER}", {
            "sanitizer_run": 1,
            "started_at": datetime.now(timezone.utc).isoformat(),
            "note": "written by 'sanitize run' when it claims this folder; removed when it publishes manifest.json",
        })
        for path in doomed:
            if path != f"{out}/{MARKER}" and fs.exists(path):
                fs.delete([path])
    except OSError as exc:
        raise _write_failure(out, exc) from None


def _pipeline_options(beam_args: list[str]):
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

    from sanitizer.beam.options import check_code_options

    if not any(a.startswith("--default_sdk_harness_log_level") for a in beam_args):
        # Worker processes (multi-processing, portable, Dataflow) log at INFO by default: too chatty for a CLI.
        beam_args = beam_args + ["--default_sdk_harness_log_level=WARNING"]
    options = PipelineOptions(beam_args)
    check_code_options(options)  # --runner / --beam_plugins must not name code to import
    standard = options.view_as(StandardOptions)
    if not standard.runner:
        standard.runner = "DirectRunner"
    return options, standard.runner


_ERROR_RE = re.compile(r"(?:InputError|ConfigError|SanitizerError): (.+?)(?:\s\[while running|\n|$)")


_WRITE_ERROR_RE = re.compile(r"\[Errno (?:%s)\][^\n\[]*" % "|".join(str(e) for e in _WRITE_ERRNOS))


def _explain_pipeline_error(exc: BaseException, out: str) -> SanitizerError:
    text = str(exc)
    written = _WRITE_ERROR_RE.search(text)
    if written:  # a sink or a worker could not write the output: a full disk, a quota, a read-only filesystem
        return _write_failure(out, written.group(0).strip())
    match = _ERROR_RE.search(text)
    if match:
        return SanitizerError(match.group(1).strip() + " (nothing was published)")
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return SanitizerError(f"the pipeline failed, nothing was published: {type(exc).__name__}: {first[:500]}")


def run_id_for(started: datetime, config: Config, inputs: list[dict]) -> str:
    digest = hashlib.sha256(
        json.dumps({"config": config.to_dict(), "inputs": [i["sha256"] for i in inputs]}, sort_keys=True).encode()
    ).hexdigest()[:10]
    return started.strftime("%Y%m%dT%H%M%SZ") + "-" + digest


def run(config: Config, beam_args: list[str] | None = None) -> dict[str, Any]:
    """Sanitize ``config.input`` into ``config.output``; returns the provenance dict.

    Raises SanitizerError (with a message saying what to do) for anything the
    user can fix; in that case no manifest is written. An output that cannot be
    written (a full disk, a parent that is a file) is one of those.
    """
    out = (config.output or "").rstrip("/")
    try:
        return _run(config, beam_args)
    except OSError as exc:
        if _is_write_error(exc, out):
            raise _write_failure(out, exc) from None
        raise


def _run(config: Config, beam_args: list[str] | None) -> dict[str, Any]:
    import apache_beam as beam

    from sanitizer.beam.pipeline import build, work_dir

    beam_args = list(beam_args or [])
    options, runner = _pipeline_options(beam_args)  # first: a refused option must not touch the output
    started = datetime.now(timezone.utc)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    config.require_runnable()
    out = config.output.rstrip("/")
    check_paths(config.input, out)  # before planning reads a byte
    plan: Plan = make_plan(config)
    check_paths(config.input, out, plan.files)
    warnings = list(plan.warnings) + input_warnings(plan.files)
    for warning in warnings:
        log.warning(warning)
    progress.stage("planning: hashing inputs")
    inputs = []
    for i, f in enumerate(plan.files):
        try:
            sha, size = prov.sha256_of(f.path)
        except OSError as exc:
            raise InputError(
                f"input file {f.path!r} could not be read ({exc}); fix or remove it and run again"
            ) from None
        inputs.append({"uri": f.path, "relpath": f.relpath, "format": f.format, "bytes": size, "sha256": sha,
                       "rows": None, "modified_at": _when(f.mtime)})  # size and time are checked again at the end
        if f.aliases:
            inputs[-1]["aliases"] = list(f.aliases)
    check_identical_inputs(inputs)
    prepare_output(out, config.overwrite)  # after every input check: nothing is deleted for a run that cannot start
    run_id = run_id_for(started, config, inputs)
    timings["plan_s"] = round(time.perf_counter() - t0, 3)

    t1 = time.perf_counter()
    try:
        p = beam.Pipeline(options=options)
        build(p, plan, config, out)
        progress.stage("pipeline: sampling, fitting, scoring")
        result = p.run()
        state = result.wait_until_finish()
    except SanitizerError:
        raise
    except Exception as exc:
        raise _explain_pipeline_error(exc, out) from None
    if state is not None and str(state) not in ("DONE", "PipelineState.DONE"):
        raise SanitizerError(f"the pipeline ended in state {state}; nothing was published")
    check_inputs_unchanged(plan.files, inputs)
    timings["pipeline_s"] = round(time.perf_counter() - t1, 3)

    t2 = time.perf_counter()
    progress.stage("finalising: verifying shards, writing provenance")
    work = work_dir(out)
    stats = _read_json(f"{work}/stats.json", default={})
    fit = _read_json(f"{work}/fit.json", default={})
    file_rows = _read_json(f"{work}/file_rows.json", default={})
    for i, item in enumerate(inputs):
        item["rows"] = int(file_rows.get(str(i), 0))
    clean = prov.describe_shards(f"{out}/clean")
    quarantine = prov.describe_shards(f"{out}/quarantine")
    rows_in = int(stats.get("rows_in", 0))
    expected = sum(plan.file_rows.values()) if plan.file_rows is not None else None
    accounting = prov.check_accounting(
        rows_in, sum(s["rows"] for s in clean), sum(s["rows"] for s in quarantine), stats, expected
    )
    duplicates = _read_json(f"{work}/duplicate_ids.json", default={"duplicated_ids": 0, "examples": []})
    if duplicates.get("duplicated_ids"):
        examples = ", ".join(f"{e['id']!r} x{e['count']}" for e in duplicates["examples"][:5])
        accounting["holds"] = False
        accounting["problems"].append(
            f"id column {plan.id_column!r} has {duplicates['duplicated_ids']} duplicated value(s) ({examples}); "
            "record ids must be unique: fix the data, or leave out --id-column to use generated ids"
        )
    if rows_in == 0 and accounting["holds"]:
        accounting["holds"] = False
        accounting["problems"].append("the input has no data rows")

    validation, failed_expectations = (None, [])
    if plan.suite is not None:
        validation, failed_expectations = _finish_validation(plan, config, out, work, stats, clean)
        if failed_expectations:
            validation["blocked_publication"] = config.validation.dataset_failure == "stop"

    provenance = {
        "run_id": run_id,
        "status": "succeeded" if accounting["holds"] else "failed",
        "started_at": started.isoformat(),
        "finished_at": datetime.now(timezone.utc).isoformat(),
        "seed": config.seed,
        "runner": runner,
        "pipeline_options": prov.redact(beam_args),
        "versions": prov.package_versions(),
        "config": config.to_dict(),
        "inputs": inputs,
        "columns": {
            "label": plan.label_column,
            "id": plan.id_output,
            "id_generated": plan.id_column is None,
            "features": [fc.name for fc in plan.features],
            "feature_count": len(plan.feature_names),
        },
        "warnings": warnings,
        "sample": fit.get("sample", {}),
        "detectors": fit.get("detectors", {}),
        "counts": stats,
        "validation": validation,
        "decisions": review_provenance(plan.decisions, stats),  # review decisions honoured (--decisions)
        "accounting": accounting,
        "outputs": {
            "clean": [dict(s, path=prov.relative(s["path"], out)) for s in clean],
            "quarantine": [dict(s, path=prov.relative(s["path"], out)) for s in quarantine],
        },
        "timings": timings,
    }
    timings["finalize_s"] = round(time.perf_counter() - t2, 3)
    timings["total_s"] = round(time.perf_counter() - t0, 3)
    if failed_expectations and config.validation.dataset_failure == "stop":
        provenance["status"] = "failed"
    prov.write_atomic(f"{out}/{prov.PROVENANCE}", provenance)
    _write_report(out, provenance)
    failure = None
    if failed_expectations and config.validation.dataset_failure == "stop":
        named = "; ".join(
            f"{f['expectation']}({f['column'] or 'table'}) on {f['on']}: observed {f['observed']}"
            for f in failed_expectations[:10]
        )
        failure = SanitizerError(
            f"data-set-level expectations failed, so nothing was published (no manifest): {named}. "
            f"Details in {out}/validation/; set validation.dataset_failure: warn to publish anyway"
        )
    elif not accounting["holds"]:
        if rows_in == 0:
            failure = SanitizerError(
                f"input {config.input!r} has no data rows, so nothing was published; check the input path"
            )
        else:
            try:
                prov.fail_integrity(accounting)
            except SanitizerError as exc:
                failure = exc
    if failure is not None:
        lineage.record_run(provenance, out, state="FAIL", error=str(failure))
        raise failure
    lineage.record_run(provenance, out)

    prov_sha, _ = prov.sha256_of(f"{out}/{prov.PROVENANCE}")
    manifest = prov.build_manifest(
        run_id, out, plan.output_schema, clean, quarantine, plan.id_output, plan.label_column,
        [fc.name for fc in plan.features], prov_sha,
    )
    _fs().delete([work])
    prov.write_atomic(f"{out}/{prov.MANIFEST}", manifest)  # last: publishing
    _release_marker(out)
    return provenance


def _release_marker(out: str) -> None:
    """Published: from now on the manifest and provenance say what is ours. A leftover marker is harmless."""
    try:
        _fs().delete([f"{out}/{MARKER}"])
    except OSError as exc:
        log.warning("could not remove %s/%s: %s", out, MARKER, exc)


def _write_report(out: str, provenance: dict) -> None:
    """The reviewer's page; a report problem is logged, never a reason to withhold clean data."""
    from sanitizer.report import write_report

    try:
        write_report(out, provenance)
    except Exception as exc:  # noqa: BLE001 - the report is a convenience, the shards are the product
        log.warning("could not write %s/report.html: %s", out, exc)


def _finish_validation(plan: Plan, config: Config, out: str, work: str, stats: dict, clean: list[dict]):
    """Data-set checks on the totals, the sample and the clean output; results to OUT/validation/."""
    import pyarrow.parquet as pq

    from sanitizer import validation as v

    suite = plan.suite
    sample_part = _read_json(f"{work}/validation_sample.json", default={"result": {}, "summary": []})
    by_class = stats.get("by_class", {})
    rows = {k: int(n) for k, n in by_class.get("rows", {}).items()}
    held = {k: int(n) for k, n in by_class.get("quarantined", {}).items()}
    clean_rows = sum(s["rows"] for s in clean)
    checks = list(sample_part.get("summary", []))
    checks += v.check_totals(suite, int(stats.get("rows_in", 0)), rows, "input totals")
    checks += v.check_totals(suite, clean_rows, {k: n - held.get(k, 0) for k, n in rows.items()}, "clean output")

    columns = [c for c in plan.output_schema.names if c in suite.columns()]
    tables = []
    for shard in clean:
        with _fs().open(shard["path"]) as fh:
            tables.append(pq.read_table(fh, columns=columns))
    clean_frame = v.to_pandas(pa_concat(tables, plan, columns), set(columns))
    clean_result = v.validate_frame(suite, clean_frame, [e for e in suite.expectations if e["type"] not in v.ROW_COUNT])
    checks += v.summarise(clean_result, "clean output")

    directory = f"{out}/validation"
    if "://" not in directory:
        os.makedirs(directory, exist_ok=True)
    results = {"input_sample": sample_part.get("result", {}), "clean_output": clean_result}
    for name, result in results.items():
        prov.write_atomic(f"{directory}/{name}.json", result)
    prov.write_atomic(f"{directory}/summary.json", checks)
    docs = v.write_data_docs(results, f"{directory}/data_docs") if "://" not in directory else None

    failed = [c for c in checks if not c["success"]]
    row_failures = {k: n for k, n in stats.get("by_reason", {}).items() if k.startswith("validation:")}
    info = {
        "suite": suite.describe(),
        "dataset_failure": config.validation.dataset_failure,
        "row_level_expectations": len(suite.row_level),
        "rows_failing_row_level": row_failures,
        "checks": checks,
        "success": not failed,
        "data_docs": docs,
    }
    return info, failed


def pa_concat(tables, plan: Plan, columns):
    import pyarrow as pa

    if tables:
        return pa.concat_tables(tables)
    return pa.schema([plan.output_schema.field(c) for c in columns]).empty_table()


def _read_json(path: str, default):
    fs = _fs()
    if not fs.exists(path):
        return default
    with fs.open(path) as fh:
        return json.loads(fh.read().decode("utf-8"))
