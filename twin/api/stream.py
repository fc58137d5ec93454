"""The live stream: Server-Sent Events of line state changes and alert changes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from fastapi import APIRouter, Depends, Request
from fastapi.sse import EventSourceResponse, ServerSentEvent

from twin.api.deps import TwinDep, require_reader
from twin.api.schemas import Problem

router = APIRouter(
    tags=["stream"], dependencies=[Depends(require_reader)], responses={401: {"model": Problem}}
)

KEEPALIVE_S = 15.0


@router.get("/stream", response_class=EventSourceResponse)
async def stream(twin: TwinDep, request: Request) -> AsyncIterator[ServerSentEvent]:
    """``event: state`` (changed live values per line, ~4 per second) and ``event: alert`` (each change)."""
    queue = twin.engine.events.listen()
    try:
        yield ServerSentEvent(event="hello", data={"lines": twin.engine.lines})
        while not await request.is_disconnected():
            try:
                async with asyncio.timeout(KEEPALIVE_S):  # unlike wait_for on 3.11, never swallows a cancel
                    event = await queue.get()
            except TimeoutError:
                yield ServerSentEvent(comment="keep-alive")
                continue
            yield ServerSentEvent(event=event["event"], data=event["data"])
    finally:
        twin.engine.events.forget(queue)
