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
from aiohttp import WSMsgType, web
from textual_serve.app_service import AppService
from textual_serve.server import Server, to_int

from trm_tui.serve.tokens import Role, Tokens

log = logging.getLogger("trm-tui serve")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# What one tab may ask for. A terminal's size comes from the browser (the URL, then each resize message): 2000 x
# 2000 cells left a dashboard drawing frames no pipe could carry, blocked for good.
MAX_COLUMNS, MAX_ROWS = 500, 200
TAB_STOP_S = 5.0  # a tab's dashboard is asked to quit when its socket closes; past this it is killed


def bounded_size(width: object, height: object) -> tuple[int, int]:
    """A terminal size a tab may have: whole numbers, clamped to 1..MAX_COLUMNS and 1..MAX_ROWS."""
    def whole(value: object, default: int) -> int:
        return value if isinstance(value, int) and not isinstance(value, bool) else default
    return min(max(whole(width, 80), 1), MAX_COLUMNS), min(max(whole(height, 24), 1), MAX_ROWS)


def kill_tree(pid: int) -> None:
    """SIGKILL a process and everything under it (textual-serve starts ``sh -c trm-tui ...``)."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = root.children(recursive=True) + [root]
    except psutil.Error:
        return
    for proc in procs:
        try:
            proc.kill()
        except psutil.Error:
            pass


class BoundedAppService(AppService):
    """One tab's dashboard process: its size bounded however the browser asks, and ended for sure."""

    async def start(self, width: int, height: int) -> None:
        await super().start(*bounded_size(width, height))

    async def set_terminal_size(self, width: int, height: int) -> None:
        await super().set_terminal_size(*bounded_size(width, height))

    async def end(self) -> None:
        """Ask the dashboard to quit; kill it (and its shell) when it has not within ``TAB_STOP_S``, whatever
        state it is in (blocked on a full pipe, drawing, starting)."""
        process = self._process
        try:
            await asyncio.wait_for(self.stop(), TAB_STOP_S)
        except Exception:  # noqa: BLE001 - a timeout, a pipe already closed: the kill below ends it either way
            pass
        if process is not None and process.returncode is None:
            kill_tree(process.pid)
            try:
                await asyncio.wait_for(process.wait(), TAB_STOP_S)
            except asyncio.TimeoutError:
                log.error("a tab's dashboard (pid %s) did not end after SIGKILL", process.pid)
        if self._task is not None:
            self._task.cancel()
            self._task = None


REFUSED = ("trm-tui serve: this page needs its token: open the URL trm-tui serve printed (it ends in ?token=...). "
           "Lost it? Restart trm-tui serve, or give it --token-file.\n")


class GuardedServer(Server):
    """textual-serve's ``Server`` with a token check, a role per token and the page's URLs from the request."""

    def __init__(self, commands: dict[Role, str], tokens: Tokens, sock: socket.socket, cookie: str,
                 title: str, max_tabs: int = 4) -> None:
        super().__init__(commands[Role.FULL] if Role.FULL in commands else commands[Role.READ_ONLY], title=title)
        self.commands, self.tokens, self.sock, self.cookie = commands, tokens, sock, cookie
        self.max_tabs = max_tabs  # open tabs per link (role): each is a dashboard process
        self.tabs = {role: 0 for role in commands}

    def over_cap(self, role: Role) -> str | None:
        """Why one more tab of this link is refused, when it is: each tab runs a dashboard process."""
        if self.tabs[role] < self.max_tabs:
            return None
        link = "read-only link" if role == Role.READ_ONLY else "link"
        return (f"trm-tui serve: {self.tabs[role]} tabs of this {link} are open, the most this server allows "
                f"(trm-tui serve --max-tabs {self.max_tabs}; each tab runs a dashboard process). Close one and "
                f"reload this page.\n")

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
        full = self.over_cap(request["role"])
        if full is not None:
            raise web.HTTPServiceUnavailable(text=full)
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
        role = request["role"]
        full = self.over_cap(role)
        if full is not None:  # refused before anything starts
            raise web.HTTPServiceUnavailable(text=full)
        websocket = web.WebSocketResponse(heartbeat=15)
        width = to_int(request.query.get("width", "80"), 80)
        height = to_int(request.query.get("height", "24"), 24)
        app_service: BoundedAppService | None = None
        self.tabs[role] += 1
        try:
            await websocket.prepare(request)
            app_service = BoundedAppService(self.commands[role], write_bytes=websocket.send_bytes,
                                            write_str=websocket.send_str, close=websocket.close,
                                            download_manager=self.download_manager, debug=self.debug)
            await app_service.start(width, height)
            await self._process_messages(websocket, app_service)
        except asyncio.CancelledError:
            await websocket.close()
        except Exception as error:  # one tab's failure is logged; the server and other tabs go on
            log.exception(error)
        finally:
            try:
                if app_service is not None:
                    await app_service.end()  # whatever state its dashboard is in, it ends with its socket
            finally:
                self.tabs[role] -= 1  # the slot is free once its process is gone
        return websocket

    async def _process_messages(self, websocket: web.WebSocketResponse, app_service: AppService) -> None:
        """The page's messages to its dashboard, as textual-serve's loop reads them, except that a message this
        page would never send (not JSON, not a known envelope) is dropped, not a traceback in the server's log."""
        async for message in websocket:
            if message.type != WSMsgType.TEXT:
                continue
            try:
                envelope = message.json()
                kind, data = envelope[0], envelope[1]
                if kind == "stdin":
                    await app_service.send_bytes(str(data).encode("utf-8"))
                elif kind == "resize":
                    await app_service.set_terminal_size(data["width"], data["height"])
                elif kind == "ping":
                    await websocket.send_json(["pong", data])
                elif kind == "blur":
                    await app_service.blur()
                elif kind == "focus":
                    await app_service.focus()
            except (ValueError, TypeError, KeyError, IndexError):
                log.debug("a malformed message from a tab was dropped")

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
