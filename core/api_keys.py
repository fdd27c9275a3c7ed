"""Where a request carries its API key: the three header forms the SDKs send."""


def key_from_headers(*, authorization: str, x_api_key: str) -> str | None:
    """`Authorization: Bearer <key>` (OpenAI SDK), `x-api-key: <key>` (Anthropic SDK) or
    `Authorization: Api-Key <key>`; the header values as received ("" when absent)."""
    scheme, _, credential = authorization.partition(" ")
    if scheme.lower() in ("bearer", "api-key") and credential.strip():
        return credential.strip()
    return x_api_key.strip() or None
