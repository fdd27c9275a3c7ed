"""Token estimates before a request runs.

`reservation_prompt_tokens` is what a request holds before it goes upstream (design §4.1): it must err high,
so a file counts a token per byte of its content (a PDF page costs more tokens than it has bytes of text),
and a file by reference counts as the whole context. It is capped at the model's context length, since the
upstream refuses a longer prompt (and a refused request costs nothing). `estimate_prompt_tokens` is the
text-only estimate the meters fall back on when an upstream reports no usage. `prompt_tokens_at_least` errs
low: a prompt above the model's context even by that count is refused before anything is reserved or sent.
"""

from collections.abc import Iterable

from gateway.canonical import (
    Block,
    CanonicalRequest,
    FileBlock,
    ImageBlock,
    TextBlock,
    ToolCallBlock,
    ToolResultBlock,
)

_CHARS_PER_TOKEN = 3  # deliberately below the usual ~4, so the estimate errs high
_MOST_CHARS_PER_TOKEN = 16  # no tokenizer in the catalog packs more text into one token (runs of spaces)
_PER_MESSAGE = 4
_PER_IMAGE = 1_000


def estimate_prompt_tokens(request: CanonicalRequest) -> int:
    chars, images = _prompt_size(request)
    return text_tokens(chars) + _PER_MESSAGE * len(request.messages) + _PER_IMAGE * images


def text_tokens(chars: int) -> int:
    """The estimate for `chars` characters of text (errs high, as estimate_prompt_tokens does)."""
    return -(-chars // _CHARS_PER_TOKEN)


def prompt_tokens_at_least(request: CanonicalRequest) -> int:
    """A count the prompt's real one cannot be below: its text at the most characters a token can hold."""
    chars, _ = _prompt_size(request)
    return chars // _MOST_CHARS_PER_TOKEN


def _prompt_size(request: CanonicalRequest) -> tuple[int, int]:
    """(characters of text, images) in the prompt."""
    chars = 0
    images = 0
    for message in request.messages:
        for block in message.content:
            if isinstance(block, TextBlock):
                chars += len(block.text)
            elif isinstance(block, ToolCallBlock):
                chars += len(block.name) + len(block.arguments)
            elif isinstance(block, ToolResultBlock):
                chars += sum(len(part.text) for part in block.content if isinstance(part, TextBlock))
            elif isinstance(block, ImageBlock):
                images += 1
    for tool in request.tools:
        chars += len(tool.name) + len(tool.description or "") + len(str(tool.parameters))
    return chars, images


def reservation_prompt_tokens(
    request: CanonicalRequest, *, context_length: int, estimate: int | None = None
) -> int:
    """The prompt tokens to reserve for: the estimate plus every file's worst case, at most the context.
    `estimate` is `estimate_prompt_tokens(request)`, when the caller has it already (admission does)."""
    files = [block for message in request.messages for block in _with_tool_result_parts(message.content)]
    if estimate is None:
        estimate = estimate_prompt_tokens(request)
    tokens = estimate + sum(
        _file_tokens(block, context_length) for block in files if isinstance(block, FileBlock)
    )
    return min(tokens, context_length)


def _with_tool_result_parts(blocks: Iterable[Block]) -> Iterable[Block]:
    for block in blocks:
        yield block
        if isinstance(block, ToolResultBlock):
            yield from block.content


def _file_tokens(block: FileBlock, context_length: int) -> int:
    if not block.file_data:
        return context_length  # by URL or id: its size is unknown here
    data = block.file_data.partition(",")[2] if block.file_data.startswith("data:") else block.file_data
    return len(data) * 3 // 4  # base64: 4 characters per 3 bytes; a token per byte
