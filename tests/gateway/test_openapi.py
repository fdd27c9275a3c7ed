"""GET /openapi.json: one valid OpenAPI 3.1 document, true to the spec, the validators and the views."""

import asyncio
import json

import pytest
from django.urls import Resolver404, resolve
from jsonschema import Draft202012Validator

from console.services.keys import api_key_create
from gateway.ingress.chat_completions import REQUEST_VALIDATOR
from gateway.openapi import encoded_document, openapi_document, openapi_json
from tests.factories import make_workspace
from tests.gateway.schemas import as_the_spec_documents_it, without_extensions

METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
MANAGEMENT = {
    ("/api/v1/credits", "get"): "bearerAuth",
    ("/api/v1/key", "get"): "bearerAuth",
    ("/api/v1/playground-keys", "post"): "internalToken",
}


@pytest.fixture(scope="module")
def document() -> dict:
    return openapi_document()


def operations(document: dict):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield path, method, operation


def walk(node, where: str = "#"):
    """Every (location, dict) in a JSON tree."""
    if isinstance(node, dict):
        yield where, node
        for key, value in node.items():
            yield from walk(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, f"{where}/{index}")


def pointer(document: dict, ref: str):
    node = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def media_schemas(operation: dict):
    """Every schema an operation names: parameters, request body and responses."""
    for parameter in operation.get("parameters", []):
        yield parameter["schema"]
    for media in operation.get("requestBody", {}).get("content", {}).values():
        yield media["schema"]
    for response in operation["responses"].values():
        for media in response.get("content", {}).values():
            yield media["schema"]


def effective_security(document: dict, operation: dict) -> list:
    return operation.get("security", document.get("security", []))


def body_schema(operation: dict) -> dict:
    return operation["requestBody"]["content"]["application/json"]["schema"]


# --- The document is valid OpenAPI 3.1 -----------------------------------------------------------------


def test_the_document_is_structurally_valid_openapi_3_1(document):
    assert document["openapi"] == "3.1.0"
    assert document["info"]["title"] and document["info"]["version"]
    assert set(document) <= {"openapi", "info", "servers", "security", "tags", "paths", "components"}
    declared_tags = {tag["name"] for tag in document["tags"]}
    schemes = document["components"]["securitySchemes"]
    operation_ids = []
    for path, method, operation in operations(document):
        assert path.startswith("/"), path
        operation_ids.append(operation["operationId"])
        assert set(operation["tags"]) <= declared_tags, (path, method)
        assert operation["responses"], (path, method)
        for status, response in operation["responses"].items():
            assert status == "default" or (status.isdigit() and len(status) == 3), (path, status)
            assert isinstance(response["description"], str), (path, method, status)
        for requirement in effective_security(document, operation):
            assert set(requirement) <= set(schemes), (path, method, requirement)
        for parameter in operation.get("parameters", []):
            assert parameter["in"] in {"query", "header", "path", "cookie"} and parameter["name"]
    assert len(operation_ids) == len(set(operation_ids)), "operationIds must be unique"


def test_every_ref_resolves(document):
    refs = [(where, node["$ref"]) for where, node in walk(document) if "$ref" in node]
    assert refs
    for where, ref in refs:
        assert ref.startswith("#/"), f"{where}: external $ref {ref}"
        try:
            pointer(document, ref)
        except (KeyError, IndexError, TypeError):
            pytest.fail(f"{where}: $ref {ref} does not resolve")


def test_every_schema_is_a_valid_draft_2020_12_schema(document):
    schemas = list(document["components"]["schemas"].values())
    for _, _, operation in operations(document):
        schemas.extend(media_schemas(operation))
    assert len(schemas) > 20
    for schema in schemas:
        Draft202012Validator.check_schema(schema)


def test_the_document_is_plain_json(document):
    assert json.loads(json.dumps(document)) == document


# --- True to the validators, the routes and the spec ---------------------------------------------------


def test_the_chat_completions_body_is_the_schema_the_validator_uses(document):
    operation = document["paths"]["/api/v1/chat/completions"]["post"]
    assert operation["requestBody"]["required"] is True
    assert body_schema(operation) == REQUEST_VALIDATOR.schema


def test_every_gateway_route_is_documented(document):
    from gateway.app import routes

    documented = {(method.upper(), path) for path, method, _ in operations(document)}
    assert {*routes(), ("GET", "/openapi.json")} <= documented


def test_every_documented_path_is_served(document):
    """Nothing promised that is not implemented (responses, messages, models come when they exist)."""
    from gateway.app import is_gateway_path

    for path in document["paths"]:
        if is_gateway_path(path):
            continue
        try:
            match = resolve(path)
        except Resolver404:
            pytest.fail(f"{path} is documented but not served")
        assert match.url_name.startswith("api-"), path


def test_operations_the_spec_defines_match_it(document, hyperinfer_spec):
    compared = set()
    for path, method, operation in operations(document):
        expected = hyperinfer_spec["paths"].get(path, {}).get(method)
        if expected is None:
            continue
        compared.add(operation["operationId"])
        where = f"{method.upper()} {path}"
        assert operation["operationId"] == expected["operationId"], where
        # Our request schemas and parameters are the spec's, plus a few optional ones, each marked as an
        # extension.
        ours = without_extensions(operation)
        assert as_the_spec_documents_it(ours.get("requestBody")) == expected.get("requestBody"), where
        assert ours.get("parameters") == expected.get("parameters"), where
        assert operation["tags"] == expected["tags"], where
        assert operation.get("x-internal") == expected.get("x-internal"), where
        assert effective_security(document, operation) == effective_security(hyperinfer_spec, expected)
        # The spec's responses, and only errors besides (the 400 our `format` extension can answer).
        for status in set(operation["responses"]) - set(expected["responses"]):
            schema = operation["responses"][status]["content"]["application/json"]["schema"]
            assert status.startswith("4") and schema == {"$ref": "#/components/schemas/OpenAIError"}, where
        for status, response in expected["responses"].items():
            ours = without_extensions(operation["responses"][status].get("content"))
            assert as_the_spec_documents_it(ours) == response.get("content"), (where, status)
    assert compared >= {
        "createChatCompletion",
        "getGeneration",
        "mintPlaygroundKey",
        "getHealthz",
        "getReadyz",
        "getOpenApi",
        "createResponse",
        "createMessage",
        "listModels",
    }


def test_the_request_examples_are_valid_requests(document):
    for path, method, operation in operations(document):
        for media_type in operation.get("requestBody", {}).get("content", {}).values():
            validator = Draft202012Validator(media_type["schema"])
            for name, example in media_type.get("examples", {}).items():
                assert not list(validator.iter_errors(example["value"])), (method, path, name)


def test_the_catalog_operations_are_public_and_take_the_format_extension(document):
    listing = document["paths"]["/api/v1/models"]["get"]
    one = document["paths"]["/api/v1/models/{slug}"]["get"]
    assert one["operationId"] == "getModel" and one["tags"] == ["Catalog"] and one["security"] == []
    [format_parameter] = listing["parameters"]
    assert format_parameter["x-hyperinfer-extension"] is True and format_parameter["description"]
    assert format_parameter["in"] == "query" and not format_parameter.get("required")
    assert set(format_parameter["schema"]["enum"]) == {"default", "openrouter", "huggingface"}
    by_name = {parameter["name"]: parameter for parameter in one["parameters"]}
    assert by_name["format"] == format_parameter
    assert by_name["slug"]["in"] == "path" and by_name["slug"]["required"] is True
    assert one["responses"]["default"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/OpenAIError"
    }


def test_without_extensions_drops_marked_parameters_and_keeps_the_rest():
    ours = {"in": "query", "name": "id", "schema": {"type": "string"}}
    added = {"in": "query", "name": "format", "x-hyperinfer-extension": True}
    assert without_extensions({"parameters": [ours, added]}) == {"parameters": [ours]}
    assert without_extensions({"parameters": [added]}) == {}
    assert without_extensions({"parameters": []}) == {"parameters": []}


def test_the_extensions_to_the_specs_request_schemas_are_optional_and_described(document):
    marked = [
        (where, node)
        for where, node in walk(document["paths"])
        if isinstance(node, dict) and node.get("x-hyperinfer-extension")
    ]
    names = {where.split("/properties/")[-1] for where, _ in marked}
    assert names >= {
        "id",
        "status",
        "encrypted_content",
        "reasoning_details",
        "disable_parallel_tool_use",
        "cache_control",
    }
    assert any(
        node.get("properties", {}).get("type", {}).get("const") == "redacted_thinking" for _, node in marked
    )
    for where, node in marked:
        assert node["description"], where
    for _, node in walk(document["paths"]):
        for name in node.get("required", []) if isinstance(node.get("required"), list) else []:
            assert not node.get("properties", {}).get(name, {}).get("x-hyperinfer-extension"), name


def test_the_components_are_the_specs(document, hyperinfer_spec):
    ours, theirs = document["components"], hyperinfer_spec["components"]
    assert ours["securitySchemes"] == theirs["securitySchemes"]
    for name, schema in theirs["schemas"].items():
        assert ours["schemas"][name] == schema, name
    assert document["servers"] == hyperinfer_spec["servers"]
    assert document["security"] == hyperinfer_spec["security"]


def test_the_management_api_is_generated_from_the_views_with_its_security(document):
    for (path, method), scheme in MANAGEMENT.items():
        operation = document["paths"][path][method]
        assert operation["security"] == [{scheme: []}], path
        assert operation["responses"]["default"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/OpenAIError"
        }
    playground = document["paths"]["/api/v1/playground-keys"]["post"]
    assert playground["x-internal"] is True and playground["operationId"] == "mintPlaygroundKey"
    assert body_schema(playground)["required"] == ["workspace_id", "user_id"]
    for path in ("/api/v1/credits", "/api/v1/key"):
        schema = document["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        data = pointer(document, pointer(document, schema["$ref"])["properties"]["data"]["$ref"])
        assert len(data["properties"]) >= 7, path


def response_validator(document: dict, path: str, method: str, status: str):
    schema = document["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"]
    return Draft202012Validator({**schema, "components": document["components"]})


@pytest.mark.django_db
def test_the_management_responses_match_their_documentation(client, document):
    issued = api_key_create(
        workspace=make_workspace(credits_micro_usd=3_000_000), name="docs", created_by=None, rate_limit_rpm=30
    )
    for path in ("/api/v1/credits", "/api/v1/key"):
        response = client.get(path, HTTP_AUTHORIZATION=f"Bearer {issued.secret}")
        assert response.status_code == 200
        response_validator(document, path, "get", "200").validate(response.json())
        error = client.get(path, HTTP_AUTHORIZATION="Bearer hi-wrong")
        assert error.status_code == 401
        response_validator(document, path, "get", "default").validate(error.json())


def assert_exactly_documented(document: dict, schema: dict, instance, where: str = "$") -> None:
    """Every object in `instance` has exactly the properties its schema declares: none missing, none extra
    (the JSON Schema check above lets undeclared properties through)."""
    while "$ref" in schema or "allOf" in schema:
        schema = pointer(document, schema["$ref"]) if "$ref" in schema else schema["allOf"][0]
    if isinstance(instance, dict) and "properties" in schema:
        assert set(instance) == set(schema["properties"]), where
        for name, value in instance.items():
            assert_exactly_documented(document, schema["properties"][name], value, f"{where}.{name}")
    elif isinstance(instance, list) and "items" in schema:
        for index, value in enumerate(instance):
            assert_exactly_documented(document, schema["items"], value, f"{where}[{index}]")


@pytest.mark.django_db
def test_the_management_responses_have_exactly_the_documented_properties(client, document, settings):
    settings.INTERNAL_TOKEN = "internal-token-for-tests-0123456789abcdef"
    workspace = make_workspace(credits_micro_usd=3_000_000)
    issued = api_key_create(
        workspace=workspace, name="docs", created_by=None, limit_micro_usd=1_000_000, rate_limit_rpm=30
    )
    for path in ("/api/v1/credits", "/api/v1/key"):
        response = client.get(path, HTTP_AUTHORIZATION=f"Bearer {issued.secret}")
        schema = document["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        assert_exactly_documented(document, schema, response.json(), path)
    owner = workspace.memberships.get().user
    response = client.post(
        "/api/v1/playground-keys",
        {"workspace_id": str(workspace.pk), "user_id": str(owner.pk)},
        content_type="application/json",
        HTTP_X_INTERNAL_TOKEN=settings.INTERNAL_TOKEN,
    )
    assert response.status_code == 201
    operation = document["paths"]["/api/v1/playground-keys"]["post"]
    schema = operation["responses"]["201"]["content"]["application/json"]["schema"]
    assert_exactly_documented(document, schema, response.json(), "playground-keys")


# --- Served over HTTP ----------------------------------------------------------------------------------


def call(headers: list[tuple[bytes, bytes]] | None = None) -> tuple[int, dict[bytes, bytes], bytes]:
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/openapi.json", "headers": headers or []}
    asyncio.run(openapi_json(scope, receive, send))
    start, body = sent
    assert start["type"] == "http.response.start" and body["type"] == "http.response.body"
    return start["status"], dict(start["headers"]), body["body"]


def test_the_handler_serves_the_document_cacheable_for_five_minutes():
    encoded_document.cache_clear()  # the first request computes it, off the event loop
    status, headers, body = call()
    assert status == 200
    assert headers[b"content-type"] == b"application/json"
    assert headers[b"cache-control"] == b"public, max-age=300"
    assert headers[b"etag"].startswith(b'"') and headers[b"etag"].endswith(b'"')
    assert int(headers[b"content-length"]) == len(body)
    assert json.loads(body) == openapi_document()
    assert call()[1][b"etag"] == headers[b"etag"]  # stable across requests


@pytest.mark.parametrize("form", ["{}", "W/{}", '"other", {}', "*"])
def test_a_matching_if_none_match_gets_304_without_a_body(form):
    etag = call()[1][b"etag"]
    status, headers, body = call([(b"if-none-match", form.format(etag.decode()).encode())])
    assert status == 304 and body == b""
    assert headers[b"etag"] == etag and headers[b"cache-control"] == b"public, max-age=300"


def test_a_stale_if_none_match_gets_the_document():
    status, _, body = call([(b"if-none-match", b'"stale"')])
    assert status == 200 and json.loads(body)["openapi"] == "3.1.0"
