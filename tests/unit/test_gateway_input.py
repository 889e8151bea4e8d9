"""The gateway's reading of a request body: depth before parsing, JSON only, chunked bodies whole."""
from __future__ import annotations

import io
import json

import pytest
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from gateway.http import MAX_DEPTH, mark_terminated_input, nested_deeper_than, read_json
from services.common.errors import DomainError


def levels(n: int) -> bytes:
    return ("[" * n + "]" * n).encode()


def test_thirty_two_levels_are_accepted_and_thirty_three_are_not():
    assert not nested_deeper_than(levels(MAX_DEPTH), MAX_DEPTH)
    assert nested_deeper_than(levels(MAX_DEPTH + 1), MAX_DEPTH)
    assert nested_deeper_than(b"[" * 1_000_000, MAX_DEPTH)


def test_objects_and_arrays_count_alike():
    body = json.dumps(json.loads('{"a": ' * 20 + "[" * 13 + "]" * 13 + "}" * 20)).encode()
    assert nested_deeper_than(body, MAX_DEPTH)
    assert not nested_deeper_than(body, MAX_DEPTH + 1)


def test_brackets_inside_strings_do_not_count_even_after_escaped_quotes_and_backslashes():
    text = json.dumps({"city": "[[[[{{{{" * 20, "quote": 'say "[[[[[[" \\ [[[[' * 10, "end": "\\"}).encode()
    assert not nested_deeper_than(text, MAX_DEPTH)
    # the same brackets outside the strings would be too deep
    assert nested_deeper_than(text.replace(b'"', b" "), MAX_DEPTH)


def test_a_wide_but_shallow_body_is_accepted():
    assert not nested_deeper_than(json.dumps({"rules": [[1]] * 5000}).encode(), MAX_DEPTH)


def request(body: bytes, content_type="application/json", **headers) -> Request:
    environ = EnvironBuilder(method="POST", path="/", data=body, content_type=content_type,
                             headers=headers).get_environ()
    return Request(environ)


def code_of(req) -> str:
    with pytest.raises(DomainError) as refused:
        read_json(req)
    return refused.value.error_code


def test_a_deep_body_is_malformed_json_and_never_reaches_the_parser():
    assert code_of(request(b'{"login": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")) == "malformed_json"


def test_only_json_bodies_are_read():
    assert read_json(request(b'{"a": 1}', "application/json; charset=utf-8")) == {"a": 1}
    assert code_of(request(b'{"a": 1}', "text/plain")) == "unsupported_media_type"
    assert code_of(request(b'{"a": 1}', "application/json; charset=iso-8859-2")) == "unsupported_media_type"
    assert read_json(request(b"", "text/plain")) == {}  # no body has no type to check


def test_a_chunked_body_is_read_from_the_server_s_dechunked_stream():
    environ = EnvironBuilder(method="PATCH", path="/", headers={"Transfer-Encoding": "chunked",
                                                                "Content-Type": "application/json"}).get_environ()
    environ.pop("CONTENT_LENGTH", None)
    environ["wsgi.input"] = io.BytesIO(b'{"city": "Gdynia"}')  # as eventlet hands it over, chunks taken off
    mark_terminated_input(environ)
    assert read_json(Request(environ)) == {"city": "Gdynia"}


def test_a_transfer_coding_the_server_cannot_read_is_411():
    assert code_of(request(b"{}", **{"Transfer-Encoding": "gzip, chunked"})) == "length_required"
