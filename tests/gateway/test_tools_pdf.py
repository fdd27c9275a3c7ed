"""The pdf tool's parser: a PDF file part, inline as base64 or a data: URL, becomes delimited text; what is
not a readable PDF is refused with the reason."""

import base64

import pytest

from gateway.tools.pdf import MAX_PDF_TEXT, PdfText, PdfUnreadable, as_context, pdf_bytes, pdf_text
from tests.gateway.test_tools_fetch import minimal_pdf

PDF = minimal_pdf("Quarterly revenue grew 12 percent")


@pytest.mark.parametrize(
    "file_data",
    [base64.b64encode(PDF).decode(), "data:application/pdf;base64," + base64.b64encode(PDF).decode()],
    ids=["bare", "data-url"],
)
def test_a_pdf_part_becomes_its_text_delimited_and_named(file_data):
    parsed = pdf_text(pdf_bytes(file_data), "report.pdf")
    assert (parsed.text, parsed.pages, parsed.truncated) == ("Quarterly revenue grew 12 percent", 1, False)
    assert as_context(parsed, "report.pdf") == (
        '<file name="report.pdf" pages="1">\nQuarterly revenue grew 12 percent\n</file>'
    )


@pytest.mark.parametrize(
    ("file_data", "reason"),
    [
        ("not base64 at all!", "not valid base64"),
        (base64.b64encode(b"GIF89a...").decode(), "not a PDF"),
        ("data:image/png;base64," + base64.b64encode(PDF).decode(), "image/png is not a PDF"),
        ("data:application/pdf," + PDF.decode("latin-1"), "must be base64"),
    ],
)
def test_what_is_not_a_pdf_is_refused_with_the_reason(file_data, reason):
    with pytest.raises(PdfUnreadable, match=reason):
        pdf_bytes(file_data)


def test_a_broken_pdf_is_unreadable_not_a_crash():
    with pytest.raises(PdfUnreadable, match="not a readable PDF"):
        pdf_text(b"%PDF-1.4\n" + b"\x00garbage" * 100, "broken.pdf")


def test_a_long_text_is_cut_and_marked():
    long = PdfText("y" * MAX_PDF_TEXT, 300, truncated=True)
    assert as_context(long, "").endswith("[…the rest of the file is cut]\n</file>")
    assert as_context(long, "").startswith('<file name="document.pdf" pages="300">')
