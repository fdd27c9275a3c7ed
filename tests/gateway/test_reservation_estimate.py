"""The reservation's prompt estimate errs high: files count, by reference the whole context, capped at it."""

import base64

import httpx

from gateway.canonical import CanonicalRequest, FileBlock, Message, TextBlock, ToolResultBlock
from gateway.tokens import estimate_prompt_tokens, reservation_prompt_tokens
from tests.factories import make_user, make_workspace

CONTEXT = 131_072


def request_with(*blocks) -> CanonicalRequest:
    return CanonicalRequest(
        model="m", messages=[Message(role="user", content=[TextBlock("Summarise this."), *blocks])]
    )


def pdf_of(size: int) -> str:
    return "data:application/pdf;base64," + base64.b64encode(b"%PDF" + b"x" * (size - 4)).decode()


def test_text_alone_reserves_the_text_estimate():
    request = request_with()
    assert reservation_prompt_tokens(request, context_length=CONTEXT) == estimate_prompt_tokens(request)


def test_a_file_reserves_a_token_per_byte_of_its_content():
    plain = request_with()
    with_pdf = request_with(FileBlock(filename="a.pdf", file_data=pdf_of(30_000)))
    assert (
        reservation_prompt_tokens(with_pdf, context_length=CONTEXT) == estimate_prompt_tokens(plain) + 30_000
    )


def test_an_estimate_the_caller_has_is_used_and_the_files_still_add_theirs():
    with_pdf = request_with(FileBlock(filename="a.pdf", file_data=pdf_of(30_000)))
    assert reservation_prompt_tokens(with_pdf, context_length=CONTEXT, estimate=7) == 7 + 30_000


def test_a_file_inside_a_tool_result_counts_too():
    result = ToolResultBlock(tool_call_id="c1", content=[FileBlock(file_data=pdf_of(9_000))])
    assert reservation_prompt_tokens(request_with(result), context_length=CONTEXT) >= 9_000


def test_a_file_by_reference_reserves_the_whole_context_and_nothing_exceeds_it():
    by_url = request_with(FileBlock(file_url="https://example.com/big.pdf"))
    assert reservation_prompt_tokens(by_url, context_length=CONTEXT) == CONTEXT
    huge = request_with(FileBlock(file_data=pdf_of(500_000)))
    assert reservation_prompt_tokens(huge, context_length=CONTEXT) == CONTEXT


def test_a_workspace_that_affords_the_text_but_not_the_pdf_is_refused_before_anything_runs(gateway_url):
    from console.services.keys import api_key_create

    owner = make_user()
    workspace = make_workspace(owner=owner, credits_micro_usd=50_000)  # $0.05
    key = api_key_create(workspace=workspace, name="k", created_by=owner).secret
    headers = {"Authorization": f"Bearer {key}"}
    text = [{"type": "text", "text": "Summarise this."}]
    pdf = {"type": "file", "file": {"filename": "a.pdf", "file_data": pdf_of(200_000)}}
    body = {"model": "hyperinfer/sandbox-pro", "max_tokens": 100}

    ok = httpx.post(
        f"{gateway_url}/api/v1/chat/completions",
        json={**body, "messages": [{"role": "user", "content": text}]},
        headers=headers,
        timeout=20,
    )
    assert ok.status_code == 200, ok.text
    # 131,072 prompt tokens (the context, at most) at $0.60/M alone is 78,644 µUSD: more than the balance.
    refused = httpx.post(
        f"{gateway_url}/api/v1/chat/completions",
        json={**body, "messages": [{"role": "user", "content": [*text, pdf]}]},
        headers=headers,
        timeout=20,
    )
    assert refused.status_code == 402, refused.text
    assert refused.json()["error"]["code"] == "insufficient_credits"
