"""A corpus of malformed requests to the local endpoint: every one must get a 4xx answer.

`corpus()` builds each request as the raw bytes a client would send (request line, headers,
body), so it also covers what an HTTP client library would refuse to send: broken framing,
invalid encodings, oversized heads. The toy model (tests/serving/_models.py) has the features
``num_a`` (float64), ``Tenure Months`` (int64) and ``cat_c`` (str).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass

GOOD_ROW = {"num_a": 0.5, "Tenure Months": 12, "cat_c": "red"}
MAX_BODY_BYTES = 1024 * 1024  # the corpus server's limits (see test_malformed_requests.py)
MAX_HEADER_BYTES = 8192


@dataclass(frozen=True)
class Case:
    name: str
    raw: bytes


def request(
    method: bytes = b"POST",
    target: bytes = b"/score",
    body: bytes = b"",
    headers: dict[bytes, bytes] | None = None,
    *,
    auth: bytes | None = None,
    length: bool = True,
    version: bytes = b"HTTP/1.1",
) -> bytes:
    """One request as bytes; `auth` is the scoring key unless given (``b""``: no header)."""
    lines = [b"%s %s %s" % (method, target, version), b"host: 127.0.0.1"]
    if auth is None or auth:
        lines.append(b"authorization: Bearer " + (auth or b"test-scoring-key"))
    lines += [name + b": " + value for name, value in (headers or {}).items()]
    if length:
        lines.append(b"content-length: %d" % len(body))
    lines.append(b"connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def _json(value: object) -> bytes:
    """JSON text; the standard library's encoder writes integers of any size, as clients do."""
    return json.dumps(value).encode()


def _bad_json() -> Iterator[tuple[str, bytes]]:
    row = _json([GOOD_ROW])
    texts = {
        "empty": b"", "whitespace": b"   \n", "truncated": row[:-3], "trailing garbage": row + b"x",
        "two documents": row + row, "single quotes": b"[{'num_a': 1}]",
        "comment": b"// c\n" + row, "NaN literal": b'[{"num_a": NaN, "Tenure Months": 1}]',
        "Infinity literal": b'{"input_data": {"num_a": [Infinity]}}',
        "-Infinity literal": b'{"input_data": {"num_a": [-Infinity]}}',
        "nan lowercase": b'[{"num_a": nan}]', "number overflow": b'[{"num_a": 1e400}]',
        "leading zero": b'[{"num_a": 01}]', "hex number": b'[{"num_a": 0x10}]',
        "plus sign": b'[{"num_a": +1}]', "trailing comma": b'[{"num_a": 1,}]',
        "unquoted key": b"[{num_a: 1}]", "bare word": b"hello", "deep nesting": b"[" * 5000,
        "deep closed nesting": b"[" * 2000 + b"]" * 2000, "lone high surrogate":
        b'[{"cat_c": "\\ud800"}]', "lone low surrogate": b'[{"cat_c": "\\udc00"}]',
        "bad escape": b'[{"cat_c": "\\x41"}]', "control char in string": b'[{"cat_c": "a\x01b"}]',
        "invalid utf-8 byte": b'[{"cat_c": "\xff"}]', "overlong utf-8": b'[{"cat_c": "\xc0\xaf"}]',
        "truncated utf-8": b'[{"cat_c": "\xe2\x82"}]', "utf-8 surrogate bytes":
        b'[{"cat_c": "\xed\xa0\x80"}]', "utf-16 body": row.decode().encode("utf-16"),
        "utf-32 body": row.decode().encode("utf-32"), "latin-1 body":
        '[{"cat_c": "Zürich"}]'.encode("latin-1"), "nul byte": b"\x00" + row,
        "form encoded": b"num_a=1&cat_c=red", "xml": b"<row><num_a>1</num_a></row>",
        "multipart": b"--b\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n--b--",
        "gzip magic": b"\x1f\x8b\x08\x00" + row, "unclosed string": b'[{"cat_c": "red}]',
    }
    yield from texts.items()


def _bad_shapes() -> Iterator[tuple[str, object]]:
    shapes: dict[str, object] = {
        "null": None, "true": True, "number": 5, "string": "rows", "empty object": {},
        "unknown key": {"rows": [GOOD_ROW]}, "input_data null": {"input_data": None},
        "input_data string": {"input_data": "x"}, "input_data number": {"input_data": 1},
        "input_data bool": {"input_data": True}, "records of numbers": [1, 2],
        "records of lists": [[1, 2, "red"]], "records mixed": [GOOD_ROW, 5],
        "records with null": [GOOD_ROW, None], "nested records": [[GOOD_ROW]],
        "data string": {"data": "x"}, "columnar scalar": {"input_data": {"num_a": 1}},
        "columnar uneven": {"input_data": {"num_a": [1, 2], "Tenure Months": [1],
                                           "cat_c": ["red"]}},
        "columnar object": {"input_data": {"num_a": {"0": 1}}},
        "split columns not list": {"input_data": {"columns": "num_a", "data": [[1]]}},
        "split data not list": {"input_data": {"columns": ["num_a"], "data": 1}},
        "split row too short": {"input_data": {"columns": ["num_a", "cat_c"], "data": [[1]]}},
        "split row too long": {"input_data": {"columns": ["num_a"], "data": [[1, 2]]}},
        "split row not list": {"input_data": {"columns": ["num_a"], "data": [1]}},
        "split rows ragged": {"input_data": {"columns": ["a", "b"], "data": [[1, 2], [1]]}},
        "split no rows": {"input_data": {"columns": list(GOOD_ROW), "data": []}},
        "no rows": [], "empty columnar": {"input_data": {}}, "empty records": [{}],
        "missing a column": [{"num_a": 1, "cat_c": "red"}],
        "only extras": [{"x": 1, "y": 2}], "empty column names": [{"": 1, " ": 2}],
        "probabilities string": {"input_data": [GOOD_ROW], "return_probabilities": "yes"},
        "probabilities number": {"input_data": [GOOD_ROW], "return_probabilities": 1},
        "probabilities null": {"input_data": [GOOD_ROW], "return_probabilities": None},
    }
    yield from shapes.items()


BAD_VALUES: dict[str, list[object]] = {
    "num_a": ["abc", {}, [], [1, 2], {"v": 1}, "1,5", "", "NaN?"],
    "Tenure Months": [
        1.5, "x", None, 1e30, 2**63, 2**64 - 1, 10**30, -(2**63) - 1, -1e30, 1e300, [1], [],
        {}, "1.5", "yes", [[1], [1, 2]],
    ],
    "cat_c": [{}, {"a": 1}, [1], [], [[1], [1, 2]]],
}


def _bad_values() -> Iterator[tuple[str, object]]:
    for column, values in BAD_VALUES.items():
        for i, value in enumerate(values):
            records = [{**GOOD_ROW, column: value}]
            yield f"records {column} #{i}", records
            columnar = {k: [v] for k, v in GOOD_ROW.items()}
            columnar[column] = [value, GOOD_ROW[column]]
            columnar = {k: v * 2 if k != column else v for k, v in columnar.items()}
            yield f"columnar {column} #{i}", {"input_data": columnar}
    # uneven nested lists as whole columns, the shape numpy cannot build
    for column in ("Tenure Months", "num_a", "cat_c"):
        yield f"ragged column {column}", {"input_data": {
            **{k: [v, v] for k, v in GOOD_ROW.items()}, column: [[1], [1, 2]]}}


def _bodies() -> Iterator[Case]:
    for name, body in _bad_json():
        yield Case(f"json: {name}", request(body=body))
    for name, payload in itertools.chain(_bad_shapes(), _bad_values()):
        yield Case(f"shape: {name}", request(body=_json(payload)))


def _headers() -> Iterator[Case]:
    body = _json([GOOD_ROW])
    for name, auth in {
        "no key": b"", "wrong key": b"nope", "admin key": b"test-admin-key",
        "key with trailing junk": b"test-scoring-key-x", "non-ascii key": b"\xc3\xa9t\xc3\xa9",
        "empty bearer": b" ",
    }.items():
        yield Case(f"auth: {name}", request(body=body, auth=auth))
    yield Case("auth: basic scheme", request(
        body=body, auth=b"", headers={b"authorization": b"Basic dGVzdDp0ZXN0"}))
    yield Case("auth: key without scheme", request(
        body=body, auth=b"", headers={b"authorization": b"test-scoring-key"}))
    for name, value in {
        "unknown": b"purple", "non-ascii": b"bl\xc3\xbce", "latin-1 byte": b"\xff",
        "long": b"x" * 4000, "path-like": b"../blue", "comma list": b"blue,green",
    }.items():
        yield Case(f"deployment header: {name}", request(
            body=body, headers={b"azureml-model-deployment": value}))
    for name, content_type in {
        "form": b"application/x-www-form-urlencoded", "text": b"text/plain",
        "utf-16 json": b"application/json; charset=utf-16", "xml": b"application/xml",
        "octet": b"application/octet-stream", "garbage": b"\x01\x02",
    }.items():  # the body does not decode as JSON, whatever the header claims
        yield Case(f"content type: {name}", request(
            body=b"num_a=1", headers={b"content-type": content_type}))
    yield Case("content encoding: gzip claimed", request(
        body=body[:-1], headers={b"content-encoding": b"gzip"}))
    yield Case("x-request-id: odd bytes", request(
        body=b"[]", headers={b"x-request-id": b"\xff\xfe" + b"a" * 300}))
    yield Case("expect 100-continue", request(body=b"{bad", headers={b"expect": b"100-continue"}))


def _framing() -> Iterator[Case]:
    body = _json([GOOD_ROW])
    raw = {
        "content-length letters": request(body=body, length=False,
                                          headers={b"content-length": b"abc"}),
        "content-length negative": request(body=body, length=False,
                                           headers={b"content-length": b"-5"}),
        "content-length twice, different": request(
            body=body, length=False,
            headers={b"content-length": b"%d" % len(body), b"Content-Length": b"3"}),
        "content-length and chunked": request(
            body=b"5\r\n[1,2]\r\n0\r\n\r\n", headers={b"transfer-encoding": b"chunked"}),
        "bad chunk size": request(body=b"zz\r\n[]\r\n0\r\n\r\n", length=False,
                                  headers={b"transfer-encoding": b"chunked"}),
        "unknown transfer coding": request(body=body, length=False,
                                           headers={b"transfer-encoding": b"gzip"}),
        "space before colon": b"POST /score HTTP/1.1\r\nhost : x\r\n\r\n",
        "header without colon": b"POST /score HTTP/1.1\r\nhost x\r\n\r\n",
        "nul in header": b"GET /health HTTP/1.1\r\nx-a: a\x00b\r\n\r\n",
        "bare LF in header value": b"GET /health HTTP/1.1\r\nx-a: a\rb\r\n\r\n",
        "bad version": b"GET /health HTTP/9.9\r\n\r\n",
        "no version (HTTP/0.9), no key": b"POST /score\r\n\r\n",
        "lowercase method": b"get /health HTTP/1.1\r\n\r\n",
        "garbage line": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
        "http/2 preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        "space in target": b"GET /hea lth HTTP/1.1\r\n\r\n",
        "control char in target": b"GET /he\x01alth HTTP/1.1\r\n\r\n",
        "obsolete line folding": b"GET /health HTTP/1.1\r\nx-a: a\r\n b\r\n\r\n",
    }
    for name, data in raw.items():
        yield Case(f"framing: {name}", data)


def _sizes() -> Iterator[Case]:
    over = MAX_BODY_BYTES + 1
    yield Case("size: body over the limit", request(body=b"[" + b" " * over + b"]"))
    yield Case("size: content-length over the limit, short body", request(
        body=b"[]", length=False, headers={b"content-length": b"%d" % over}))
    yield Case("size: content-length huge", request(
        body=b"[]", length=False, headers={b"content-length": b"9" * 30}))
    yield Case("size: records over the limit",
               request(body=_json([GOOD_ROW] * (MAX_BODY_BYTES // 40))))
    yield Case("size: one header over the limit", request(
        method=b"GET", target=b"/health", headers={b"x-big": b"a" * MAX_HEADER_BYTES}))
    yield Case("size: many headers over the limit", request(
        method=b"GET", target=b"/health",
        headers={b"x-h%d" % i: b"v" * 40 for i in range(MAX_HEADER_BYTES // 40)}))
    yield Case("size: url over the limit", request(
        method=b"GET", target=b"/health?" + b"a" * MAX_HEADER_BYTES))
    yield Case("size: 1 MB header", request(
        method=b"GET", target=b"/health", headers={b"x-big": b"a" * 1024 * 1024}))
    yield Case("size: many extra columns over the limit", request(
        body=_json([{**GOOD_ROW, **{f"extra_{i}": i for i in range(MAX_BODY_BYTES // 12)}}])))


def _routes() -> Iterator[Case]:
    admin = b"test-admin-key"
    for name, (method, target) in {
        "unknown path": (b"GET", b"/nope"), "score by GET": (b"GET", b"/score"),
        "health by POST": (b"POST", b"/health"), "score with trailing slash": (b"POST", b"/score/"),
        "encoded path": (b"POST", b"/%73core%ff"), "nul in path": (b"GET", b"/health%00"),
        "dot segments": (b"GET", b"/admin/../score"), "absolute form": (b"GET", b"http://x/nope"),
        "unknown method": (b"BREW", b"/score"), "OPTIONS": (b"OPTIONS", b"/score"),
    }.items():
        yield Case(f"route: {name}", request(method=method, target=target, body=b"{}"))
    for name, query in {
        "bad percent": b"?return_probabilities=%zz", "non-utf8": b"?return_probabilities=%ff",
        "repeated": b"?return_probabilities=true&return_probabilities=1",
        "no value": b"?return_probabilities", "long": b"?x=" + b"y" * 4000,
    }.items():  # the query string is read, the body still refused
        yield Case(f"query: {name}", request(target=b"/score" + query, body=b"{bad"))
    for name, payload in {
        "traffic string": "x", "traffic list": [], "traffic not a number": {"blue": "x"},
        "traffic negative": {"blue": -10, "green": 110}, "traffic unknown": {"purple": 100},
        "traffic fractional sum": {"blue": 99.5}, "traffic bool": {"blue": True},
        "traffic sum over": {"blue": 100, "green": 100}, "traffic huge": {"blue": 10**30},
    }.items():
        yield Case(f"admin: {name}", request(
            method=b"PUT", target=b"/admin/traffic", body=_json(payload), auth=admin))
    yield Case("admin: traffic bad json", request(
        method=b"PUT", target=b"/admin/traffic", body=b"{", auth=admin))
    yield Case("admin: traffic with the scoring key", request(
        method=b"PUT", target=b"/admin/traffic", body=_json({"blue": 100})))
    yield Case("admin: state without a key", request(method=b"GET", target=b"/admin/state",
                                                    auth=b""))
    for name, payload in {
        "no url": {}, "url number": {"model_url": 5}, "url empty": {"model_url": ""},
        "body list": ["x"], "url null": {"model_url": None},
    }.items():
        yield Case(f"admin: deployment {name}", request(
            method=b"PUT", target=b"/admin/deployments/red", body=_json(payload), auth=admin))
    yield Case("admin: get unknown deployment", request(
        method=b"GET", target=b"/admin/deployments/purple", auth=admin))
    yield Case("admin: delete unknown deployment", request(
        method=b"DELETE", target=b"/admin/deployments/purple", auth=admin))


def corpus() -> list[Case]:
    """Every malformed request, named; names are unique."""
    cases = [*_bodies(), *_headers(), *_framing(), *_sizes(), *_routes()]
    assert len({c.name for c in cases}) == len(cases), "case names must be unique"
    return cases
