"""Every JSON request body of the API is an object; anything else is refused here, once, with a 400."""
from __future__ import annotations

from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

_JSON_KINDS = {list: "a list", str: "a string", int: "a number", float: "a number", bool: "true or false"}


class JsonObjectParser(JSONParser):
    """JSONParser that refuses a body such as `42`, `[1, 2]` or `null`, which views would otherwise read
    as a dict and crash on."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        data = super().parse(stream, media_type, parser_context)
        if not isinstance(data, dict):
            kind = "null" if data is None else _JSON_KINDS.get(type(data), type(data).__name__)
            raise ParseError(f'The request body must be a JSON object such as {{"prompt": "..."}}, not {kind}.')
        return data
