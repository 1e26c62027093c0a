"""Image and text columns shown as the data holds them: a thumbnail of each suspect's image and a snippet
of its text, beside the same for the neighbours its evidence names.

Which columns: the first image column and the first text column that provenance's ``columns.kinds``
records as judged. What is fetched: every shown row, in rank order, then the neighbours the page draws
for them (:func:`shown_refs`, the order of ``neighbours.js``), in the rows' rank order; at most
:data:`MAX_MEDIA_ROWS` distinct rows. They are read in ONE more pass over the run's clean and quarantine
shards: the id column of every row group, and the image / text column of the row groups that hold a
wanted row, in record batches; only the matched rows' values are decoded, each image straight into a
small PNG, so memory holds thumbnails, never the originals.

Images (:mod:`sanitizer.report.thumbnails`): a PNG made from the ORIGINAL value in the shards (bytes,
Hugging Face struct, a path under the input's folder, or declared pixels), RGB or grayscale, aspect ratio
kept, at most 64 pixels on its longer side; smaller when the page's image budget needs it. A value that
cannot be read shows a placeholder with the row check's problem text. Texts (:mod:`sanitizer.report.snippets`):
the value as written, at most :data:`~sanitizer.report.snippets.MAX_TEXT_CHARS` characters, its unusual
words marked. Each distinct image and text is stored once in the page (``media.images`` / ``media.texts``,
rows and references point at them by index: ``im`` / ``tx``; ``imx``: why there is no image).
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sanitizer.report import neighbours as nb
from sanitizer.report import snippets, thumbnails
from sanitizer.report.assets import MAX_SHOWN

MAX_MEDIA_ROWS = 6000  # distinct rows whose image and text are fetched for one page
BATCH_ROWS = 1024
LEFT_OUT = "left out to keep the page small"
PAGE_ROWS = 100  # rows on the suspects table's first page (its default page size)


@dataclass(frozen=True)
class MediaColumns:
    """The image column shown (with how it holds images) and the text column shown; None where there is none."""

    image: str | None = None
    layout: str | None = None
    shape: tuple | None = None
    base: str | None = None  # the folder relative image paths are read from (the first input file's)
    text: str | None = None

    @classmethod
    def of(cls, record) -> MediaColumns | None:
        image = next((k for k in record.columns.kinds if k.get("judged") and k.get("kind") == "image"), None)
        text = next((k for k in record.columns.kinds if k.get("judged") and k.get("kind") == "text"), None)
        if image is None and text is None:
            return None
        first = record.inputs[0].get("uri") if record.inputs else None
        base = first.rsplit("/", 1)[0] if isinstance(first, str) and "/" in first else None
        shape = image.get("shape") if image is not None else None
        return cls(image=None if image is None else str(image.get("name")),
                   layout=None if image is None else str(image.get("layout") or "bytes"),
                   shape=tuple(shape) if isinstance(shape, list) else None, base=base,
                   text=None if text is None else str(text.get("name")))

    def read(self) -> list[str]:
        return [c for c in (self.image, self.text) if c is not None]


def shown_refs(row: dict) -> list[str]:
    """The neighbour ids the page draws for ``row``: distinct, those with the suggested label first, at most
    :data:`~sanitizer.report.assets.MAX_SHOWN` (as ``neighbours.js`` picks them)."""
    roles: dict[str, str] = {}
    for ref in row.get("refs") or []:
        if ref.get("id") is not None and not ref.get("skipped"):
            ident = str(ref["id"])
            roles[ident] = "suggested" if ref.get("role") == "suggested" else roles.get(ident, "neighbour")
    order = [i for i, role in roles.items() if role == "suggested"] + [i for i, r in roles.items() if r != "suggested"]
    return order[:MAX_SHOWN]


def wanted_ids(rows: list[dict], limit: int = MAX_MEDIA_ROWS) -> list[str]:
    """The rows whose media the page shows, in priority order: the shown rows in rank order, then the
    neighbours drawn for them, in the same order; at most ``limit``."""
    order = dict.fromkeys(str(row["id"]) for row in rows if row.get("id") is not None)
    for row in rows:
        for ident in shown_refs(row):
            order.setdefault(ident, None)
    return list(order)[:limit]


def _ids(column) -> pa.Array:
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    try:
        return pc.cast(column, pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pa.array(nb.id_texts(column), pa.string())


def fetch(files: list[tuple[str, bool]], id_column: str, cols: MediaColumns, ids: list[str]
          ) -> tuple[dict[str, bytes | None], dict[str, str | None], int]:
    """id -> thumbnail PNG (None: unreadable) and id -> text (None: missing) of the rows ``ids`` names, from
    ``files`` ((path, is quarantine)); and how many shards could not be read (passed over)."""
    images: dict[str, bytes | None] = {}
    texts: dict[str, str | None] = {}
    value_set = pa.array(ids, pa.string())
    unreadable = 0
    for path, _ in files:
        try:
            _scan(path, id_column, cols, value_set, images, texts)
        except (OSError, pa.ArrowException):
            unreadable += 1
    return images, texts, unreadable


def _scan(path: str, id_column: str, cols: MediaColumns, value_set: pa.Array, images: dict, texts: dict) -> None:
    with nb.open_shard(path) as fh:
        pf = pq.ParquetFile(fh)
        names = pf.schema_arrow.names
        wanted = [c for c in cols.read() if c in names]
        if id_column not in names or not wanted:
            return
        for group in range(pf.num_row_groups):
            group_ids = _ids(pf.read_row_group(group, columns=[id_column]).column(0))
            if not pc.any(pc.is_in(group_ids, value_set=value_set)).as_py():
                continue
            for batch in pf.iter_batches(batch_size=BATCH_ROWS, row_groups=[group], columns=[id_column, *wanted]):
                bid = _ids(batch.column(id_column))
                mask = pc.is_in(bid, value_set=value_set)
                if not pc.any(mask).as_py():
                    continue
                matched = batch.filter(mask)
                found = bid.filter(mask).to_pylist()
                if cols.image in wanted:
                    for ident, value in zip(found, matched.column(cols.image).to_pylist()):
                        if ident not in images:
                            images[ident] = thumbnails.thumbnail(value, cols.layout, cols.base, cols.shape)
                if cols.text in wanted:
                    for ident, value in zip(found, matched.column(cols.text).to_pylist()):
                        texts.setdefault(ident, snippets.as_text(value))


def _problem(row: dict, column: str) -> str | None:
    """The row check's problem text for ``column`` (its unreadable image), from the row's evidence lines."""
    for e in row.get("evidence") or []:
        if e.get("detector") == "validation" and column in e.get("code", ""):
            for line in e.get("lines") or []:
                if "problem" in line:
                    return line.split("problem: ", 1)[-1]
    return None


def show_media(out_dir: str, record, q) -> None:
    """Give ``q.rows`` and ``q.references`` their ``im`` / ``imx`` / ``tx`` / ``hl`` and set ``q.media``."""
    cols = MediaColumns.of(record)
    if cols is None or not q.rows:
        return
    if cols.image is not None and q.thumbs is not None and q.thumbs.column == cols.image:
        q.thumbs = None  # a declared-pixels column: shown from its values as an image, not as a vector
        for r in [*q.rows, *q.references.values()]:
            r.pop("px", None)
    ids = wanted_ids(q.rows)
    images, texts, _ = fetch(nb.run_files(out_dir, record), q.id_column, cols, ids)
    entries: dict[str, list[dict]] = {}  # id -> the dicts the page reads: its rows and its reference entry
    for row in q.rows:
        entries.setdefault(str(row["id"]), []).append(row)
    for ident in ids:
        if ident in q.references and q.references[ident] not in entries.get(ident, []):
            entries.setdefault(ident, []).append(q.references[ident])
    order = [(ident, entry) for ident in ids for entry in entries.get(ident, [])]
    media: dict = {"image": cols.image, "text": cols.text, "snippet": snippets.SNIPPET_CHARS}
    if cols.image is not None:
        own = sum(1 for _, entry in order if "rank" in entry)  # the suspects', first in ``order``
        first_page = {i for row in q.rows[:PAGE_ROWS] for i in shown_refs(row)}
        core = own + sum(1 for ident, entry in order[own:] if ident in first_page)
        stored, side = thumbnails.fit([images.get(ident) for ident, _ in order], (core, own))
        media["images"], media["side"] = stored.pool, side
        for (ident, entry), index in zip(order, stored.indices):
            if index is not None:
                entry["im"] = index
            elif ident in images and images[ident] is None:
                entry["imx"] = _problem(entry, cols.image) or "unreadable image"
            elif ident in images:
                entry["imx"] = LEFT_OUT
    if cols.text is not None:
        shown = [(ident, entry) for ident, entry in order if ident in texts]
        media["texts"] = snippets.attach([e for _, e in shown], [texts[i] for i, _ in shown], q.rows)
    fetched = set(ids)
    for row in q.rows:
        if row["id"] is None or str(row["id"]) not in fetched:  # past MAX_MEDIA_ROWS
            row.update({"imx": LEFT_OUT} if cols.image else {}, **({"txx": LEFT_OUT} if cols.text else {}))
    q.media = media
