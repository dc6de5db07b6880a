"""What the OpenAPI document says of routes that read their input themselves.

Some routes read their JSON body (or the ticket list its query string) by hand, to bound its
size and answer with the project's own errors; FastAPI then knows nothing of that input. The
helpers here give such a route its ``openapi_extra``, so that ``/openapi.json`` describes
every operation whole, for integrators and for the API fuzz tests alike.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


def json_body(schema: type[BaseModel] | dict[str, Any], *, form: bool = False) -> dict[str, Any]:
    """``openapi_extra`` for a required JSON body of ``schema`` (also as a urlencoded form)."""
    body = schema if isinstance(schema, dict) else schema.model_json_schema()
    content = {"application/json": {"schema": body}}
    if form:
        content["application/x-www-form-urlencoded"] = {"schema": body}
    return {"requestBody": {"required": True, "content": content}}


def query_parameters(
    model: type[BaseModel], *, repeated: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """``openapi_extra`` listing ``model``'s fields (by alias) as optional query parameters;
    the names in ``repeated`` may be given more than once."""
    schema = model.model_json_schema(by_alias=True)
    parameters = []
    for name, field in schema["properties"].items():
        # an optional field is simply left out of a query string: no null to send
        variants = [v for v in field.get("anyOf", []) if v.get("type") != "null"]
        if len(variants) == 1:
            field = {k: v for k, v in field.items() if k != "anyOf"} | variants[0]
        if name in repeated:
            field = {"type": "array", "items": field.get("items", {"type": "string"})}
        parameters.append(
            {"name": name, "in": "query", "required": False, "schema": field}
            | ({"style": "form", "explode": True} if name in repeated else {})
        )
    return {"parameters": parameters}
