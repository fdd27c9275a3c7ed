"""The `pdf` server tool's parser: a PDF file part turned into text, for upstreams that take no documents.

A file part carries the PDF inline (`file_data`: base64, or a `data:application/pdf;base64,` URL) or by
`file_url`, to be read through web_fetch's guarded fetcher (gateway/tools/fetch.py). The text replaces
the part as `<file name="…">…</file>`, so the model knows where it begins and ends; each page a billed unit.
Upstreams that read documents themselves (Anthropic) get the PDF as it came.
"""

import base64
import binascii
import io
from dataclasses import dataclass

MAX_PDF_BYTES = 20 * 1024 * 1024
MAX_PDF_TEXT = 200_000  # characters kept of one file's text


class PdfUnreadable(Exception):
    """The part is not a PDF we can read; the message names why, for the client."""


@dataclass(frozen=True, slots=True)
class PdfText:
    text: str
    pages: int
    truncated: bool
    title: str = ""  # from the file's metadata, when it has one


def pdf_bytes(file_data: str) -> bytes:
    """The PDF in a file part's `file_data`: base64, bare or as a data: URL."""
    payload = file_data
    if file_data.startswith("data:"):
        header, _, payload = file_data.partition(",")
        if ";base64" not in header:
            raise PdfUnreadable("file_data: a data: URL must be base64-encoded")
        media_type = header[5:].split(";", 1)[0]
        if media_type not in ("application/pdf", ""):
            raise PdfUnreadable(f"file_data: {media_type} is not a PDF")
    if len(payload) > MAX_PDF_BYTES * 4 // 3 + 4:
        raise PdfUnreadable(f"file_data: a PDF may be {MAX_PDF_BYTES // (1024 * 1024)} MB at most")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise PdfUnreadable("file_data: not valid base64") from exc
    if not data.startswith(b"%PDF-"):
        raise PdfUnreadable("file_data: not a PDF (it does not start with %PDF-)")
    return data


def pdf_text(data: bytes, filename: str = "") -> PdfText:
    """The text of a PDF, page by page; PdfUnreadable when it cannot be read."""
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        texts = [page.extract_text() or "" for page in reader.pages]
        title = str(reader.metadata.title or "") if reader.metadata else ""
    except Exception as exc:  # pypdf raises many kinds on a broken file: all mean the same to the client
        raise PdfUnreadable(f"{filename or 'the file'}: not a readable PDF") from exc
    text = "\n\n".join(texts).strip()
    pages = len(texts)
    truncated = len(text) > MAX_PDF_TEXT
    return PdfText(text[:MAX_PDF_TEXT], pages, truncated, title)


def as_context(parsed: PdfText, filename: str) -> str:
    """How the model reads a parsed file: delimited and named, marked when cut."""
    cut = "\n[…the rest of the file is cut]" if parsed.truncated else ""
    return f'<file name="{filename or "document.pdf"}" pages="{parsed.pages}">\n{parsed.text}{cut}\n</file>'
