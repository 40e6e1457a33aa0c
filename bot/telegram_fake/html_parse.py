"""Telegram's HTML parse mode: turns HTML into plain text plus message entities.

Follows the parser of the official Bot API server (tdlib ``parse_html``): the same
allowed tags, the same error texts and byte offsets, and the same leniency (a bare
``&`` that starts no known entity stays literal text; ``>`` in text is fine).
"""

from __future__ import annotations

import html as _stdlib_html
from dataclasses import dataclass, field
from typing import Any

_TAG_TYPES: dict[str, str] = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_SPACES = b" \t\r\n\f\v"


class EntityParseError(ValueError):
    """The text cannot be parsed; ``str(error)`` is the part after ``can't parse entities: ``."""


@dataclass
class _OpenTag:
    name: str
    argument: str
    utf16_offset: int
    expandable: bool = False


@dataclass
class ParsedText:
    text: str
    entities: list[dict[str, Any]] = field(default_factory=list)


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _decode_entity(data: bytes, pos: int) -> tuple[str, int] | None:
    """Decode an HTML entity at ``data[pos] == '&'``; returns (character, next position)."""
    end = pos + 1
    if end < len(data) and data[end : end + 1] == b"#":
        end += 1
        value = 0
        if data[end : end + 1] == b"x":
            end += 1
            digits = b"0123456789abcdefABCDEF"
            base = 16
        else:
            digits = b"0123456789"
            base = 10
        while end < len(data) and data[end] in digits:
            value = value * base + int(chr(data[end]), 16)
            end += 1
            if value >= 0x10FFFF:
                return None
        if value == 0 or 0xD800 <= value <= 0xDFFF:
            return None
        char = chr(value)
    else:
        while end < len(data) and chr(data[end]).isascii() and chr(data[end]).isalpha():
            end += 1
        name = data[pos + 1 : end].decode("ascii")
        if name not in _NAMED_ENTITIES:
            return None
        char = _NAMED_ENTITIES[name]
    if data[end : end + 1] == b";":
        end += 1
    return char, end


def parse_html(source: str, strict_ampersand: bool = False) -> ParsedText:
    """Parse Telegram HTML. Raises :class:`EntityParseError` with Telegram's wording."""
    data = source.encode("utf-8")
    size = len(data)
    out: list[str] = []
    utf16_offset = 0
    stack: list[_OpenTag] = []
    entities: list[dict[str, Any]] = []
    i = 0

    def at(index: int) -> int:
        return data[index] if index < size else 0

    while i < size:
        c = data[i]
        if c == ord("&"):
            decoded = _decode_entity(data, i)
            if decoded is not None:
                char, i = decoded
                out.append(char)
                utf16_offset += utf16_len(char)
                continue
            if strict_ampersand:
                raise EntityParseError(f'Unescaped "&" at byte offset {i}')
        if c != ord("<"):
            end = i + 1
            while end < size and data[end] not in b"<&":
                end += 1
            chunk = data[i:end].decode("utf-8")
            out.append(chunk)
            utf16_offset += utf16_len(chunk)
            i = end
            continue

        begin = i
        i += 1
        if at(i) != ord("/"):
            name_begin = i
            while i < size and data[i] not in _SPACES and data[i] != ord(">"):
                i += 1
            if i >= size:
                raise EntityParseError(f"Unclosed start tag at byte offset {begin}")
            tag = data[name_begin:i].decode("utf-8", "replace").lower()
            if tag not in _TAG_TYPES:
                raise EntityParseError(f'Unsupported start tag "{tag}" at byte offset {begin}')
            argument = ""
            expandable = False
            while at(i) != ord(">"):
                while i < size and data[i] in _SPACES:
                    i += 1
                if at(i) == ord(">"):
                    break
                attr_begin = i
                while i < size and data[i] not in _SPACES and data[i] not in b"=>":
                    i += 1
                attr = data[attr_begin:i].decode("utf-8", "replace")
                if not attr:
                    raise EntityParseError(
                        f'Empty attribute name in the tag "{tag}" at byte offset {begin}'
                    )
                while i < size and data[i] in _SPACES:
                    i += 1
                if at(i) != ord("="):
                    if tag == "blockquote" and attr == "expandable":
                        expandable = True
                        continue
                    if i >= size:
                        raise EntityParseError(f'Unclosed start tag "{tag}" at byte offset {begin}')
                    raise EntityParseError(
                        "Expected equal sign in declaration of an attribute of the tag "
                        f'"{tag}" at byte offset {begin}'
                    )
                i += 1
                while i < size and data[i] in _SPACES:
                    i += 1
                if i >= size:
                    raise EntityParseError(f'Unclosed start tag "{tag}" at byte offset {begin}')
                value_chars: list[str] = []
                if data[i] not in b"'\"":
                    token_begin = i
                    while i < size and (chr(data[i]).isalnum() or data[i] in b".-"):
                        i += 1
                    value_chars.append(data[token_begin:i].decode("ascii").lower())
                    if at(i) not in _SPACES and at(i) != ord(">"):
                        raise EntityParseError(
                            f"Unexpected end of name token at byte offset {token_begin}"
                        )
                else:
                    quote = data[i]
                    i += 1
                    raw_begin = i
                    while i < size and data[i] != quote:
                        if data[i] == ord("&"):
                            decoded = _decode_entity(data, i)
                            if decoded is not None:
                                value_chars.append(data[raw_begin:i].decode("utf-8", "replace"))
                                value_chars.append(decoded[0])
                                i = decoded[1]
                                raw_begin = i
                                continue
                        i += 1
                    value_chars.append(data[raw_begin:i].decode("utf-8", "replace"))
                    if i < size:
                        i += 1
                if i >= size:
                    raise EntityParseError(f"Unclosed start tag at byte offset {begin}")
                value = "".join(value_chars)
                if tag == "a" and attr == "href":
                    argument = value
                elif tag == "code" and attr == "class" and value.startswith("language-"):
                    argument = value[len("language-") :]
                elif tag == "span" and attr == "class" and value.startswith("tg-"):
                    argument = value[len("tg-") :]
                elif tag == "tg-emoji" and attr == "emoji-id":
                    argument = value
            if tag == "span" and argument != "spoiler":
                raise EntityParseError(
                    f'Tag "span" must have class "tg-spoiler" at byte offset {begin}'
                )
            stack.append(_OpenTag(tag, argument, utf16_offset, expandable))
            i += 1
            continue

        if not stack:
            raise EntityParseError(f"Unexpected end tag at byte offset {begin}")
        i += 1
        while i < size and data[i] not in _SPACES and data[i] != ord(">"):
            i += 1
        end_name = data[begin + 2 : i].decode("utf-8", "replace").lower()
        while i < size and data[i] in _SPACES:
            i += 1
        if at(i) != ord(">"):
            raise EntityParseError(f"Unclosed end tag at byte offset {begin}")
        i += 1
        opened = stack.pop()
        if end_name and end_name != opened.name:
            raise EntityParseError(
                f'Unmatched end tag at byte offset {begin}, expected "</{opened.name}>", '
                f'found "</{end_name}>"'
            )
        length = utf16_offset - opened.utf16_offset
        if length > 0:
            entities.append(_make_entity(opened, length, entities))

    if stack:
        raise EntityParseError(
            f'Can\'t find end tag corresponding to start tag "{stack[-1].name}"'
        )
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return ParsedText("".join(out), entities)


def _make_entity(tag: _OpenTag, length: int, done: list[dict[str, Any]]) -> dict[str, Any]:
    kind = _TAG_TYPES[tag.name]
    entity: dict[str, Any] = {"type": kind, "offset": tag.utf16_offset, "length": length}
    if kind == "text_link":
        if tag.argument.startswith("tg://user?id="):
            entity["type"] = "text_mention"
            entity["user"] = {"id": int(tag.argument.split("=", 1)[1] or 0), "is_bot": False,
                              "first_name": ""}
        else:
            entity["url"] = tag.argument
    elif kind == "custom_emoji":
        entity["custom_emoji_id"] = tag.argument
    elif kind == "blockquote" and tag.expandable:
        entity["type"] = "expandable_blockquote"
    elif kind == "pre":
        for inner in list(done):
            if (
                inner["type"] == "code"
                and inner["offset"] == tag.utf16_offset
                and inner["length"] == length
                and inner.get("language")
            ):
                entity["language"] = inner["language"]
                done.remove(inner)
    elif kind == "code" and tag.argument:
        entity["language"] = tag.argument
    return entity


def strip_text(parsed: ParsedText) -> ParsedText:
    """Trim surrounding whitespace as Telegram does, moving entities along."""
    text = parsed.text
    stripped = text.strip()
    if stripped == text:
        return parsed
    lead = utf16_len(text[: len(text) - len(text.lstrip())])
    total = utf16_len(stripped)
    entities = []
    for entity in parsed.entities:
        start = max(entity["offset"] - lead, 0)
        end = min(entity["offset"] + entity["length"] - lead, total)
        if end > start:
            entities.append({**entity, "offset": start, "length": end - start})
    return ParsedText(stripped, entities)


def escape(text: str) -> str:
    return _stdlib_html.escape(text, quote=False)
