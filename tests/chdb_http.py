"""A stand-in for a ClickHouse server's HTTP interface, backed by chDB, for tests.

It speaks as much of the protocol as clickhouse-connect 1.12 uses: ``/ping``;
SQL in the ``query`` parameter, the body, or both (ClickHouse joins them with
a newline); results in the format the SQL's FORMAT clause or
``default_format`` asks for, Native included; ``INSERT ... FORMAT x``
followed by the data (plain or chunked, lz4, zstd, gzip or deflate
compressed); ``param_*`` bindings; multipart form fields; settings as URL
parameters; and errors the way ClickHouse reports them (HTTP 500, a
``Code: N. DB::Exception: ...`` body and ``X-ClickHouse-Exception-Code``).

The server runs in its own process. chDB hosts one engine per process, bound
to one folder, so a test process can keep its own embedded chDB on another
folder at the same time; and stopping the process is a real outage, which a
sink test needs. Sessions, external data and response compression are not
implemented: clickhouse-connect works without them.

Run directly: ``python tests/chdb_http.py --data DIR [--port N]``. It prints
``LISTENING <port>`` on stdout once it accepts requests.
"""

from __future__ import annotations

import argparse
import email.parser
import email.policy
import gzip
import json
import logging
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
import zlib
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

logger = logging.getLogger(__name__)

READY_PREFIX = "LISTENING "

# URL parameters the HTTP layer consumes; chDB must not see them as settings.
_HTTP_PARAMS = frozenset(
    {
        "query",
        "database",
        "default_format",
        "user",
        "password",
        "quota_key",
        "role",
        "query_id",
        "session_id",
        "session_timeout",
        "session_check",
        "compress",
        "decompress",
        "buffer_size",
        "wait_end_of_query",
        "client_protocol_version",
        "enable_http_compression",
        "send_progress_in_http_headers",
        "http_headers_progress_interval_ms",
        "cancel_http_readonly_queries_on_client_close",
    }
)

# An INSERT whose data follows its FORMAT clause. The statement part allows a
# table, an optional column list and an optional SETTINGS clause, which is
# all clickhouse-connect writes; anything else runs as an ordinary query.
_INSERT_WITH_DATA = re.compile(
    rb"\s*(INSERT\s+INTO\s+(?:TABLE\s+)?[^\s(]+(?:\s*\([^)]*\))?"
    rb"(?:\s+SETTINGS\s+[^\n]*?)?)\s+FORMAT\s+(\w+)[ \t]*(?:\r?\n)?",
    re.IGNORECASE | re.DOTALL,
)
_TRAILING_FORMAT = re.compile(rb"\bFORMAT\s+(\w+)\s*;?\s*$", re.IGNORECASE)
_ERROR_CODE = re.compile(r"Code: (\d+)\.")
_SETTING_NAME = re.compile(r"[A-Za-z_]\w*")

# ClickHouse's UNKNOWN_EXCEPTION, for failures that carry no code.
_UNKNOWN_EXCEPTION = 1002
_CANNOT_DECOMPRESS = 271


class ClickHouseHttpError(Exception):
    """A failure to report to the client the way ClickHouse does."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _from_engine(exc: Exception) -> ClickHouseHttpError:
    text = str(exc)
    start = text.find("Code: ")
    message = text[start:] if start >= 0 else text
    found = _ERROR_CODE.search(message)
    code = int(found.group(1)) if found else _UNKNOWN_EXCEPTION
    if not found:
        message = f"Code: {code}. DB::Exception: {message}"
    return ClickHouseHttpError(code, message)


def _quote(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


def _quote_identifier(name: str) -> str:
    escaped = name.replace("\\", "\\\\").replace("`", "\\`")
    return f"`{escaped}`"


def _decompress_lz4(data: bytes) -> bytes:
    import lz4.frame  # noqa: PLC0415  (only compressed requests need it)

    # clickhouse-connect compresses each insert block as its own frame.
    out = bytearray()
    while data:
        decompressor = lz4.frame.LZ4FrameDecompressor()
        out += decompressor.decompress(data)
        data = decompressor.unused_data if decompressor.eof else b""
    return bytes(out)


def _decompress(data: bytes, encoding: str) -> bytes:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return data
    try:
        if encoding == "lz4":
            return _decompress_lz4(data)
        if encoding == "zstd":
            from backports import zstd  # noqa: PLC0415

            return bytes(zstd.decompress(data))
        if encoding == "gzip":
            return gzip.decompress(data)
        if encoding == "deflate":
            return zlib.decompress(data)
    except Exception as exc:
        # clickhouse-connect sends a plain-text marker in place of a block it
        # could not encode, precisely so that the server rejects the insert.
        raise ClickHouseHttpError(
            _CANNOT_DECOMPRESS,
            f"Code: {_CANNOT_DECOMPRESS}. DB::Exception: Cannot decompress "
            f"{encoding} body: {exc}. (CANNOT_DECOMPRESS)",
        ) from exc
    raise ClickHouseHttpError(1, f"Code: 1. DB::Exception: Unknown encoding {encoding}")


def _multipart_fields(content_type: str, body: bytes) -> dict[str, str]:
    header = f"Content-Type: {content_type}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        header + body
    )
    fields: dict[str, str] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if part.get_filename() is not None:
            raise ClickHouseHttpError(
                48, "Code: 48. DB::Exception: external data is not implemented here"
            )
        payload = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload, bytes):
            fields[name] = payload.decode()
    return fields


class _Engine:
    """Runs one request on its own chDB connection to the server's folder."""

    def __init__(self, data_dir: str) -> None:
        import chdb  # noqa: PLC0415  (the handle side never loads the engine)

        self._chdb = chdb
        self.data_dir = data_dir
        # Held for the server's life: the engine stops with its last connection.
        self._keeper = chdb.connect(data_dir)
        names = self._keeper.query("SELECT name FROM system.settings", "TabSeparated")
        self.settings = frozenset(names.bytes().decode().split())
        zone = self._keeper.query("SELECT timezone()", "TabSeparated")
        self.timezone = zone.bytes().decode().strip()

    def close(self) -> None:
        self._keeper.close()

    def execute(
        self, params: Mapping[str, str], text: bytes
    ) -> tuple[bytes, dict[str, str]]:
        """Run the SQL (with any data) and return the body and extra headers."""
        if not text.strip():
            raise ClickHouseHttpError(62, "Code: 62. DB::Exception: Empty query")
        conn = self._chdb.connect(self.data_dir)
        try:
            self._prepare(conn, params)
            insert = _INSERT_WITH_DATA.match(text)
            if insert:
                data = text[insert.end() :]
                return self._insert(conn, insert.group(1), insert.group(2), data)
            return self._query(conn, params, text)
        except RuntimeError as exc:
            raise _from_engine(exc) from exc
        finally:
            conn.close()

    def _prepare(self, conn: Any, params: Mapping[str, str]) -> None:
        database = params.get("database")
        if database:
            conn.query(f"USE {_quote_identifier(database)}", "TabSeparated")
        for name, value in params.items():
            if name in _HTTP_PARAMS or name.startswith("param_"):
                continue
            if name not in self.settings or not _SETTING_NAME.fullmatch(name):
                logger.debug("dropping unknown setting name=%s", name)
                continue
            conn.query(f"SET {name} = {_quote(value)}", "TabSeparated")

    def _insert(
        self, conn: Any, statement: bytes, fmt: bytes, data: bytes
    ) -> tuple[bytes, dict[str, str]]:
        inserter = conn.send_insert(statement.decode(), fmt.decode())
        try:
            if data:
                inserter.append(data)
            result = inserter.finish()
        except RuntimeError:
            inserter.cancel()
            raise
        summary = {
            "read_rows": "0",
            "read_bytes": "0",
            "written_rows": str(result.rows_written),
            "written_bytes": str(result.bytes_written),
            "elapsed_ns": str(int(result.elapsed * 1e9)),
        }
        return b"", {"X-ClickHouse-Summary": json.dumps(summary)}

    def _query(
        self, conn: Any, params: Mapping[str, str], text: bytes
    ) -> tuple[bytes, dict[str, str]]:
        bindings = {
            name.removeprefix("param_"): value
            for name, value in params.items()
            if name.startswith("param_")
        }
        explicit = _TRAILING_FORMAT.search(text)
        fmt = explicit.group(1).decode() if explicit else params.get("default_format")
        # Without a format, ask for names too: a statement with a result set
        # always yields its names line, DDL yields nothing, and ClickHouse
        # flags the former with X-ClickHouse-Format.
        run_fmt = fmt or "TabSeparatedWithNames"
        result = conn.query(text.decode(), run_fmt, params=bindings)
        body = bytes(result.bytes() or b"")
        headers = {
            "X-ClickHouse-Summary": json.dumps(
                {
                    "read_rows": str(result.rows_read()),
                    "read_bytes": str(result.bytes_read()),
                    "written_rows": "0",
                    "written_bytes": "0",
                    "elapsed_ns": str(int(result.elapsed() * 1e9)),
                }
            )
        }
        if fmt is None:
            if not body:
                return b"", headers
            body = body[body.find(b"\n") + 1 :]
            fmt = "TabSeparated"
        headers["X-ClickHouse-Format"] = fmt
        return body, headers


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, engine: _Engine) -> None:
        self.engine = engine
        super().__init__(("127.0.0.1", port), _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("request " + format, *args)

    def do_GET(self) -> None:
        self._serve(b"")

    def do_POST(self) -> None:
        self._serve(self._read_body())

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _serve(self, body: bytes) -> None:
        url = urlsplit(self.path)
        if url.path.rstrip("/") == "/ping":
            self._reply(200, b"Ok.\n", {})
            return
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        query_id = params.get("query_id") or str(uuid.uuid4())
        headers = {
            "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Timezone": self.server.engine.timezone,
        }
        try:
            text = self._sql_and_data(params, body)
            payload, extra = self.server.engine.execute(params, text)
        except Exception as exc:
            # Whatever went wrong, the client gets an answer, never a dropped
            # connection it would take for an outage.
            if not isinstance(exc, ClickHouseHttpError):
                logger.exception("request failed")
                exc = _from_engine(exc)
            headers["X-ClickHouse-Exception-Code"] = str(exc.code)
            self._reply(500, f"{exc}\n".encode(), headers)
            return
        headers.update(extra)
        self._reply(200, payload, headers)

    def _sql_and_data(self, params: dict[str, str], body: bytes) -> bytes:
        body = _decompress(body, self.headers.get("Content-Encoding", ""))
        content_type = self.headers.get("Content-Type", "")
        if content_type.startswith("multipart/form-data"):
            params.update(_multipart_fields(content_type, body))
            body = b""
        query = params.get("query", "").encode()
        if query and body:
            return query + b"\n" + body
        return query or body

    def _reply(self, status: int, payload: bytes, headers: Mapping[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        native = headers.get("X-ClickHouse-Format") == "Native"
        kind = "application/octet-stream" if native else "text/plain; charset=UTF-8"
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def serve(data_dir: Path, port: int) -> None:
    """Serve until SIGTERM or SIGINT; announce the port on stdout when ready."""
    data_dir.mkdir(parents=True, exist_ok=True)
    engine = _Engine(os.path.realpath(data_dir))
    server = _Server(port, engine)

    def shut_down(signum: int, frame: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    def follow_parent(parent_pid: int) -> None:
        # A test run killed outright cannot stop its server; the server
        # notices that it was handed to another parent and stops itself.
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        server.shutdown()

    signal.signal(signal.SIGTERM, shut_down)
    signal.signal(signal.SIGINT, shut_down)
    threading.Thread(target=follow_parent, args=(os.getppid(),), daemon=True).start()
    print(f"{READY_PREFIX}{server.server_port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    finally:
        server.server_close()
        engine.close()


class ChdbHttpServer:
    """Runs the server in a child process; stop and start it for outages.

    The port chosen at the first start (a free one unless given) and the data
    folder stay the same across restarts, so clients reconnect to the same
    URL and find the same tables.
    """

    def __init__(self, data_dir: Path, port: int = 0) -> None:
        self.data_dir = Path(data_dir)
        self.port = port
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if not self.port:
            raise RuntimeError("the server has not started yet")
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout_s: float = 60.0) -> None:
        """Start the child and wait until it accepts requests."""
        if self.running:
            return
        command = [sys.executable, str(Path(__file__).resolve())]
        command += ["--data", str(self.data_dir), "--port", str(self.port)]
        with self.log_path.open("ab") as log:
            process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log)
        self._process = process
        try:
            self.port = self._await_ready(process, timeout_s)
        except BaseException:
            self.stop()
            raise

    def _await_ready(self, process: subprocess.Popen[bytes], timeout_s: float) -> int:
        stdout = process.stdout
        if stdout is None:
            raise RuntimeError("the server's stdout is not a pipe")
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RuntimeError(f"the server did not start in {timeout_s} s")
            readable, _, _ = select.select([stdout], [], [], remaining)
            if not readable:
                continue
            line = stdout.readline().decode()
            if line.startswith(READY_PREFIX):
                return int(line.removeprefix(READY_PREFIX))
            if not line:
                log = self.log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"the server exited before starting:\n{log}")

    def execute(self, sql: str) -> str:
        """Run one statement over HTTP and return the response body as text."""
        request = urllib.request.Request(self.url, data=sql.encode(), method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return str(response.read().decode())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace").strip()
            exc.close()
            raise RuntimeError(f"{sql!r} failed: {detail}") from exc

    def create_database(self) -> str:
        """Create a database no other caller uses and return its name."""
        name = f"test_{uuid.uuid4().hex[:16]}"
        self.execute(f"CREATE DATABASE {name}")
        return name

    def stop(self, timeout_s: float = 15.0) -> None:
        """Stop the child (SIGTERM, then SIGKILL) and wait until it is gone."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout_s)
        if process.stdout is not None:
            process.stdout.close()

    def __enter__(self) -> ChdbHttpServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="chDB data folder")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    serve(args.data, args.port)


if __name__ == "__main__":
    main()
