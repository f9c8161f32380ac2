"""textual-serve behind the tokens: the same web front end (its page, its terminal in the browser, its app
service that runs one ``trm-tui`` per tab), with what its server lacks wrapped around its aiohttp
application:

- a middleware that refuses every HTTP and WebSocket request without a known token (403, nothing started)
  and turns a token in the URL into a cookie (HttpOnly, SameSite=Strict);
- a WebSocket handler that starts the dashboard the token's role allows (``--read-only`` for a read-only
  token) and refuses a socket opened from another origin (a page elsewhere that guessed nothing still must
  not drive ours);
- the page's addresses from the request itself, not from the bind address, so the page works through
  ``ssh -L`` and a Unix socket, where the browser's host is not the server's;
- a socket made by the caller (``listen``), so a port in use is one line, and a Unix socket is 0600 from the
  moment it exists;
- no access log, which would write every token (in URLs and Referers) to the terminal or a log file.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any, Awaitable, Callable

import aiohttp_jinja2
from aiohttp import web
from textual_serve.app_service import AppService
from textual_serve.server import Server, to_int

from trm_tui.serve.tokens import Role, Tokens

log = logging.getLogger("trm-tui serve")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

REFUSED = ("trm-tui serve: this page needs its token: open the URL trm-tui serve printed (it ends in ?token=...). "
           "Lost it? Restart trm-tui serve, or give it --token-file.\n")


class GuardedServer(Server):
    """textual-serve's ``Server`` with a token check, a role per token and the page's URLs from the request."""

    def __init__(self, commands: dict[Role, str], tokens: Tokens, sock: socket.socket, cookie: str,
                 title: str) -> None:
        super().__init__(commands[Role.FULL] if Role.FULL in commands else commands[Role.READ_ONLY], title=title)
        self.commands, self.tokens, self.sock, self.cookie = commands, tokens, sock, cookie

    # -- the application ---------------------------------------------------------------------------------

    async def _make_app(self) -> web.Application:
        app = await super()._make_app()
        app.middlewares.append(self.guard)
        return app

    @web.middleware
    async def guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Every request: a known token (from the URL, else the cookie) or 403; the role it opens goes with the
        request; a token from the URL becomes the cookie."""
        offered = request.query.get("token")
        from_url = offered is not None
        if not from_url:
            offered = request.cookies.get(self.cookie)
        role = self.tokens.role_of(offered)
        if role is None or role not in self.commands:
            return web.Response(status=403, text=REFUSED)
        request["role"] = role
        response = await handler(request)
        if from_url and self.tokens.required and not response.prepared:
            response.set_cookie(self.cookie, offered, httponly=True, samesite="Strict", path="/")
        return response

    async def on_startup(self, app: web.Application) -> None:
        """textual-serve's banner prints a URL without the token; ours (with it) is printed by the command."""

    # -- the page ----------------------------------------------------------------------------------------

    @aiohttp_jinja2.template("app_index.html")
    async def handle_index(self, request: web.Request) -> dict[str, Any]:
        """textual-serve's page, its addresses relative to where the browser found it (ssh -L, a socket)."""
        base = f"{request.scheme}://{request.host}"
        ws_scheme = "wss" if request.scheme == "https" else "ws"
        role = request["role"]
        return {
            "font_size": to_int(request.query.get("fontsize", "16"), 16),
            "app_websocket_url": f"{ws_scheme}://{request.host}{request.app.router['websocket'].url_for()}",
            "config": {"static": {"url": f"{base}{request.app.router['static'].url_for(filename='/')}".rstrip("/") + "/"}},
            "application": {"name": self.title + (" (read-only view)" if role == Role.READ_ONLY else "")},
        }

    async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        """The terminal's socket: the dashboard the token's role allows, for a socket from this page only."""
        origin = request.headers.get("Origin")
        if origin is not None and origin.split("://", 1)[-1] != request.host:
            raise web.HTTPForbidden(text="trm-tui serve: a socket from another site is refused\n")
        websocket = web.WebSocketResponse(heartbeat=15)
        width = to_int(request.query.get("width", "80"), 80)
        height = to_int(request.query.get("height", "24"), 24)
        app_service: AppService | None = None
        try:
            await websocket.prepare(request)
            app_service = AppService(self.commands[request["role"]], write_bytes=websocket.send_bytes,
                                     write_str=websocket.send_str, close=websocket.close,
                                     download_manager=self.download_manager, debug=self.debug)
            await app_service.start(width, height)
            try:
                await self._process_messages(websocket, app_service)
            finally:
                await app_service.stop()
        except asyncio.CancelledError:
            await websocket.close()
        except Exception as error:  # one tab's failure is logged; the server and other tabs go on
            log.exception(error)
        finally:
            if app_service is not None:
                await app_service.stop()
        return websocket

    # -- serving -----------------------------------------------------------------------------------------

    def serve(self, debug: bool = False) -> None:
        """textual-serve's loop, on the socket made for us (TCP or Unix), until Ctrl-C or SIGTERM."""
        import signal

        self.debug = debug
        self.initialize_logging()
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.request_exit)
        # no access log: it would print every URL with its token (and the Referer's), and fill an unread pipe
        web.run_app(self._make_app(), sock=self.sock, handle_signals=False, loop=loop, print=lambda *a: None,
                    access_log=None)
