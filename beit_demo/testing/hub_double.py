"""A stand-in for the Hugging Face Hub on 127.0.0.1 that speaks its download protocol.

It answers exactly what ``huggingface_hub`` 2.4 and ``transformers`` 5.23 ask for when they download a model:

- ``GET /api/models/{repo}`` and ``GET /api/models/{repo}/revision/{rev}``: JSON with ``id`` and ``sha``;
- ``GET /api/models/{repo}/tree/{rev}[/{path}]?recursive=...``: the file list ``snapshot_download`` uses;
- ``HEAD`` / ``GET /{repo}/resolve/{rev}/{path}``: the file, with ``X-Repo-Commit``, ``ETag`` and an exact
  ``Content-Length``; ``GET`` honours ``Range`` (206 + ``Content-Range``).

Errors carry the ``X-Error-Code`` header the client classifies them by (``RepoNotFound``, ``GatedRepo``,
``RevisionNotFound``, ``EntryNotFound``). No xet headers are ever sent, so downloads stay on plain HTTP.

Known differences from the Hub: LFS files are served directly with a 200 instead of a redirect to a CDN (the
``ETag`` is still their sha256, so the cache holds the same blob names), and there are no commits, discussions or
write endpoints (those answer 404 without an error code).

Point a client at it by setting ``HF_ENDPOINT`` (and a temporary ``HF_HOME``) *before* ``huggingface_hub`` is
imported: the library reads both at import time.

Run ``python -m beit_demo.testing.hub_double --port 8999`` to serve tiny checkpoints for every catalog repo.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import signal
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import PurePosixPath
from typing import NamedTuple
from urllib.parse import parse_qs, unquote, urlsplit

# Files the Hub stores with git-lfs: the suffixes of its default .gitattributes, and anything over 10 MiB.
_LFS_SUFFIXES = frozenset(
    {".bin", ".safetensors", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".onnx", ".pkl", ".npy", ".npz", ".gz", ".zip"}
)
_LFS_MIN_SIZE = 10 * 1024 * 1024
_THROTTLE_TICK_S = 0.05
_FAULT_KINDS = frozenset({"status", "cut_body", "drop", "hang"})


@dataclass(frozen=True)
class Request:
    """One request the double has seen."""

    method: str
    path: str  # the URL path as sent (percent-encoded), without the query string
    status: int  # the status answered; 0 when no response was sent ("drop", "hang")
    authorized: bool = False  # whether the request carried an Authorization header
    query: str = ""


@dataclass(frozen=True)
class Fault:
    """A failure to inject into the answers of the double.

    ``kind`` is one of:
        - ``"status"``: answer ``status`` (with ``X-Error-Code: error_code`` when given) instead of the real answer;
        - ``"cut_body"``: send the real headers (full ``Content-Length``), then half the body, then close;
        - ``"drop"``: close the connection without sending anything;
        - ``"hang"``: never answer, until the double stops.
    """

    kind: str
    method: str | None = None  # "HEAD", "GET" or None for any method
    path_contains: str = ""  # applies to requests whose path (with query) contains this
    times: int | None = None  # the first N matching requests only; None: every one
    status: int = 500
    error_code: str | None = None  # e.g. "RepoNotFound", "GatedRepo", "RevisionNotFound", "EntryNotFound"

    def __post_init__(self) -> None:
        if self.kind not in _FAULT_KINDS:
            raise ValueError(f"Unknown fault kind {self.kind!r}; expected one of {sorted(_FAULT_KINDS)}")


@dataclass(frozen=True)
class _File:
    content: bytes
    etag: str  # what the Hub reports as the ETag: the sha256 for LFS files, the git blob id otherwise
    git_oid: str  # the git blob id in the tree (of the pointer file for LFS files)
    lfs: dict[str, object] | None


@dataclass
class _Repo:
    gated: bool
    main: str  # commit id of the main branch
    commits: dict[str, dict[str, _File]]  # every commit ever added, so old commit ids keep resolving


@dataclass
class _ArmedFault:
    fault: Fault
    remaining: int | None  # how many more requests it applies to; None: no limit


class _Route(NamedTuple):
    kind: str  # "info", "tree", "api", "resolve" or "unknown"
    repo_id: str | None = None
    revision: str | None = None
    path: str | None = None  # the file (resolve) or folder (tree) inside the repo


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: dict[str, str]
    body: bytes


def _git_blob_id(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def _make_file(path: str, content: bytes) -> _File:
    if PurePosixPath(path).suffix.lower() not in _LFS_SUFFIXES and len(content) < _LFS_MIN_SIZE:
        blob_id = _git_blob_id(content)
        return _File(content=content, etag=blob_id, git_oid=blob_id, lfs=None)
    sha256 = hashlib.sha256(content).hexdigest()
    pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {len(content)}\n".encode()
    lfs = {"oid": sha256, "size": len(content), "pointerSize": len(pointer)}
    return _File(content=content, etag=sha256, git_oid=_git_blob_id(pointer), lfs=lfs)


def _commit_id(repo_id: str, files: Mapping[str, _File]) -> str:
    digest = hashlib.sha1(repo_id.encode())
    for path in sorted(files):
        digest.update(b"\0" + path.encode() + b"\0" + files[path].etag.encode())
    return digest.hexdigest()


def _parse_route(path: str) -> _Route:
    """Say which Hub endpoint ``path`` (percent-encoded, no query) addresses."""
    parts = path.strip("/").split("/")
    if parts[:2] == ["api", "models"] and len(parts) >= 4:
        repo_id = f"{unquote(parts[2])}/{unquote(parts[3])}"
        rest = parts[4:]
        if not rest:
            return _Route("info", repo_id, "main")
        if rest[0] == "revision" and len(rest) == 2:
            return _Route("info", repo_id, unquote(rest[1]))
        if rest[0] == "tree" and len(rest) >= 2:
            return _Route("tree", repo_id, unquote(rest[1]), unquote("/".join(rest[2:])))
        return _Route("api", repo_id)
    if len(parts) >= 5 and parts[2] == "resolve":
        return _Route(
            "resolve", f"{unquote(parts[0])}/{unquote(parts[1])}", unquote(parts[3]), unquote("/".join(parts[4:]))
        )
    return _Route("unknown")


def _front_matter(readme: bytes) -> dict[str, str]:
    """The ``key: value`` lines of a model card's YAML front matter (all the Hub's ``cardData`` these tests need)."""
    lines = readme.decode("utf-8", "replace").splitlines()
    if not lines or lines[0].strip() != "---":
        return {}
    card = {}
    for line in lines[1:]:
        if line.strip() == "---":
            break
        key, colon, value = line.partition(":")
        if colon and value.strip() and not line.startswith((" ", "-")):
            card[key.strip()] = value.strip()
    return card


def _json_body(payload: object) -> bytes:
    return json.dumps(payload).encode()


def _error(status: int, message: str, error_code: str | None = None, *, commit: str | None = None) -> _Answer:
    headers = {"Content-Type": "application/json; charset=utf-8", "X-Error-Message": message}
    if error_code is not None:
        headers["X-Error-Code"] = error_code
    if commit is not None:
        headers["X-Repo-Commit"] = commit
    return _Answer(status, headers, _json_body({"error": message}))


def _parse_range(header: str, size: int) -> tuple[int, int] | str | None:
    """Return ``(first, last)`` for a single satisfiable byte range, None to ignore it, "unsatisfiable" otherwise."""
    unit, _, spec = header.partition("=")
    if unit.strip() != "bytes" or "," in spec:
        return None  # RFC 9110 lets a server ignore ranges it does not support
    first_text, _, last_text = spec.strip().partition("-")
    try:
        if not first_text:
            suffix = int(last_text)
            return (max(size - suffix, 0), size - 1) if suffix > 0 and size > 0 else "unsatisfiable"
        first = int(first_text)
        last = int(last_text) if last_text else size - 1
    except ValueError:
        return None
    if first >= size or last < first:
        return "unsatisfiable"
    return first, min(last, size - 1)


class HubDouble:
    """An HTTP server on 127.0.0.1 that serves model repos the way the Hugging Face Hub does.

    Example::

        with HubDouble() as hub:
            sha = hub.add_repo("org/model", {"config.json": b"{}"})
            # run huggingface_hub in a process started with HF_ENDPOINT=hub.url
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._repos: dict[str, _Repo] = {}
        self._log: list[Request] = []
        self._faults: list[_ArmedFault] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        # When set, GET bodies go out in small chunks at about this rate, so a progress bar can be watched.
        self.throttle_bytes_per_s: float | None = None

    # -- repos ---------------------------------------------------------------------------------------------------

    def add_repo(self, repo_id: str, files: Mapping[str, bytes], *, gated: bool = False) -> str:
        """Publish ``files`` as the new head of ``main`` in model repo ``repo_id``.

        Adding a repo again makes a new commit; the earlier commit ids still resolve, as on the Hub. In a ``gated``
        repo, file downloads without an Authorization header answer 401 ``GatedRepo``; its info and file list stay
        public, as on the Hub.

        Returns:
            The 40-hex commit id, derived from the repo id and the contents (the same files give the same id).
        """
        namespace, _, name = repo_id.partition("/")
        if not namespace or not name or "/" in name:
            raise ValueError(f"Repo ids look like 'namespace/name', got {repo_id!r}")
        stored = {path: _make_file(path, bytes(content)) for path, content in files.items()}
        sha = _commit_id(repo_id, stored)
        with self._lock:
            repo = self._repos.get(repo_id)
            if repo is None:
                repo = self._repos[repo_id] = _Repo(gated=gated, main=sha, commits={})
            repo.commits[sha] = stored
            repo.main = sha
            repo.gated = gated
        return sha

    # -- lifecycle -----------------------------------------------------------------------------------------------

    def start(self, port: int = 0) -> HubDouble:
        """Start serving on 127.0.0.1 (``port`` 0: a free port) from a daemon thread; return self."""
        if self._server is not None:
            raise RuntimeError("HubDouble is already started")
        handler = type("_BoundHandler", (_Handler,), {"double": self})
        self._server = _Server(("127.0.0.1", port), handler)
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="hub-double", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving: later connections are refused, hanging and open ones are closed. Idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()  # releases "hang" faults and throttled bodies
        server.shutdown()
        server.server_close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            # A keep-alive connection would otherwise go on being served after stop().
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> HubDouble:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The endpoint to put in ``HF_ENDPOINT``, e.g. ``http://127.0.0.1:54321``."""
        if self._server is None:
            raise RuntimeError("HubDouble is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # -- observation and faults ----------------------------------------------------------------------------------

    def log(self) -> list[Request]:
        """Return every request seen so far, oldest first."""
        with self._lock:
            return list(self._log)

    def count(self, method: str | None = None, *, repo_id: str | None = None, filename: str | None = None) -> int:
        """Count the requests seen, optionally only those with ``method``, for ``repo_id``, or resolving ``filename``.

        ``filename`` matches ``/{repo}/resolve/{rev}/{filename}`` requests only (at any revision).
        """
        total = 0
        for request in self.log():
            route = _parse_route(request.path)
            if method is not None and request.method != method.upper():
                continue
            if repo_id is not None and route.repo_id != repo_id:
                continue
            if filename is not None and (route.kind != "resolve" or route.path != filename):
                continue
            total += 1
        return total

    def clear_log(self) -> None:
        """Forget the requests seen so far."""
        with self._lock:
            self._log.clear()

    def inject(self, fault: Fault) -> None:
        """Add ``fault``; the first fault that matches a request applies to it."""
        with self._lock:
            self._faults.append(_ArmedFault(fault, fault.times))

    def clear_faults(self) -> None:
        """Remove every injected fault."""
        with self._lock:
            self._faults.clear()

    # -- serving (called from the handler threads) ---------------------------------------------------------------

    def _take_fault(self, method: str, target: str) -> Fault | None:
        with self._lock:
            for armed in self._faults:
                fault = armed.fault
                if fault.method not in (None, method) or fault.path_contains not in target:
                    continue
                if armed.remaining is not None:
                    if armed.remaining <= 0:
                        continue
                    armed.remaining -= 1
                return fault
        return None

    def _record(self, handler: _Handler, status: int) -> None:
        parts = urlsplit(handler.path)
        request = Request(
            method=handler.command,
            path=parts.path,
            status=int(status),
            authorized=handler.headers.get("Authorization") is not None,
            query=parts.query,
        )
        with self._lock:
            self._log.append(request)

    def _answer(self, method: str, target: str, headers: Mapping[str, str]) -> _Answer:
        """Compute the Hub's answer to a request, faults aside."""
        parts = urlsplit(target)
        route = _parse_route(parts.path)
        authorized = headers.get("Authorization") is not None
        if route.kind == "unknown" or method not in ("GET", "HEAD"):
            return _error(HTTPStatus.NOT_FOUND, "Not Found")
        with self._lock:  # one consistent view, even while add_repo() publishes a new commit
            repo = self._repos.get(route.repo_id or "")
            gated = repo is not None and repo.gated
            sha = (repo.main if route.revision == "main" else route.revision) if repo is not None else None
            files = repo.commits.get(sha or "") if repo is not None else None
        if repo is None:
            # The Hub does not tell anonymous callers whether a repo exists: 401 for them, 404 with a token.
            status = HTTPStatus.NOT_FOUND if authorized else HTTPStatus.UNAUTHORIZED
            return _error(status, "Repository not found", "RepoNotFound")
        if route.kind == "api":
            return _error(HTTPStatus.NOT_FOUND, "Not Found")
        # Only file contents are gated on the Hub; the repo page, its info and its file list stay public.
        if route.kind == "resolve" and gated and not authorized:
            message = (
                f"Access to model {route.repo_id} is restricted. You must have access to it and be authenticated."
            )
            return _error(HTTPStatus.UNAUTHORIZED, message, "GatedRepo")
        if sha is None or files is None:
            return _error(HTTPStatus.NOT_FOUND, f"Invalid rev id: {route.revision}", "RevisionNotFound")
        if route.kind == "info":
            return self._info(route, gated, sha, files, parse_qs(parts.query))
        if route.kind == "tree":
            return self._tree(route, sha, files, parse_qs(parts.query))
        return self._resolve(route, sha, files, headers)

    @staticmethod
    def _info(route: _Route, gated: bool, sha: str, files: Mapping[str, _File], query: dict) -> _Answer:
        with_blobs = query.get("blobs", ["false"])[0].lower() == "true"
        siblings = []
        for path in sorted(files):
            sibling: dict[str, object] = {"rfilename": path}
            if with_blobs:
                sibling.update(size=len(files[path].content), blobId=files[path].git_oid)
                if files[path].lfs is not None:
                    stored = files[path]
                    sibling["lfs"] = {
                        "sha256": stored.etag,
                        "size": len(stored.content),
                        "pointerSize": stored.lfs["pointerSize"],
                    }
            siblings.append(sibling)
        repo_id = route.repo_id or ""
        payload = {
            "_id": sha[:24],
            "id": repo_id,
            "modelId": repo_id,
            "author": repo_id.split("/")[0],
            "sha": sha,
            "lastModified": "2024-01-01T00:00:00.000Z",
            "createdAt": "2024-01-01T00:00:00.000Z",
            "private": False,
            "disabled": False,
            "gated": "auto" if gated else False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "siblings": siblings,
        }
        card = _front_matter(files["README.md"].content) if "README.md" in files else {}
        if card:
            payload["cardData"] = card
        return _Answer(HTTPStatus.OK, {"Content-Type": "application/json; charset=utf-8"}, _json_body(payload))

    @staticmethod
    def _tree(route: _Route, sha: str, files: Mapping[str, _File], query: dict) -> _Answer:
        recursive = query.get("recursive", ["false"])[0].lower() == "true"
        folder = (route.path or "").strip("/")
        prefix = f"{folder}/" if folder else ""
        entries: dict[str, dict[str, object]] = {}
        for path in sorted(files):
            if not path.startswith(prefix):
                continue
            relative_parts = path[len(prefix) :].split("/")
            # Every folder between `folder` and the file is an entry of its own, as in the Hub's listing.
            for depth in range(1, len(relative_parts)):
                if depth > 1 and not recursive:
                    break
                directory = prefix + "/".join(relative_parts[:depth])
                oid = hashlib.sha1(f"{sha}:{directory}".encode()).hexdigest()
                entries.setdefault(directory, {"type": "directory", "oid": oid, "size": 0, "path": directory})
            if recursive or len(relative_parts) == 1:
                stored = files[path]
                entry: dict[str, object] = {
                    "type": "file",
                    "oid": stored.git_oid,
                    "size": len(stored.content),
                    "path": path,
                }
                if stored.lfs is not None:
                    entry["lfs"] = stored.lfs
                entries[path] = entry
        if folder and not entries:
            return _error(HTTPStatus.NOT_FOUND, f"Entry not found: {folder}", "EntryNotFound", commit=sha)
        body = _json_body([entries[key] for key in sorted(entries)])
        return _Answer(HTTPStatus.OK, {"Content-Type": "application/json; charset=utf-8"}, body)

    @staticmethod
    def _resolve(route: _Route, sha: str, files: Mapping[str, _File], headers: Mapping[str, str]) -> _Answer:
        stored = files.get(route.path or "")
        if stored is None:
            # The commit id lets the client remember the file is missing at this commit (`.no_exist`).
            return _error(HTTPStatus.NOT_FOUND, "Entry not found", "EntryNotFound", commit=sha)
        size = len(stored.content)
        answer_headers = {
            "Content-Type": "application/octet-stream",
            "Accept-Ranges": "bytes",
            "ETag": f'"{stored.etag}"',
            "X-Repo-Commit": sha,
        }
        if stored.lfs is not None:
            # The Hub's CDN names LFS downloads; the client shows that name in its progress bar.
            name = PurePosixPath(route.path or "").name
            answer_headers["Content-Disposition"] = f'inline; filename="{name}"'
        requested = headers.get("Range")
        byte_range = _parse_range(requested, size) if requested else None
        if byte_range == "unsatisfiable":
            return _Answer(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE, {"Content-Range": f"bytes */{size}"}, b"")
        if isinstance(byte_range, tuple):
            first, last = byte_range
            answer_headers["Content-Range"] = f"bytes {first}-{last}/{size}"
            return _Answer(HTTPStatus.PARTIAL_CONTENT, answer_headers, stored.content[first : last + 1])
        return _Answer(HTTPStatus.OK, answer_headers, stored.content)

    def _serve(self, handler: _Handler) -> None:
        """Answer one request on ``handler``, applying the first matching fault."""
        if self._stopping.is_set():
            handler.close_connection = True
            return
        method = handler.command
        fault = self._take_fault(method, handler.path)
        if fault is not None and fault.kind in ("drop", "hang"):
            self._record(handler, 0)
            if fault.kind == "hang":
                self._stopping.wait()
            handler.close_connection = True
            return
        if fault is not None and fault.kind == "status":
            answer = _error(fault.status, f"Injected fault ({fault.status})", fault.error_code)
        else:
            answer = self._answer(method, handler.path, handler.headers)
        self._record(handler, answer.status)
        handler.send_response(answer.status)
        for name, value in answer.headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(answer.body)))
        handler.end_headers()
        if method == "HEAD":
            return
        body = answer.body
        if fault is not None and fault.kind == "cut_body":
            # Fewer bytes than Content-Length promised, then EOF: the client sees a broken transfer.
            body = body[: len(body) // 2]
            handler.close_connection = True
        self._send_body(handler, body)

    def _send_body(self, handler: _Handler, body: bytes) -> None:
        rate = self.throttle_bytes_per_s
        if not rate or rate <= 0:
            handler.wfile.write(body)
            return
        chunk_size = max(1, int(rate * _THROTTLE_TICK_S))
        started = time.monotonic()
        for offset in range(0, len(body), chunk_size):
            if self._stopping.is_set():
                handler.close_connection = True
                return
            handler.wfile.write(body[offset : offset + chunk_size])
            delay = started + (offset + chunk_size) / rate - time.monotonic()
            if delay > 0:
                self._stopping.wait(delay)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # snapshot_download opens 8 connections at once; the default backlog is 5


class _Handler(BaseHTTPRequestHandler):
    """Hands every request to the `HubDouble` the handler class is bound to."""

    double: HubDouble
    protocol_version = "HTTP/1.1"  # keep-alive, as the client's connection pool expects

    def setup(self) -> None:
        super().setup()
        with self.double._lock:
            self.double._connections.add(self.connection)

    def finish(self) -> None:
        with self.double._lock:
            self.double._connections.discard(self.connection)
        with contextlib.suppress(OSError):  # the client went away first
            super().finish()

    def _dispatch(self) -> None:
        try:
            self.double._serve(self)
        except OSError:
            self.close_connection = True  # the client hung up mid-answer (e.g. it timed out)

    def do_GET(self) -> None:  # the names http.server looks up
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._dispatch()

    def log_message(self, format: str, *args: object) -> None:
        pass  # the request log is `HubDouble.log()`; stderr stays quiet


def _catalog_files() -> dict[str, dict[str, bytes]]:
    from beit_demo.testing.checkpoints import catalog_repos

    repos = catalog_repos("tiny")
    try:
        from beit_demo.testing.timm_checkpoints import timm_beit_files
    except ModuleNotFoundError as error:
        if error.name != "beit_demo.testing.timm_checkpoints":
            raise  # the module is there but broken: say so rather than serve less
        print(f"Not serving the timm-format repo: {error}")
        return repos
    from beit_demo.catalog import CATALOG, CheckpointFormat

    for entry in CATALOG:
        if entry.source.checkpoint_format is CheckpointFormat.TIMM:
            repos[entry.repo_id] = timm_beit_files(size="tiny")
    return repos


def main(argv: list[str] | None = None) -> None:
    """Serve tiny random checkpoints for every catalog repo until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8999)
    parser.add_argument("--throttle", type=float, default=None, metavar="BYTES_PER_S", help="slow GET bodies down")
    args = parser.parse_args(argv)
    hub = HubDouble()
    hub.throttle_bytes_per_s = args.throttle
    for repo_id, files in _catalog_files().items():
        sha = hub.add_repo(repo_id, files)
        print(f"{repo_id} @ {sha} ({len(files)} files)")
    hub.start(args.port)
    print(f"Serving a Hub double. Use it with:\n  HF_ENDPOINT={hub.url}\n(Ctrl-C to stop)", flush=True)
    # SIGTERM (e.g. from a script that started this in the background) ends it as cleanly as Ctrl-C.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        print("Stopped.")
    finally:
        hub.stop()


if __name__ == "__main__":
    main()
