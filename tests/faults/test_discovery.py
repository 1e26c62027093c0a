"""Fault suite: every file under an input folder is read or listed as skipped (issue 30, case 3).

An input folder holding ``a.parquet`` beside ``b.parquet.1``, ``notes.csv.gz`` or
``_2024.parquet`` used to read ``a.parquet`` alone, without a word. What these
tests pin (rules: ``sanitizer.io.discover``):

* a file of no known format beside data files is refused (exit 2, one line
  naming it, ``--format`` and ``--ignore``), unless the user names a format or
  an ignore pattern (then it is read, or listed as "ignored by pattern");
* ``_2024.parquet`` is data and is read; job markers, Parquet summary files,
  checksums, hidden files and Spark/Hadoop work folders are skipped, and each is
  listed with the reason in provenance (``skipped_inputs``), the summary and
  the report;
* compressed CSV (``.gz``, ``.bz2``, ``.zst``, ``.xz``) is read with every row
  and hashed as stored; compressed Parquet and archives are refused;
* an object store (a Beam filesystem without folders) gets the same answer.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import importlib
import lzma
import os

import pyarrow as pa
import pytest

from sanitizer.errors import InputError
from sanitizer.io.sources import iter_file_batches, read_schema
from sanitizer.io.discover import discover
from sanitizer.io.input_rules import open_input
from conftest import load_json, run_cli, synthetic_rows, write_rows

discovery = importlib.import_module("sanitizer.io.discover")  # the module (its discover() is imported above)


def survey(*args, **kwargs):
    return discovery.survey(*args, **kwargs)


def csv_text(n: int, seed: int = 0) -> bytes:
    rid, X, y = synthetic_rows(n, seed)
    lines = ["a,b,c,label"] + [f"{x[0]:.6f},{x[1]:.6f},{x[2]:.6f},{label}" for x, label in zip(X, y)]
    return ("\n".join(lines) + "\n").encode()


def relpaths(found) -> list[str]:
    return [f.relpath for f in found.files]


def reasons(found) -> dict[str, str]:
    return {s.relpath: s.reason for s in found.skipped}


# --------------------------------------------------------------------------- the folder cases of the issue


@pytest.mark.parametrize("stranger", ["b.parquet.1", "data.txt", "notes", "part-0.parquet._COPYING_"])
def test_a_file_of_no_known_format_beside_data_is_refused(tmp_path, stranger):
    write_rows(tmp_path / "in" / "a.parquet")
    (tmp_path / "in" / stranger).write_bytes((tmp_path / "in" / "a.parquet").read_bytes())
    with pytest.raises(InputError) as err:
        discover(str(tmp_path / "in"))
    message = str(err.value)
    assert stranger in message and "--format" in message and "--ignore" in message


def test_compressed_csv_beside_parquet_is_refused_naming_both(tmp_path):
    write_rows(tmp_path / "a.parquet")
    (tmp_path / "notes.csv.gz").write_bytes(gzip.compress(csv_text(20)))
    with pytest.raises(InputError, match=r"mixes formats: csv \('notes\.csv\.gz'\), parquet \('a\.parquet'\).*--ignore"):
        discover(str(tmp_path))


@pytest.mark.parametrize("stranger", ["b.parquet.1", "two\nlines\x1b[2J.parquet.1"])
def test_the_refusal_is_one_line_exit_2_and_nothing_is_written(tmp_path, capsys, stranger):
    inp = tmp_path / "in"
    write_rows(inp / "a.parquet", n=150)
    write_rows(inp / stranger, n=100, seed=3)
    out = tmp_path / "out"
    rc = run_cli("run", "--input", inp, "--output", out, "--label-column", "label", "-q")
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert ".parquet.1" in err and "--format" in err and "--ignore" in err and "\x1b" not in err
    assert not out.exists()


def test_an_underscore_named_data_file_is_read(tmp_path):
    write_rows(tmp_path / "a.parquet")
    write_rows(tmp_path / "_2024.parquet", seed=3)
    assert [f.relpath for f in discover(str(tmp_path))] == ["_2024.parquet", "a.parquet"]
    assert survey(str(tmp_path)).skipped == []


def test_job_markers_metadata_and_hidden_files_are_skipped_and_listed(tmp_path):
    write_rows(tmp_path / "a.parquet")
    write_rows(tmp_path / "_temporary" / "0" / "task_1" / "part-0.parquet", seed=1)  # an unfinished attempt
    write_rows(tmp_path / ".snapshot" / "a.parquet", seed=2)
    (tmp_path / "_delta_log").mkdir()
    (tmp_path / "_delta_log" / "00000.json").write_text("{}\n")
    for name in ("_SUCCESS", "_committed_123", "_started_123", "_metadata", "_common_metadata", ".a.parquet.crc",
                 "a.parquet.crc", ".DS_Store"):
        (tmp_path / name).write_bytes(b"x")
    found = survey(str(tmp_path))
    assert relpaths(found) == ["a.parquet"]
    why = reasons(found)
    assert set(why) == {"_temporary/", ".snapshot/", "_delta_log/", "_SUCCESS", "_committed_123", "_started_123",
                        "_metadata", "_common_metadata", ".a.parquet.crc", "a.parquet.crc", ".DS_Store"}
    assert "hidden" in why[".DS_Store"] and "hidden" in why[".snapshot/"]
    assert "marker" in why["_SUCCESS"] and "checksum" in why["a.parquet.crc"] and "Delta" in why["_delta_log/"]
    folders = {s.relpath: s.files for s in found.skipped if s.relpath.endswith("/")}
    assert folders == {"_temporary/": 1, ".snapshot/": 1, "_delta_log/": 1}


def test_an_ignore_pattern_leaves_files_out_and_lists_them(tmp_path):
    write_rows(tmp_path / "a.parquet")
    write_rows(tmp_path / "b.parquet.1", seed=1)
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "run.log").write_text("x")
    (tmp_path / "README").write_text("x")
    found = survey(str(tmp_path), ignore=["*.1", "logs", "README"])
    assert relpaths(found) == ["a.parquet"]
    assert reasons(found) == {"b.parquet.1": "ignored by pattern '*.1'", "logs/run.log": "ignored by pattern 'logs'",
                              "README": "ignored by pattern 'README'"}


def test_ignore_option_on_the_command_line_and_in_the_config(tmp_path):
    from sanitizer.settings.config import build_config
    from sanitizer.errors import ConfigError
    from sanitizer.settings.options import config_from_args
    import argparse
    from sanitizer.settings.options import add_run_arguments

    parser = argparse.ArgumentParser()
    add_run_arguments(parser)
    args = parser.parse_args(["--input", "in", "--ignore", "*.txt,logs/*", "--ignore", "README"])
    assert config_from_args(args).ignore == ("*.txt", "logs/*", "README")
    assert build_config({"ignore": ["*.1"]}).ignore == ("*.1",)
    with pytest.raises(ConfigError, match="ignore must be a list of glob patterns"):
        build_config({"ignore": [3]})


def test_profile_refuses_the_same_files_and_takes_the_same_patterns(tmp_path, capsys):
    write_rows(tmp_path / "in" / "a.parquet")
    (tmp_path / "in" / "notes.txt").write_text("x")
    suite = tmp_path / "suite.json"
    assert run_cli("profile", "--input", tmp_path / "in", "--label-column", "label", "--output", suite) == 2
    assert "notes.txt" in capsys.readouterr().err and not suite.exists()
    assert run_cli("profile", "--input", tmp_path / "in", "--label-column", "label", "--output", suite,
                   "--ignore", "*.txt") == 0
    assert load_json(suite)["meta"]["sanitizer"]["rows"] == 240


def test_a_declared_format_reads_files_of_unknown_extension(tmp_path):
    write_rows(tmp_path / "a.parquet")
    write_rows(tmp_path / "b.parquet.1", seed=1)
    files = discover(str(tmp_path), "parquet")
    assert [f.relpath for f in files] == ["a.parquet", "b.parquet.1"]
    assert {f.format for f in files} == {"parquet"}
    (tmp_path / "c.csv").write_bytes(csv_text(10))  # named csv: not read as Parquet behind the user's back
    with pytest.raises(InputError, match=r"'c\.csv' .*--format parquet"):
        discover(str(tmp_path), "parquet")


# --------------------------------------------------------------------------- compressed inputs


def zstd_compress(data: bytes) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.CompressedOutputStream(sink, "zstd") as fh:
        fh.write(data)
    return sink.getvalue().to_pybytes()


COMPRESSORS = {".gz": gzip.compress, ".bz2": bz2.compress, ".xz": lzma.compress, ".zst": zstd_compress}


@pytest.mark.parametrize("suffix", sorted(COMPRESSORS))
def test_compressed_csv_is_read_with_every_row(tmp_path, suffix):
    data = csv_text(257)
    (tmp_path / f"notes.csv{suffix}").write_bytes(COMPRESSORS[suffix](data))
    (f,) = discover(str(tmp_path))
    assert f.format == "csv"
    assert read_schema(f).names == ["a", "b", "c", "label"]
    assert sum(b.num_rows for b in iter_file_batches(f, 64, None)) == 257
    with open_input(f.path) as fh:
        assert fh.read() == data


def test_compressed_parquet_and_archives_are_refused(tmp_path):
    write_rows(tmp_path / "a.parquet")
    (tmp_path / "b.parquet.gz").write_bytes(gzip.compress((tmp_path / "a.parquet").read_bytes()))
    (tmp_path / "c.csv.zip").write_bytes(b"PK")
    with pytest.raises(InputError) as err:
        discover(str(tmp_path))
    assert "'b.parquet.gz' (compressed Parquet" in str(err.value) and "'c.csv.zip' (an archive" in str(err.value)


# --------------------------------------------------------------------------- one real run: listed everywhere


@pytest.fixture(scope="module")
def listed_run(tmp_path_factory):
    """A folder of CSV shards, one gzipped and one named with a leading '_', beside a job marker, a hidden
    file and notes left out with --ignore; one real run over it."""
    base = tmp_path_factory.mktemp("discovery")
    inp = base / "in"
    inp.mkdir()
    (inp / "part-0.csv").write_bytes(csv_text(120, seed=0))
    (inp / "notes.csv.gz").write_bytes(gzip.compress(csv_text(90, seed=1)))
    (inp / "_2024.csv").write_bytes(csv_text(40, seed=2))
    (inp / "_SUCCESS").write_bytes(b"")
    (inp / ".part-0.csv.crc").write_bytes(b"crc")
    (inp / "README.txt").write_text("how this data was made\n")
    out = base / "out"
    rc = run_cli("run", "--input", inp, "--output", out, "--label-column", "label", "-q", "--ignore", "*.txt")
    return {"rc": rc, "inp": inp, "out": out, "prov": load_json(out / "provenance.json")}


def test_every_row_of_every_data_file_is_read(listed_run):
    assert listed_run["rc"] == 0
    prov = listed_run["prov"]
    assert prov["counts"]["rows_in"] == 120 + 90 + 40
    assert {i["relpath"]: i["rows"] for i in prov["inputs"]} == {"part-0.csv": 120, "notes.csv.gz": 90,
                                                                 "_2024.csv": 40}
    gz = next(i for i in prov["inputs"] if i["relpath"] == "notes.csv.gz")  # hashed as stored, not decompressed
    stored = (listed_run["inp"] / "notes.csv.gz").read_bytes()
    assert gz["sha256"] == hashlib.sha256(stored).hexdigest() and gz["bytes"] == len(stored)


def test_provenance_lists_every_file_not_read_with_its_reason(listed_run):
    prov = listed_run["prov"]
    skipped = {s["relpath"]: s["reason"] for s in prov["skipped_inputs"]}
    assert skipped == {"_SUCCESS": "a Spark/Hadoop job marker",
                       ".part-0.csv.crc": "hidden: the name starts with '.'",
                       "README.txt": "ignored by pattern '*.txt'"}
    assert all(s["uri"].startswith(str(listed_run["inp"])) for s in prov["skipped_inputs"])
    assert prov["config"]["ignore"] == ["*.txt"]
    from sanitizer.schemas import validate  # the published schema admits the new field

    validate("provenance", prov)


def test_summary_and_report_list_the_files_not_read(listed_run):
    from sanitizer.cli.summary import summary_lines

    text = "\n".join(summary_lines(listed_run["prov"], str(listed_run["out"])))
    assert "input files:  3 read; 3 not read:" in text
    assert "README.txt (ignored by pattern '*.txt')" in text and "_SUCCESS (a Spark/Hadoop job marker)" in text
    html = (listed_run["out"] / "report.html").read_text()
    section = html[html.index('<section id="inputs">'):]
    section = section[: section.index("</section>")]
    assert "Read 3 file(s)" in section and "Not read: 3" in section
    assert "README.txt" in section and "ignored by pattern &#x27;*.txt&#x27;" in section and "_SUCCESS" in section


# --------------------------------------------------------------------------- an object store


def test_an_object_store_gets_the_same_answer(tmp_path):
    """A Beam FileSystem without folders, registered for a made-up scheme, stands in for gs:// or s3://."""
    from apache_beam.io.filesystem import FileMetadata
    from apache_beam.io.localfilesystem import LocalFileSystem

    root = tmp_path / "bucket"
    scheme = "sanitizerdiscovery"

    class DiscoveryTestStore(LocalFileSystem):  # found by FileSystems through FileSystem's subclasses
        @classmethod
        def scheme(cls):
            return scheme

        def has_dirs(self):
            return False

        @staticmethod
        def local(path):
            return str(root / path.split("://", 1)[1])

        def exists(self, path):
            return os.path.isfile(self.local(path))

        def metadata(self, path):
            local = self.local(path)
            return FileMetadata(path, os.path.getsize(local), os.path.getmtime(local))

        def _list(self, prefix):
            for dirpath, _, names in os.walk(root):
                for name in names:
                    uri = f"{scheme}://" + os.path.relpath(os.path.join(dirpath, name), root)
                    if uri.startswith(prefix):
                        yield self.metadata(uri)

        def open(self, path, *args, **kwargs):
            return super().open(self.local(path), *args, **kwargs)

    data = root / "data"
    write_rows(data / "a.parquet")
    write_rows(data / "_2024.parquet", seed=1)
    write_rows(data / "_temporary" / "0" / "part-0.parquet", seed=2)
    (data / "_SUCCESS").write_bytes(b"")
    (data / "notes.txt").write_text("x")
    with pytest.raises(InputError, match=r"'notes\.txt' .*--format.*--ignore"):
        discover(f"{scheme}://data")
    local, remote = survey(str(data), ignore=["*.txt"]), survey(f"{scheme}://data", ignore=["*.txt"])
    assert relpaths(remote) == relpaths(local) == ["_2024.parquet", "a.parquet"]
    assert reasons(remote) == reasons(local)
    assert {s.relpath: s.files for s in remote.skipped}["_temporary/"] == 1
    (data / "more.csv.gz").write_bytes(gzip.compress(csv_text(33)))
    (f,) = discover(f"{scheme}://data/more.csv.gz")
    assert sum(b.num_rows for b in iter_file_batches(f, 64, None)) == 33
