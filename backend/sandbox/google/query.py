"""Drive v3's search language (`files.list?q=...`) and partial responses (`fields=...`).

Only what an integration plausibly sends: `name`/`mimeType` comparisons, `name contains`,
`'<id>' in parents` (and owners/writers/readers), `trashed`/`starred`, time comparisons,
`appProperties has { key='k' and value='v' }`, combined with `and`, `or`, `not` and parentheses.
Anything else is a `QueryError`, which Drive answers with 400 "Invalid Value" - better than
silently matching everything and letting a typo pass in the sandbox.

Tested in tests/sandbox/test_google.py (Drive's query language) and
tests/integrations/test_google_drive.py (through google-api-python-client).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

FileDict = dict[str, Any]
Predicate = Callable[[FileDict], bool]


class QueryError(ValueError):
    """The query (or field selection) does not parse."""


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>'(?:[^'\\]|\\.)*')
      | (?P<op>!=|<=|>=|=|<|>)
      | (?P<punct>[(){}])
      | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class _Token:
    kind: str  # string, op, punct, word
    text: str


def _tokenize(q: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(q):
        if q[pos:].strip() == "":
            break
        match = _TOKEN.match(q, pos)
        if match is None or match.lastgroup is None:
            raise QueryError(f"unexpected character at {pos}: {q[pos : pos + 10]!r}")
        text = match.group(match.lastgroup)
        if match.lastgroup == "string":
            # Drive escapes a quote as \' and a backslash as \\ inside string literals.
            text = re.sub(r"\\(.)", r"\1", text[1:-1])
        tokens.append(_Token(match.lastgroup, text))
        pos = match.end()
    return tokens


_STRING_FIELDS = ("name", "mimeType", "fullText")
_TIME_FIELDS = ("createdTime", "modifiedTime", "viewedByMeTime", "sharedWithMeTime")
_BOOL_FIELDS = ("trashed", "starred")
_COLLECTIONS = ("parents", "owners", "writers", "readers")
_ROLES = {"writers": ("writer", "organizer", "fileOrganizer", "owner"), "readers": None}


class _Parser:
    def __init__(self, tokens: list[_Token], resolve: Callable[[str], str]) -> None:
        self.tokens = tokens
        self.pos = 0
        # Maps the alias 'root' to the caller's My Drive folder id.
        self.resolve = resolve

    def peek(self) -> _Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, kind: str | None = None, text: str | None = None) -> _Token:
        token = self.peek()
        if token is None:
            raise QueryError("unexpected end of query")
        if kind is not None and token.kind != kind:
            raise QueryError(f"expected {kind}, got {token.text!r}")
        if text is not None and token.text.lower() != text:
            raise QueryError(f"expected {text!r}, got {token.text!r}")
        self.pos += 1
        return token

    def at_word(self, *words: str) -> bool:
        token = self.peek()
        return token is not None and token.kind == "word" and token.text.lower() in words

    def parse(self) -> Predicate:
        predicate = self.disjunction()
        if self.peek() is not None:
            raise QueryError(f"unexpected {self.take().text!r}")
        return predicate

    def disjunction(self) -> Predicate:
        parts = [self.conjunction()]
        while self.at_word("or"):
            self.take()
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else lambda f: any(p(f) for p in parts)

    def conjunction(self) -> Predicate:
        parts = [self.negation()]
        while self.at_word("and"):
            self.take()
            parts.append(self.negation())
        return parts[0] if len(parts) == 1 else lambda f: all(p(f) for p in parts)

    def negation(self) -> Predicate:
        if self.at_word("not"):
            self.take()
            inner = self.negation()
            return lambda f: not inner(f)
        token = self.peek()
        if token is not None and token.text == "(":
            self.take()
            inner = self.disjunction()
            self.take("punct", ")")
            return inner
        return self.term()

    def term(self) -> Predicate:
        first = self.take()
        if first.kind == "string":  # '<value>' in parents|owners|writers|readers
            self.take("word", "in")
            collection = self.take("word").text
            if collection not in _COLLECTIONS:
                raise QueryError(f"cannot search in {collection!r}")
            return _membership(collection, self.resolve(first.text))
        if first.kind != "word":
            raise QueryError(f"unexpected {first.text!r}")
        field = first.text
        if field in ("appProperties", "properties"):
            return self.has_property(field)
        if self.at_word("contains"):
            self.take()
            if field not in ("name", "fullText"):
                raise QueryError(f"{field} does not support contains")
            needle = self.take("string").text.lower()
            return lambda f: _contains(f, field, needle)
        op = self.take("op").text
        if field in _BOOL_FIELDS:
            literal = self.take("word").text.lower()
            if literal not in ("true", "false") or op not in ("=", "!="):
                raise QueryError(f"{field} compares with = or != to true or false")
            wanted = literal == "true"
            return lambda f: (bool(f.get(field, False)) == wanted) == (op == "=")
        if field not in _STRING_FIELDS + _TIME_FIELDS:
            raise QueryError(f"unknown field {field!r}")
        if field in _STRING_FIELDS and op not in ("=", "!="):
            raise QueryError(f"{field} compares with = or !=")
        value = self.take("string").text
        return _comparison(field, op, value)

    def has_property(self, field: str) -> Predicate:
        self.take("word", "has")
        self.take("punct", "{")
        self.take("word", "key")
        self.take("op", "=")
        key = self.take("string").text
        self.take("word", "and")
        self.take("word", "value")
        self.take("op", "=")
        value = self.take("string").text
        self.take("punct", "}")
        return lambda f: (f.get(field) or {}).get(key) == value


def _membership(collection: str, value: str) -> Predicate:
    if collection == "parents":
        return lambda f: value in f.get("parents", [])
    if collection == "owners":
        return lambda f: any(o.get("emailAddress") == value for o in f.get("owners", []))
    roles = _ROLES[collection]
    return lambda f: any(
        p.get("emailAddress") == value and (roles is None or p.get("role") in roles)
        for p in f.get("permissions", [])
    )


def _contains(f: FileDict, field: str, needle: str) -> bool:
    # Drive matches `name contains` by prefix of the name or of one of its words.
    name = str(f.get("name", "")).lower()
    if field == "name":
        return name.startswith(needle) or any(w.startswith(needle) for w in name.split())
    return needle in name or needle in str(f.get("description", "")).lower()


def _comparison(field: str, op: str, value: str) -> Predicate:
    def check(f: FileDict) -> bool:
        # Times are RFC 3339 strings in one format, so string order is time order.
        actual = str(f.get(field, ""))
        return {
            "=": actual == value,
            "!=": actual != value,
            "<": actual < value,
            "<=": actual <= value,
            ">": actual > value,
            ">=": actual >= value,
        }[op]

    return check


def compile_query(q: str, resolve: Callable[[str], str]) -> Predicate:
    """A predicate over stored file dicts; ``resolve`` turns ids such as 'root' into real ids."""
    tokens = _tokenize(q)
    if not tokens:
        return lambda _f: True
    return _Parser(tokens, resolve).parse()


# Partial responses: fields=nextPageToken,files(id,name),files/parents -> a tree of names.
FieldTree = dict[str, "FieldTree | None"]


def parse_fields(spec: str) -> FieldTree:
    tree: FieldTree = {}
    pos = _parse_field_list(spec.replace(" ", ""), 0, tree)
    if pos != len(spec.replace(" ", "")):
        raise QueryError(f"Invalid field selection {spec}")
    return tree


_FIELD_PATH = re.compile(r"[A-Za-z0-9_*]+(?:/[A-Za-z0-9_*]+)*")


def _parse_field_list(spec: str, pos: int, into: FieldTree) -> int:
    while True:
        match = _FIELD_PATH.match(spec, pos)
        if match is None:
            raise QueryError(f"Invalid field selection {spec}")
        pos = match.end()
        sub: FieldTree | None = None
        if pos < len(spec) and spec[pos] == "(":
            sub = {}
            pos = _parse_field_list(spec, pos + 1, sub)
            if pos >= len(spec) or spec[pos] != ")":
                raise QueryError(f"Invalid field selection {spec}")
            pos += 1
        _merge(into, match.group(0).split("/"), sub)
        if pos < len(spec) and spec[pos] == ",":
            pos += 1
            continue
        return pos


def _merge(node: FieldTree, path: list[str], sub: FieldTree | None) -> None:
    # a/b(c) means a(b(c)); selecting a whole field wins over selecting parts of it.
    for name in reversed(path[1:]):
        sub = {name: sub}
    head = path[0]
    if head in node and node[head] is None:
        return
    if sub is None:
        node[head] = None
        return
    existing = node.setdefault(head, {})
    assert existing is not None
    for key, value in sub.items():
        _merge(existing, [key], value)


def select_fields(value: Any, tree: FieldTree | None) -> Any:
    """Keep only the selected fields; lists are filtered element by element."""
    if tree is None or "*" in tree:
        return value
    if isinstance(value, list):
        return [select_fields(v, tree) for v in value]
    if isinstance(value, dict):
        return {k: select_fields(value[k], sub) for k, sub in tree.items() if k in value}
    return value
