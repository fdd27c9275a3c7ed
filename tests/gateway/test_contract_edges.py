"""The edges of the contract: a method a path does not serve gets 405 with Allow; an /api/v1 path nothing
serves gets the JSON envelope, not an HTML page; every answer of /api/v1/generation carries its request id."""

import httpx


def test_a_method_a_path_does_not_serve_gets_405_with_allow(gateway_url):
    answer = httpx.get(f"{gateway_url}/api/v1/chat/completions", timeout=10)
    assert answer.status_code == 405 and answer.headers["allow"] == "POST"
    assert answer.json()["error"]["request_id"] == answer.headers["x-request-id"] != ""
    assert httpx.delete(f"{gateway_url}/api/v1/generation", timeout=10).headers["allow"] == "GET"


def test_an_api_path_nothing_serves_is_a_json_404(gateway_url):
    paths = ("/api/v1/nothing-here", "/api/v1/chat/completion", "/api/v2/models", "/api/v1/models/a%0Ab")
    for path in paths:  # the last: a newline in a slug, which no route pattern matches
        answer = httpx.get(gateway_url + path, timeout=10)
        assert answer.status_code == 404, path
        assert answer.headers["content-type"].startswith("application/json"), path
        error = answer.json()["error"]
        assert error["code"] == "invalid_request" and error["request_id"] == answer.headers["x-request-id"]


def test_an_unknown_model_is_a_404_in_every_format_the_empty_name_too(gateway_url, funded_key):
    _, key = funded_key
    bodies = {
        "/api/v1/chat/completions": {"messages": [{"role": "user", "content": "hi"}]},
        "/api/v1/responses": {"input": "hi"},
        "/api/v1/messages": {"max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]},
    }
    for path, body in bodies.items():
        for model in ("", "nope/nope"):
            answer = httpx.post(
                gateway_url + path, json={**body, "model": model}, headers={"x-api-key": key}, timeout=10
            )
            assert answer.status_code == 404, (path, model)
            error = answer.json()["error"]
            assert (error["code"], error["message"]) == ("invalid_request", f"model: unknown model {model!r}")


def test_generation_lookups_carry_their_request_id(gateway_url, funded_key):
    _, key = funded_key
    headers = {"Authorization": f"Bearer {key}"}
    # No id at all is a bad request; any id, the empty one and one with a NUL included, names nothing.
    for query, status in (("", 400), ("?id=", 404), ("?id=no-such-request", 404), ("?id=a%00b", 404)):
        answer = httpx.get(f"{gateway_url}/api/v1/generation{query}", headers=headers, timeout=10)
        assert answer.status_code == status, query
        assert answer.headers["content-type"].startswith("application/json"), query
        assert answer.json()["error"]["request_id"] == answer.headers["x-request-id"] != "", query
    unauthorized = httpx.get(f"{gateway_url}/api/v1/generation?id=x", timeout=10)
    assert unauthorized.status_code == 401 and unauthorized.headers["x-request-id"]
