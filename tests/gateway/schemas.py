"""Comparing our request schemas with the spec's."""


def without_extensions(node):
    """The document less the properties we add to the spec's schemas, each marked `x-hyperinfer-extension`."""
    if isinstance(node, list):
        return [without_extensions(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: without_extensions(value) for key, value in node.items()}
    if isinstance(out.get("properties"), dict):
        out["properties"] = {
            name: schema
            for name, schema in out["properties"].items()
            if not (isinstance(schema, dict) and schema.get("x-hyperinfer-extension"))
        }
    return out
