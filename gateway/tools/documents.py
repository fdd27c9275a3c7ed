"""The `pdf` server tool (ADR 0013): a request's PDF file parts as text, for upstreams that read no documents.

Every PDF part of the conversation — in a message or inside a tool result, inline (`file_data`: base64 or a
`data:` URL) or by `file_url`, fetched through web_fetch's guarded session — becomes a text block
`<file name="…" pages="…">…</file>` (gateway/tools/pdf.py). Other files are left as they are. Each page read
is a billed unit (`pdf` per `page` in providers.yaml). The pipeline skips this when every route of the model
reads documents itself (Anthropic), which then get the PDF as it came. A part that is not a readable PDF is
the client's error: invalid_request naming where it is in the conversation.
"""

import asyncio
from dataclasses import dataclass, replace

from core.errors import ApiError, ErrorCode
from gateway.canonical import Block, CanonicalRequest, FileBlock, TextBlock, ToolResultBlock
from gateway.tools.base import ToolContext
from gateway.tools.fetch import FetchRefused, fetch_bytes
from gateway.tools.pdf import MAX_PDF_BYTES, PdfText, PdfUnreadable, as_context, pdf_bytes, pdf_text

MAX_FILES = 20  # PDF parts one request may have read
MAX_PAGES = 500  # pages, all its PDFs together


@dataclass(frozen=True, slots=True)
class DocumentsRead:
    request: CanonicalRequest  # with each PDF part replaced by its text
    pages: int  # the billed units
    files: int


async def pdf_parts_as_text(request: CanonicalRequest, context: ToolContext) -> DocumentsRead:
    """The request with its PDF parts as text; the same request (and 0 pages) when it has none."""
    reader = _Reader(context)
    messages = []
    for position, message in enumerate(request.messages):
        where = f"messages[{position}].content"
        blocks = [await reader.block(block, f"{where}[{i}]") for i, block in enumerate(message.content)]
        messages.append(message if blocks == message.content else replace(message, content=blocks))
    if not reader.files:
        return DocumentsRead(request, 0, 0)
    return DocumentsRead(replace(request, messages=messages), reader.pages, reader.files)


class _Reader:
    def __init__(self, context: ToolContext) -> None:
        self.context = context
        self.pages = 0
        self.files = 0

    async def block(self, block: Block, where: str) -> Block:
        if isinstance(block, ToolResultBlock):
            parts = [await self.block(part, f"{where}.content[{i}]") for i, part in enumerate(block.content)]
            return block if parts == block.content else replace(block, content=parts)  # type: ignore[arg-type]
        if isinstance(block, FileBlock) and _is_pdf(block):
            return await self.read(block, where)
        return block

    async def read(self, block: FileBlock, where: str) -> TextBlock:
        if self.files >= MAX_FILES:
            raise _refused(where, f"at most {MAX_FILES} PDF files a request")
        try:
            data = await self._bytes(block)
            parsed: PdfText = await asyncio.to_thread(pdf_text, data, block.filename or "")
        except (PdfUnreadable, FetchRefused) as exc:
            raise _refused(where, str(exc)) from exc
        self.files += 1
        self.pages += parsed.pages
        if self.pages > MAX_PAGES:
            raise _refused(where, f"at most {MAX_PAGES} PDF pages a request")
        return TextBlock(as_context(parsed, block.filename or ""))

    async def _bytes(self, block: FileBlock) -> bytes:
        if block.file_data:
            return pdf_bytes(block.file_data)
        if not block.file_url:
            raise PdfUnreadable("file_id: there is no file store; send the file as file_data or file_url")
        if self.context.fetch_session is None:
            raise PdfUnreadable("file_url: fetching files is not available on this deployment")
        _, _, body = await fetch_bytes(block.file_url, self.context.fetch_session, max_bytes=MAX_PDF_BYTES)
        if not body.startswith(b"%PDF-"):
            raise PdfUnreadable(f"file_url: {block.file_url} is not a PDF")
        return body


def _is_pdf(block: FileBlock) -> bool:
    """A part to read: inline data that says it is a PDF (or a bare base64 one), or a URL; a file by id
    cannot be read (there is no file store) and is refused."""
    if block.file_id and not (block.file_data or block.file_url):
        return True
    if block.file_data:
        header = block.file_data[:64]
        return not header.startswith("data:") or header.startswith(("data:application/pdf", "data:;"))
    return bool(block.file_url)


def _refused(where: str, problem: str) -> ApiError:
    return ApiError(ErrorCode.INVALID_REQUEST, f"{where}: {problem}", param="messages")
