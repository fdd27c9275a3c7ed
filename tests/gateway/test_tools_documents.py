"""The pdf tool's request transform (gateway/tools/documents.py): PDF parts of the conversation become text,
page-counted for the bill; a file by URL is fetched through the guarded session; what cannot be read is the
client's error, naming where it is."""

import asyncio
import base64

import pytest

from core.errors import ApiError
from gateway.canonical import CanonicalRequest, FileBlock, Message, TextBlock, ToolResultBlock
from gateway.tools.base import ToolContext
from gateway.tools.documents import MAX_FILES, pdf_parts_as_text
from gateway.tools.fetch import fetch_session
from tests.fakes.server import FakeServer
from tests.gateway.test_tools_fetch import StubResolver, minimal_pdf, site_app

PDF = base64.b64encode(minimal_pdf("Quarterly revenue grew 12 percent")).decode()


def read(*messages: Message, resolver=None):
    async def go():
        if resolver is None:
            return await pdf_parts_as_text(CanonicalRequest("m", list(messages)), ToolContext(session=None))
        async with fetch_session(resolver) as session:
            context = ToolContext(session=None, fetch_session=session)
            return await pdf_parts_as_text(CanonicalRequest("m", list(messages)), context)

    return asyncio.run(go())


@pytest.mark.parametrize("file_data", [PDF, f"data:application/pdf;base64,{PDF}"], ids=["bare", "data-url"])
def test_a_pdf_part_becomes_delimited_text_and_its_pages_are_counted(file_data):
    part = FileBlock(filename="q3.pdf", file_data=file_data)
    read_ = read(Message("user", [TextBlock("Summarise"), part]))
    [message] = read_.request.messages
    assert message.content == [
        TextBlock("Summarise"),
        TextBlock('<file name="q3.pdf" pages="1">\nQuarterly revenue grew 12 percent\n</file>'),
    ]
    assert (read_.pages, read_.files) == (1, 1)


def test_a_pdf_in_a_tool_result_is_read_and_other_files_stay():
    note = FileBlock(filename="n.txt", file_data="data:text/plain;base64," + base64.b64encode(b"hi").decode())
    result = ToolResultBlock("call_1", [FileBlock(file_data=PDF), note])
    read_ = read(Message("tool", [result]))
    [text, kept] = read_.request.messages[0].content[0].content
    assert text.text.startswith('<file name="document.pdf" pages="1">') and kept == note
    assert read_.pages == 1


def test_a_request_without_pdfs_is_the_same_object_and_costs_nothing():
    messages = [Message("user", [TextBlock("hi")])]
    request = CanonicalRequest("m", messages)
    read_ = asyncio.run(pdf_parts_as_text(request, ToolContext(session=None)))
    assert read_.request is request and (read_.pages, read_.files) == (0, 0)


@pytest.mark.parametrize(
    ("part", "problem"),
    [
        (FileBlock(file_data=base64.b64encode(b"%PDF-1.4 broken").decode()), "not a readable PDF"),
        (FileBlock(file_data="%%% not base64"), "not valid base64"),
        (FileBlock(file_id="file-abc"), "there is no file store"),
        (FileBlock(file_url="https://example.com/a.pdf"), "fetching files is not available"),
    ],
)
def test_what_cannot_be_read_is_refused_naming_the_part(part, problem):
    with pytest.raises(ApiError) as refused:
        read(Message("user", [TextBlock("x")]), Message("user", [TextBlock("y"), part]))
    assert refused.value.status == 400 and refused.value.message.startswith("messages[1].content[1]: ")
    assert problem in refused.value.message


def test_more_files_than_the_limit_are_refused():
    parts = [FileBlock(file_data=PDF) for _ in range(MAX_FILES + 1)]
    with pytest.raises(ApiError, match=f"at most {MAX_FILES} PDF files"):
        read(Message("user", parts))


@pytest.fixture
def site_port():
    with FakeServer(site_app()) as server:
        yield server.url.rsplit(":", 1)[1]


def test_a_file_by_url_is_fetched_through_the_guarded_session(site_port):
    allowed = StubResolver({"docs.test": ["127.0.0.1"]}, allowed=("127.0.0.0/8",))
    part = FileBlock(file_url=f"http://docs.test:{site_port}/paper.pdf")
    read_ = read(Message("user", [part]), resolver=allowed)
    assert "Hello PDF" in read_.request.messages[0].content[0].text and read_.pages == 1
    refused = StubResolver({"docs.test": ["127.0.0.1"]})  # loopback, not opened by the operator
    with pytest.raises(ApiError, match="which is not on the public internet"):
        read(Message("user", [part]), resolver=refused)
    not_pdf = FileBlock(file_url=f"http://docs.test:{site_port}/notes.txt")
    with pytest.raises(ApiError, match="is not a PDF"):
        read(Message("user", [not_pdf]), resolver=allowed)
