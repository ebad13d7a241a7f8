"""The HTTP front end, in rspamd's shape, on aiohttp.

Endpoints (rspamd's names, doc/developers/protocol.md of rspamd.com):

* ``POST /checkv2`` with the message as the body: JSON with rspamd's
  fields, ``is_skipped``, ``score`` and ``required_score`` (the points of
  server/core.py: the spam cut-off is 5.0), ``action`` ("add header" for
  spam, "reject" at or above --reject-above, else "no action"),
  ``thresholds``, ``symbols`` (SPAMCLI_SPAM, SPAMCLI_HAM or SPAMCLI_UNSURE
  with the whole score, then SPAMCLI_TOKENS_SPAM and SPAMCLI_TOKENS_HAM,
  scored 0, whose options are the n-grams that moved the score most, with
  their points), ``milter`` (the X-Spam-* fields `spamcli filter` adds, as
  rspamd's add_headers and remove_headers), ``message-id`` and
  ``time_real``; and spamcli's own ``label``, ``spam_probability``,
  ``model`` and ``model_version``. A message over the size limit is not
  read whole and is answered ``is_skipped: true``, as rspamd skips.
* ``POST /learnspam``, ``POST /learnham``: learn the body (with
  --allow-tell only; 403 otherwise): ``{"success": true}``, or 208 with
  an error when it had already been learned so, as rspamd answers.
* ``GET /ping``: ``pong``. ``GET /metrics``: the counters of all the
  daemon's processes in Prometheus' text format (server/stats.py).

aiohttp parses HTTP; this module only reads bodies within the limits and
renders the one scan result. aiohttp's keep-alive timeout is the idle
timeout: it also closes a connection whose request head has not arrived
in time (slow headers), and a body must arrive within the read timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from spamcli.config import SPAM
from spamcli.mail import message_id
from spamcli.server.core import LearningDisabled, LearnResult, ScanResult, ScanService

PROTOCOL = "http"
CHUNK_BYTES = 64 * 1024
# rspamd's action names (note the spaces).
NO_ACTION, ADD_HEADER, REJECT = "no action", "add header", "reject"
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Offload = Callable[[Callable[[], Any]], Awaitable[Any]]
# A scan, given the message's size (AsyncWorker._offload_scan).
ScanOffload = Callable[[Callable[[], Any], int], Awaitable[Any]]


class BodyTooLarge(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


def make_application(
    service: ScanService, offload_scan: ScanOffload, offload_learn: Offload
) -> web.Application:
    handlers = Handlers(service, offload_scan, offload_learn)
    application = web.Application(middlewares=[handlers.count_errors])
    application.add_routes(
        [
            web.post("/checkv2", handlers.checkv2),
            web.post("/learnspam", handlers.learnspam),
            web.post("/learnham", handlers.learnham),
            web.get("/ping", handlers.ping),
            web.get("/metrics", handlers.metrics),
        ]
    )
    return application


def runner_options(service: ScanService) -> dict[str, Any]:
    """aiohttp's own limits, from the daemon's."""
    limits = service.limits
    return {
        "access_log": None,  # one line per message is logged by the service
        "keepalive_timeout": limits.idle_timeout,
        "max_line_size": limits.max_line_bytes,
        "max_field_size": limits.max_line_bytes,
        "max_headers": limits.max_header_lines,
        # An unread body (a message over the limit) is read and dropped for
        # at most this long before the connection closes.
        "lingering_time": min(10.0, limits.read_timeout),
        "handler_cancellation": True,
        "shutdown_timeout": limits.shutdown_timeout,
    }


class Handlers:
    def __init__(self, service: ScanService, offload_scan: ScanOffload, offload_learn: Offload):
        self.service = service
        self.limits = service.limits
        self.offload_scan = offload_scan
        self.offload_learn = offload_learn

    @web.middleware
    async def count_errors(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        started = asyncio.get_running_loop().time()
        try:
            return await handler(request)
        except web.HTTPException as error:
            elapsed = asyncio.get_running_loop().time() - started
            self.service.protocol_error(
                PROTOCOL, f"{request.method} {request.path[:80]!r}: {error.status}", elapsed
            )
            raise

    async def checkv2(self, request: web.Request) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            raw = await self._read_body(request)
        except BodyTooLarge as error:
            result = self.service.unscanned(error.size)
            self.service.finish(PROTOCOL, "checkv2", loop.time() - started, result=result)
            response = web.json_response(render_checkv2(result, None, loop.time() - started))
            response.force_close()
            return response
        top = self.limits.explain_top
        try:
            result = await self.offload_scan(
                lambda: self.service.scan(raw, explain_top=top), len(raw)
            )
        except Exception as error:  # cannot classify: the client decides what to do
            return self._error(503, "checkv2", error, started)
        elapsed = loop.time() - started
        self.service.finish(PROTOCOL, "checkv2", elapsed, result=result)
        return web.json_response(render_checkv2(result, message_id(raw), elapsed))

    async def learnspam(self, request: web.Request) -> web.StreamResponse:
        return await self._learn(request, SPAM, "learnspam")

    async def learnham(self, request: web.Request) -> web.StreamResponse:
        return await self._learn(request, "ham", "learnham")

    async def ping(self, request: web.Request) -> web.StreamResponse:
        started = asyncio.get_running_loop().time()
        response = web.Response(text="pong\r\n")
        self.service.finish(PROTOCOL, "ping", asyncio.get_running_loop().time() - started)
        return response

    async def metrics(self, request: web.Request) -> web.StreamResponse:
        started = asyncio.get_running_loop().time()
        # Counted first, so that a scrape sees itself, as every other request is seen.
        self.service.finish(PROTOCOL, "metrics", asyncio.get_running_loop().time() - started)
        response = web.Response(body=self.service.stats.render().encode())
        response.headers["Content-Type"] = METRICS_CONTENT_TYPE
        return response

    async def _learn(self, request: web.Request, label: str, command: str) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        started = loop.time()
        if not self.service.settings.allow_learning:
            return self._error(
                403,
                command,
                "learning is not enabled: start spamcli serve with --allow-tell",
                started,
            )
        try:
            raw = await self._read_body(request)
        except BodyTooLarge as error:
            response = self._error(
                413, command, f"a message of {error.size} bytes is too large to learn", started
            )
            response.force_close()
            return response
        try:
            learned: LearnResult = await self.offload_learn(lambda: self.service.learn(raw, label))
        except LearningDisabled as error:
            return self._error(403, command, error, started)
        except Exception as error:
            return self._error(503, command, error, started)
        elapsed = loop.time() - started
        self.service.finish(PROTOCOL, command, elapsed, learned=learned, size=len(raw))
        if learned.changed:
            return web.json_response({"success": True, "outcome": learned.outcome})
        return web.json_response(
            {
                "success": False,
                "outcome": learned.outcome,
                "error": f"the message has already been learned as {label}",
            },
            status=208,
        )

    async def _read_body(self, request: web.Request) -> bytes:
        """The body, read within the size limit and the timeouts; a body
        over the limit is not read (aiohttp drops it, for a bounded time)."""
        limit = self.limits.max_message_bytes
        length = request.content_length
        if length is not None and length > limit:
            raise BodyTooLarge(length)
        body = bytearray()
        try:
            async with asyncio.timeout(self.limits.read_timeout):
                while True:
                    async with asyncio.timeout(self.limits.idle_timeout):
                        chunk = await request.content.read(CHUNK_BYTES)
                    if not chunk:
                        break
                    body += chunk
                    if len(body) > limit:
                        raise BodyTooLarge(len(body))
        except TimeoutError:
            raise web.HTTPRequestTimeout(text="the message took too long to arrive\r\n") from None
        return bytes(body)

    def _error(
        self, status: int, command: str, error: BaseException | str, started: float
    ) -> web.Response:
        reason = " ".join(str(error).split()) or type(error).__name__
        elapsed = asyncio.get_running_loop().time() - started
        self.service.protocol_error(PROTOCOL, f"{command}: {reason}", elapsed)
        return web.json_response({"error": reason}, status=status)


def action(result: ScanResult) -> str:
    if not result.scanned or not result.is_spam:
        return REJECT if result.reject else NO_ACTION
    return REJECT if result.reject else ADD_HEADER


def render_checkv2(result: ScanResult, message_id: str | None, seconds: float) -> dict[str, Any]:
    """The one scan result in rspamd's /checkv2 shape, with spamcli's fields."""
    reply: dict[str, Any] = {
        "is_skipped": not result.scanned,
        "score": round(result.points, 4),
        "required_score": result.required_points,
        "action": action(result),
        "thresholds": {ADD_HEADER: result.required_points},
        "symbols": {},
        "messages": {},
        "time_real": round(seconds, 6),
        "label": result.label,
        "spam_probability": result.spam_probability,
        "model": result.model,
        "model_version": result.model_version,
    }
    if message_id is not None:
        reply["message-id"] = message_id
    if not result.scanned:
        reply["messages"] = {"skipped": f"not scanned: {result.reason}"}
        return reply
    if result.reject_points is not None:
        reply["thresholds"][REJECT] = round(result.reject_points, 4)
    verdict_symbol = f"SPAMCLI_{(result.label or '').upper()}"
    symbols: dict[str, dict[str, Any]] = {
        verdict_symbol: {
            "name": verdict_symbol,
            "score": round(result.points, 4),
            "metric_score": round(result.points, 4),
            "description": f"spamcli: {result.label}, spam probability "
            f"{result.spam_probability:.6f} against a spam cut-off of {result.spam_cutoff:.6f}",
            "options": [f"{result.spam_probability:.6f}", f"model {result.model}"],
        }
    }
    for name, sign in (("SPAMCLI_TOKENS_SPAM", 1), ("SPAMCLI_TOKENS_HAM", -1)):
        options = [
            f"{effect.token}: {effect.points:+.2f}"
            for effect in result.effects
            if effect.effect * sign > 0
        ]
        if options:
            symbols[name] = {
                "name": name,
                "score": 0.0,
                "metric_score": 0.0,
                "description": "the n-grams that moved the score most towards "
                + ("spam" if sign > 0 else "ham")
                + ", with their points",
                "options": options,
            }
    reply["symbols"] = symbols
    reply["milter"] = {
        "remove_headers": {name: 0 for name, _value in result.fields},
        "add_headers": {
            name: {"value": value, "order": order}
            for order, (name, value) in enumerate(result.fields)
        },
    }
    return reply
