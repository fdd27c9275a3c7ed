"""Token estimates before a request runs: only for the reservation, never for billing."""

from gateway.canonical import CanonicalRequest, ImageBlock, TextBlock, ToolCallBlock, ToolResultBlock

_CHARS_PER_TOKEN = 3  # deliberately below the usual ~4, so the estimate errs high
_PER_MESSAGE = 4
_PER_IMAGE = 1_000


def estimate_prompt_tokens(request: CanonicalRequest) -> int:
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
    return -(-chars // _CHARS_PER_TOKEN) + _PER_MESSAGE * len(request.messages) + _PER_IMAGE * images
