"""Safe by default: loopback or a token, files only by catalog id, limits answered with a 4xx."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest

from retrieval.serve import UnsafeBindError, check_bind, is_loopback

SECRET = "s3cret-token"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.9.9.9", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("192.168.1.5", False),
        ("::", False),
        ("photos.example", False),
    ],
)
def test_only_loopback_binds_without_a_token(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
    if loopback:
        check_bind(host, "")
    else:
        with pytest.raises(UnsafeBindError, match="--token"):
            check_bind(host, "")
    check_bind(host, SECRET)  # with a token any address is allowed


def test_cli_refuses_a_public_bind_without_a_token_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from cli import app

    monkeypatch.delenv("XMR_TOKEN", raising=False)
    start = time.perf_counter()
    result = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0"])
    assert result.exit_code == 2 and "--token" in result.output
    assert time.perf_counter() - start < 5  # refused before any model or index loads


def test_every_request_needs_the_token_when_one_is_set(make_client, shared_library) -> None:  # noqa: ANN001
    client = make_client(token=SECRET)
    item = shared_library.search(text="x", k=1)[0].id
    routes = [
        "/",
        "/static/app.js",
        "/openapi.json",
        "/docs",
        "/api/health",
        "/api/info",
        "/api/search?q=cat",
        f"/api/items/{item}",
        f"/api/items/{item}/thumbnail",
        f"/api/items/{item}/file",
        "/duplicates",
        "/api/duplicates?tier=exact",
    ]
    for route in routes:
        refused = client.get(route)
        assert refused.status_code == 401, route
        assert client.get(route, headers={"Authorization": "Bearer wrong"}).status_code == 401, route
        assert client.get(route, headers={"Authorization": f"Bearer {SECRET}"}).status_code == 200, route
    assert client.post("/api/search", json={"q": ["cat"]}).status_code == 401
    assert client.get("/api/health", headers={"X-XMR-Token": SECRET}).status_code == 200


def test_the_page_link_with_a_token_sets_a_cookie_and_drops_it_from_the_address(make_client) -> None:  # noqa: ANN001
    client = make_client(token=SECRET)
    first = client.get(f"/?token={SECRET}", follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"] == "/"
    assert "HttpOnly" in first.headers["set-cookie"] and "SameSite=Strict" in first.headers["set-cookie"]
    assert client.get("/").status_code == 200  # the client kept the cookie
    assert client.get("/api/search", params={"q": "cat"}).status_code == 200


TRAVERSALS = [
    "/api/items/../../../../etc/passwd",
    "/api/items/..%2F..%2F..%2Fetc%2Fpasswd/file",
    "/api/items/%2Fetc%2Fpasswd/file",
    "/api/items/-1/file",
    "/api/items/1.5/file",
    "/api/items/1/file/../../../../etc/passwd",
    "/static/../app.py",
    "/static/..%2Fapp.py",
    "/static/%2e%2e%2f%2e%2e%2fcli.py",
    "/static/%2Fetc%2Fpasswd",
    "/static/index.html/../../app.py",
    "//etc/passwd",
    "/api/items/1/thumbnail?size=../../etc/passwd",
]


@pytest.mark.parametrize("url", TRAVERSALS)
def test_no_request_reaches_a_file_by_path(client, url: str) -> None:  # noqa: ANN001
    response = client.get(url)
    body = response.content
    assert b"root:" not in body and b"def create_app" not in body and b"import typer" not in body
    assert response.status_code in (404, 422) or response.headers.get("content-type", "").startswith("text/html"), (
        url,
        response.status_code,
    )


def test_paths_in_query_fields_are_not_read(client) -> None:  # noqa: ANN001
    for name in ("/etc/passwd", "../../etc/passwd", "file:///etc/passwd"):
        response = client.post("/api/search", json={"images": [name]})
        assert response.status_code == 404 and "upload" in response.json()["detail"]
    assert client.post("/api/search", json={"images": ["#../x"]}).status_code == 422


def test_uploads_over_the_byte_limit_are_413(make_client, served_photos: Path) -> None:  # noqa: ANN001
    client = make_client(max_upload_bytes=20_000)
    photo = max(served_photos.rglob("*.png"), key=lambda p: p.stat().st_size)
    assert photo.stat().st_size > 20_000 + 64 * 1024
    big = client.post("/api/uploads", files={"file": ("big.png", photo.read_bytes(), "image/png")})
    assert big.status_code == 413 and "at most" in big.json()["detail"]
    padded = client.post("/api/uploads", files={"file": ("big.png", b"\0" * 30_000, "image/png")})
    assert padded.status_code == 413  # under the body bound, over the image bound


def test_uploads_over_the_pixel_limit_are_413_before_decoding(make_client) -> None:  # noqa: ANN001
    from PIL import Image

    client = make_client(max_pixels=1_000_000)
    buffer = io.BytesIO()
    Image.new("RGB", (2000, 1000), "white").save(buffer, format="PNG")  # 2 MP, a few KB
    response = client.post("/api/uploads", files={"file": ("wide.png", buffer.getvalue(), "image/png")})
    assert response.status_code == 413 and "2000x1000" in response.json()["detail"]


def test_chunked_bodies_without_a_length_are_refused(client) -> None:  # noqa: ANN001
    def chunks():  # noqa: ANN202
        yield b'{"q": ["cat"]}'

    response = client.post("/api/search", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 411


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"q": ["x" * 1001]}, 422, "at most 1000 characters"),
        ({"q": ["cat"], "k": 101}, 422, "less than or equal to 100"),
        ({"q": ["cat"], "offset": 10_001}, 422, "less than or equal to 10000"),
        ({"q": [f"w{i}" for i in range(17)]}, 422, "at most 16 items"),
        ({"q": ["a"] * 6, "like": [1] * 6, "not": ["b"] * 5}, 422, "at most 16 terms"),
        ({"q": ["cat"], "k": 0}, 422, ""),
        ({"q": ["cat"], "weights": ["2:dog"]}, 422, "not among"),
        ({"q": ["cat"], "weights": ["-2:cat"]}, 422, "positive"),
        ({"not": ["cat"]}, 422, "at least one"),
        ({}, 422, "at least one"),
        ({"q": ["   "]}, 422, "empty"),
        ({"q": ["cat"], "after": "yesterday"}, 422, "2024-06-01"),
        ({"q": ["cat"], "after": "2024-02-01", "before": "2024-01-01"}, 422, "must come before"),
        ({"q": ["cat"], "colour": "red"}, 422, ""),
        ({"q": "cat"}, 422, ""),
        ({"q": ["cat"], "like": [2**70]}, 422, ""),
        ({"q": ["cat"], "rerank": True}, 400, "reranker"),
    ],
)
def test_bad_queries_get_a_clear_4xx(client, body: dict, status: int, words: str) -> None:  # noqa: ANN001
    response = client.post("/api/search", json=body)
    assert response.status_code == status, response.text
    assert words in str(response.json()["detail"])


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"q": "x" * 1001}, "1000 characters"),
        ({"q": [f"w{i}" for i in range(17)]}, "16 terms"),
        ({"q": "cat", "k": 101}, "less than or equal to 100"),
    ],
)
def test_the_short_text_search_has_the_same_limits(client, params: dict, words: str) -> None:  # noqa: ANN001
    response = client.get("/api/search", params=params)
    assert response.status_code == 422 and words in str(response.json()["detail"])


def test_broken_inputs_are_4xx_never_500(client) -> None:  # noqa: ANN001
    assert (
        client.post("/api/search", content=b"{not json", headers={"Content-Type": "application/json"}).status_code
        == 422
    )
    assert (
        client.post("/api/uploads", files={"file": ("notes.jpg", b"this is not an image", "image/jpeg")}).status_code
        == 422
    )
    assert client.post("/api/uploads", files={"file": ("empty.jpg", b"", "image/jpeg")}).status_code == 422
    assert client.post("/api/uploads").status_code == 422
    assert client.get("/api/search").status_code == 422
    assert client.get("/api/items/abc").status_code == 422
    assert client.get("/api/items/1/thumbnail", params={"size": 0}).status_code == 422
    assert client.get("/api/search", params={"q": "cat", "k": "many"}).status_code == 422


def test_a_decompression_bomb_header_is_413(client) -> None:  # noqa: ANN001
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0)  # declares 3.6 gigapixels in a few bytes
    bomb = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 10))
        + chunk(b"IEND", b"")
    )
    response = client.post("/api/uploads", files={"file": ("bomb.png", bomb, "image/png")})
    assert response.status_code == 413 and "pixels" in response.json()["detail"]


@pytest.mark.parametrize(
    "host", ["attacker.example:8765", "attacker.example", "192.168.1.5:8765", "127.0.0.1.attacker.example", ""]
)
def test_without_a_token_other_host_names_are_refused(make_client, shared_library, host: str) -> None:  # noqa: ANN001
    # DNS rebinding: a page of attacker.example whose name now resolves to 127.0.0.1 sends
    # its own host name; it must not read the library's photos or its info.
    client = make_client()
    item = shared_library.search(text="x", k=1)[0].id
    for route in ["/", "/api/info", f"/api/items/{item}/file", f"/api/items/{item}/thumbnail", "/api/search?q=cat"]:
        response = client.get(route, headers={"Host": host})
        assert response.status_code == 421, (route, host)
        assert "--allow-host" in response.json()["detail"]


@pytest.mark.parametrize(
    "host", ["127.0.0.1:8765", "localhost:8765", "LOCALHOST", "[::1]:8765", "127.0.0.2", "xmr.localhost:8765"]
)
def test_loopback_host_names_are_answered(make_client, host: str) -> None:  # noqa: ANN001
    assert make_client().get("/api/health", headers={"Host": host}).status_code == 200


def test_allowed_hosts_and_tokens_open_other_host_names(make_client) -> None:  # noqa: ANN001
    assert (
        make_client(allowed_hosts=("photos.lan",)).get("/api/health", headers={"Host": "photos.lan:8765"}).status_code
        == 200
    )
    with_token = make_client(token=SECRET)
    assert (
        with_token.get(
            "/api/health", headers={"Host": "photos.example", "Authorization": f"Bearer {SECRET}"}
        ).status_code
        == 200
    )


def test_state_changing_requests_from_another_origin_are_refused(make_client) -> None:  # noqa: ANN001
    client = make_client()
    body = {"q": ["cat"]}
    assert client.post("/api/search", json=body, headers={"Origin": "https://attacker.example"}).status_code == 403
    assert client.post("/api/search", json=body, headers={"Origin": "null"}).status_code == 403
    assert (
        client.post(
            "/api/uploads", files={"file": ("x.png", b"x")}, headers={"Origin": "http://localhost:9999"}
        ).status_code
        == 403
    )
    assert (
        client.post("/api/search", json=body, headers={"Origin": "http://127.0.0.1:8765"}).status_code == 200
    )  # its own page
    assert client.post("/api/search", json=body).status_code == 200  # curl and scripts send no Origin


@pytest.mark.parametrize(
    ("line", "redacted"),
    [
        ("GET /?token=s3cret HTTP/1.1", "GET /?token=*** HTTP/1.1"),
        ("/api/search?q=cat&token=s3cret&k=5", "/api/search?q=cat&token=***&k=5"),
        ("/api/search?TOKEN=s3cret", "/api/search?TOKEN=***"),
        ("/api/search?q=mytoken=1", "/api/search?q=mytoken=1"),  # not a token parameter
    ],
)
def test_tokens_in_request_lines_are_redacted(line: str, redacted: str) -> None:
    import logging

    from retrieval.serve import TokenRedactor, redact_token

    assert redact_token(line) == redacted
    record = logging.LogRecord("uvicorn.access", logging.INFO, "", 0, '%s - "%s %s"', ("127.0.0.1", "GET", line), None)
    TokenRedactor().filter(record)
    assert "s3cret" not in record.getMessage()
