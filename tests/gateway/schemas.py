"""Comparing our operations with the spec's."""


def _marked(schema) -> bool:
    return isinstance(schema, dict) and bool(schema.get("x-hyperinfer-extension"))


def without_extensions(node):
    """The document less what we add to the spec (schema properties, `anyOf` variants and operation
    `parameters`), each marked `x-hyperinfer-extension`. A `parameters` list that held only our additions
    goes too, as the spec has none."""
    if isinstance(node, list):
        return [without_extensions(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: without_extensions(value) for key, value in node.items()}
    if isinstance(out.get("properties"), dict):
        out["properties"] = {name: s for name, s in out["properties"].items() if not _marked(s)}
    if isinstance(node.get("anyOf"), list):
        out["anyOf"] = [without_extensions(s) for s in node["anyOf"] if not _marked(s)]
    if isinstance(node.get("parameters"), list):
        out["parameters"] = [without_extensions(p) for p in node["parameters"] if not _marked(p)]
        if node["parameters"] and not out["parameters"]:
            del out["parameters"]
    return out
