"""A cap on request bodies, checked before the app reads them: a small ASGI middleware in front of Gradio's routes.

Gradio caps only `/gradio_api/upload` (``launch(max_file_size=...)``). Its other routes (`/gradio_api/call/*`,
`/gradio_api/queue/join`, the MCP endpoint) read and parse a whole JSON body first, so an inline image was measured
only after hundreds of megabytes had been held, parsed and copied. Here a body is refused with HTTP 413 and one
sentence as soon as its declared length, or the bytes it has sent so far, pass the cap; nothing is parsed. Pure ASGI:
no gradio import, no buffering of its own.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from beit_demo.memory import return_freed_memory

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Inline images arrive base64-encoded (4 bytes for 3), inside JSON with the request's other inputs.
ROOM_FOR_OTHER_INPUTS = 1024 * 1024
UPLOAD_PATH_SUFFIX = "/gradio_api/upload"  # Gradio's own max_file_size guards it
# After a body this large (or a refused one), freed memory is handed back to the system: glibc would keep the copies
# of a big JSON body in its heap, and RSS stayed gigabytes above idle after a burst of refused requests.
TRIM_AFTER_BYTES = 8 * 1024 * 1024


def body_cap(max_file_size: int) -> int:
    """The largest body accepted: one upload at its cap, base64-encoded, plus room for the other inputs."""
    return -(-max_file_size * 4 // 3) + ROOM_FOR_OTHER_INPUTS


class BodyLimit:
    """Refuse request bodies past the cap with 413 and a sentence, before the app reads them.

    Args:
        app: the ASGI app behind it.
        max_file_size: the upload cap; the body cap follows from it (`body_cap`).
    """

    def __init__(self, app: ASGIApp, max_file_size: int):
        self.app = app
        self.limit = limit = body_cap(max_file_size)
        self.sentence = (
            f"The request is larger than the {_megabytes(limit)} this demo accepts (an image may be "
            f"{_megabytes(max_file_size)}): send a smaller image."
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path", "").rstrip("/").endswith(UPLOAD_PATH_SUFFIX):
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.limit:
            await self._refuse(send)  # the body is never read
            return
        received, cut, answered = 0, False, False

        async def counted_receive() -> Message:
            nonlocal received, cut
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:  # a chunked body without a length, or one that lied about it
                    cut = True
                    return {"type": "http.disconnect"}  # the app stops reading, as if the client had left
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal answered
            if cut:
                return  # the app's answer to a cut body is replaced by ours
            answered = True
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if not cut:
                raise
        finally:
            if cut or received >= TRIM_AFTER_BYTES:
                await asyncio.to_thread(return_freed_memory)
        if cut and not answered:
            await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps({"error": self.sentence, "detail": self.sentence}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        headers.append((b"connection", b"close"))  # what is left of the body is not read
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.0f} MB"
