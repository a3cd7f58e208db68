"""The thin ``xmr serve`` command: cheap help, the install hint, refusal before loading anything."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers.paths import REPO  # noqa: E402

PROBE = """
import json, sys
from typer.testing import CliRunner
from cli import app
for args in (["--help"], ["serve", "--help"]):
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
print(json.dumps({"heavy": [m for m in ("fastapi", "uvicorn", "starlette", "torch", "open_clip") if m in sys.modules], "help": result.output}))
"""


def test_help_imports_neither_fastapi_nor_torch() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["heavy"] == []
    assert "--token" in report["help"] and "--reranker" in report["help"] and "127.0.0.1" in report["help"]


def test_missing_serve_extra_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from cli import app

    monkeypatch.setitem(sys.modules, "fastapi", None)  # import fastapi now raises ImportError
    result = CliRunner().invoke(app, ["serve"])
    assert result.exit_code == 2 and "pip install 'xmr[serve]'" in result.output


def test_xmr_serve_runs_and_guards_a_public_bind_with_the_token(shared_library) -> None:  # noqa: ANN001
    """The real command: uvicorn on 0.0.0.0 with XMR_TOKEN; requests without it get 401."""
    import os
    import socket
    import time

    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "XMR_TOKEN": "t0ken", "HF_HUB_OFFLINE": "1"}
    command = [
        sys.executable,
        "-c",
        "from cli import main; main()",
        "serve",
        "--library",
        str(shared_library.layout.root),
        "--host",
        "0.0.0.0",
        "--port",
        str(port),
        "--device",
        "cpu",
    ]
    server = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, server.stdout.read().decode()  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "xmr serve did not start"
            try:
                if httpx.get(f"{url}/api/health", timeout=2).status_code == 401:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        auth = {"Authorization": "Bearer t0ken"}
        assert httpx.get(f"{url}/api/health", headers=auth).json()["images"] == len(shared_library.images.index)
        hits = httpx.get(f"{url}/api/search", params={"q": "a cat"}, headers=auth).json()["hits"]
        assert [h["id"] for h in hits] == [h.id for h in shared_library.search(text="a cat", k=20)]
        assert httpx.get(f"{url}/api/search", params={"q": "a cat", "token": "wrong"}).status_code == 401
        assert "server" not in httpx.get(f"{url}/api/health", headers=auth).headers  # no version banner
        assert httpx.get(f"{url}/?token=t0ken", follow_redirects=False).status_code == 303  # the page link
    finally:
        server.terminate()
        server.wait(timeout=30)
    log = server.stdout.read().decode()  # type: ignore[union-attr]
    assert "GET /?token=***" in log  # the access log has the request, not the secret
    assert "t0ken" not in log


def test_the_address_is_printed_once_the_server_answers(shared_library) -> None:  # noqa: ANN001
    """Not while the model loads: the first request to the printed address is answered."""
    import os
    import socket
    import time

    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-c", "from cli import main; main()", "serve", "--library"]
    command += [str(shared_library.layout.root), "--port", str(port), "--device", "cpu"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    server = subprocess.Popen(command, cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
    try:
        said = []
        deadline = time.monotonic() + 120
        while not said or "serving" not in said[-1]:
            assert time.monotonic() < deadline and server.poll() is None, "".join(said)
            said.append(server.stderr.readline())  # type: ignore[union-attr]
        answer = httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=5)  # at once, no retry
        assert answer.status_code == 200 and answer.json()["status"] == "ok"
        assert said[0].startswith("loading the model") and f"http://127.0.0.1:{port}/" in said[-1]
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_xmr_serve_watch_makes_new_photos_searchable(fresh_library, photo_source) -> None:  # noqa: ANN001
    """``xmr serve --watch``: a photo copied into the watched folder shows up in the served index."""
    import os
    import shutil
    import socket
    import time

    import httpx

    pytest.importorskip("watchfiles")
    photos = fresh_library.layout.root.parent / "photos"
    before = len(fresh_library.images.index)
    fresh_library.close()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [
        sys.executable,
        "-c",
        "from cli import main; main()",
        "serve",
        "--library",
        str(fresh_library.layout.root),
    ]
    command += ["--port", str(port), "--device", "cpu", "--watch", str(photos)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    server = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def images() -> int:
        try:
            return int(httpx.get(f"{url}/api/health", timeout=2).json()["images"])
        except httpx.HTTPError:
            return -1

    try:
        deadline = time.monotonic() + 120
        while images() != before:
            assert server.poll() is None, server.stdout.read().decode()  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "xmr serve --watch did not start"
            time.sleep(0.2)
        time.sleep(2.0)  # the catch-up run and the event listener
        shutil.copy(photo_source / "rocket.jpg", photos / "new-rocket.jpg")
        deadline = time.monotonic() + 60
        found = False
        while time.monotonic() < deadline and not found:
            hits = httpx.get(f"{url}/api/search", params={"q": "a rocket", "k": 50}, timeout=30).json()["hits"]
            found = any(h["path"].endswith("new-rocket.jpg") for h in hits)
            time.sleep(0.3)
        assert found and images() == before + 1
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0].decode()
    assert "watching stopped" not in output, output
