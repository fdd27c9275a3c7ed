"""Comparing our operations with the spec's."""


def _marked(schema) -> bool:
    return isinstance(schema, dict) and bool(schema.get("x-hyperinfer-extension"))


def without_extensions(node):
    """The document less what we add to the spec (schema properties, `anyOf` variants, `allOf` parts and
    operation `parameters`), each marked `x-hyperinfer-extension`. A `parameters` list that held only our
    additions goes too, as the spec has none."""
    if isinstance(node, list):
        return [without_extensions(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: without_extensions(value) for key, value in node.items()}
    if isinstance(out.get("properties"), dict):
        out["properties"] = {name: s for name, s in out["properties"].items() if not _marked(s)}
    if isinstance(node.get("anyOf"), list):
        out["anyOf"] = [without_extensions(s) for s in node["anyOf"] if not _marked(s)]
        if len(out) == 1 and len(out["anyOf"]) == 1:  # only our variants were added: the spec's schema
            return out["anyOf"][0]
    if isinstance(node.get("allOf"), list):
        out["allOf"] = [without_extensions(s) for s in node["allOf"] if not _marked(s)]
        if len(out) == 1 and len(out["allOf"]) == 1:  # the spec's schema with our fields added
            return out["allOf"][0]
    if isinstance(node.get("parameters"), list):
        out["parameters"] = [without_extensions(p) for p in node["parameters"] if not _marked(p)]
        if node["parameters"] and not out["parameters"]:
            del out["parameters"]
    return out


def as_the_spec_documents_it(content):
    """Our media types less what we add to the spec's: request `examples`, and an event stream's schema of
    one event (how OpenAPI 3.1 tools read it), where the spec's is a string with the same description."""
    if not isinstance(content, dict):
        return content
    out = {key: as_the_spec_documents_it(value) for key, value in content.items() if key != "examples"}
    if "text/event-stream" in out:
        event = out["text/event-stream"]["schema"]
        assert event["type"] == "object" and event["required"] == ["data"]
        out["text/event-stream"] = {"schema": {"type": "string", "description": event["description"]}}
    return out
