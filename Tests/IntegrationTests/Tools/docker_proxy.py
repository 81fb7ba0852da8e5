#!/usr/bin/env python3
"""docker_proxy.py - a unix-socket HTTP proxy in front of Docker's socket, for
tests of netkeep's Docker client against a misbehaving engine.
Python 3 standard library only.

Usage (spawned by the tests with an argument array, no shell):

    python3 docker_proxy.py --listen PATH [--upstream /var/run/docker.sock]
        --mode forward|stall-file|empty-engine|not-found
        [--stall-file FILE] [--engine-id ID] [--root-dir DIR]
        [--log FILE] [--max-seconds 300] [--max-connections 128]

Modes:
  forward       Byte-for-byte bidirectional relay, one thread per accepted
                connection, each with its own upstream connection (opened at
                accept time). Streaming responses (GET /events, attach, ...)
                flow as they come; half-closes are passed on; when the engine
                closes, the client connection is closed once everything was
                delivered. If upstream cannot be connected to, the client
                connection is closed at once without a response (the client
                sees a reset or EOF; a line goes to stderr).
  stall-file    As forward, plus: whenever --stall-file FILE exists, every
                connection that was opened before that file came into being
                stops forwarding upstream->client, for good. It stays open
                and silent (upstream bytes are read and discarded so the
                engine is not slowed; client->upstream still flows; even an
                upstream close is not passed on): the client sees a stalled
                stream that never closes. Connections accepted while the file
                exists are forwarded normally. "Before the file came into
                being" compares the file's (inode, mtime) with what existed at
                accept time, so deleting and re-creating the file stalls the
                connections opened in between, too.
  empty-engine  Never contacts upstream. Answers as an engine with no
                containers (Docker-like headers, Api-Version 1.41; an optional
                /vX.Y prefix and any query string are ignored):
                  GET|HEAD /_ping          200 "OK" (text/plain; HEAD: headers only)
                  GET /info                200 {"ID":...,"DockerRootDir":...,"Containers":0,"Name":"empty"}
                  GET /containers/json...  200 []
                  GET /containers/X/json   404 {"message":"No such container: X"} (X percent-decoded)
                  GET /events...           200, chunked, then nothing: stays open until the
                                           client closes or the proxy exits
                  anything else            404 {"message":"page not found"}
  not-found     Never contacts upstream. Answers EVERY request with
                404 {"message":"page not found"} (what dockerd sends for an
                unknown route, including its headers: Content-Type, Date,
                Content-Length).

Responses of the two answering modes are valid HTTP/1.1 with Content-Length
(chunked for /events); JSON bodies end with "\\n" as dockerd's do. Keep-alive
is the default; "Connection: close" (or HTTP/1.0 without keep-alive) is
honoured: the response carries "Connection: close" and the connection is
closed after it. Request bodies (Content-Length or chunked) are read and
discarded. A malformed request head gets 400 (431 if over 64 KiB) and the
connection is closed.

Output:
  * stdout: exactly one line `ready` (flushed) once PATH is listening.
  * stderr: diagnostics only.
  * --log FILE (appended, flushed per line): one line per request head seen on
    a client connection, in every mode, written before the request is
    forwarded or answered:
        conn=3 b'GET /containers/json HTTP/1.1'
    i.e. the connection number and repr() of the raw request-line bytes
    (without CRLF), so a test can check exactly what arrived, unescaped bytes
    included. A head that cannot be parsed is logged the same way with
    " malformed=REASON" appended; in the relaying modes the proxy then stops
    looking for further request heads on that connection (bytes still flow).
    After a request with "Upgrade" or to an attach/exec-start endpoint, the
    connection is a raw stream and is no longer parsed either.

PATH is removed at exit (if it is still our socket); a stale socket left at
PATH by a dead process is replaced, a live one is an error.

Exit: 0 on SIGTERM/SIGINT or after --max-seconds (default 300); 2 on bad
arguments; 1 if PATH cannot be listened on.
"""

import argparse
import json
import os
import re
import select
import signal
import socket
import stat
import sys
import threading
import time
import urllib.parse
from email.utils import formatdate

POLL = 0.2                 # seconds between checks of the stop flag / stall file
CHUNK = 65536
MAX_HEAD = 64 * 1024       # request head limit (Go's default is 1 MiB: we are stricter)
MAX_LOGGED_LINE = 8192     # bytes of a request line logged when the head never completes

stop = threading.Event()
log_lock = threading.Lock()
log_file = None


def on_signal(signum, frame):
    stop.set()


def log_request(conn_id, line, malformed=None):
    """One --log line: conn=N repr(raw request line) [malformed=REASON]."""
    if log_file is None:
        return
    text = "conn=%d %r" % (conn_id, bytes(line))
    if malformed:
        text += " malformed=%s" % malformed
    with log_lock:
        log_file.write(text + "\n")
        log_file.flush()


def diag(text):
    print("docker_proxy: " + text, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Incremental, defensive HTTP/1.x request parser.
#
# feed(data) returns a list of events:
#   ("head", req)        a request head was parsed (req: dict, see _parse_head)
#   ("done", req)        its body (if any) was read completely
#   ("error", reason, code, first_line)   malformed; the parser is now "raw"
# After an error, or after a request that turns the connection into a raw
# stream (Upgrade, attach, exec start), the parser ignores all further input.
# --------------------------------------------------------------------------

TOKEN = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
VERSION = re.compile(rb"^HTTP/1\.[01]$")
HEAD_END = re.compile(rb"\r?\n\r?\n")
RAW_STREAM_PATH = re.compile(r"^(/v[0-9.]+)?/(containers/[^?]*/attach|exec/[^/?]+/start)(\?|$)")


class RequestParser:
    def __init__(self):
        self.buf = bytearray()
        self.state = "head"         # head | body | chunk-size | chunk-data | chunk-crlf | trailer | raw
        self.remaining = 0
        self.req = None

    def feed(self, data):
        events = []
        if self.state == "raw":
            return events
        self.buf += data
        while True:
            if self.state == "raw":
                self.buf.clear()
                return events
            if self.state == "head":
                # RFC 9112 2.2: ignore empty lines before a request line.
                while self.buf[:2] == b"\r\n" or self.buf[:1] == b"\n":
                    del self.buf[:2 if self.buf[:1] == b"\r" else 1]
                m = HEAD_END.search(self.buf, 0, MAX_HEAD + 4)
                if not m:
                    if len(self.buf) > MAX_HEAD:
                        events.append(("error", "head-too-large", 431, self._first_line()))
                        self.state = "raw"
                        continue
                    return events
                head = bytes(self.buf[:m.start()])
                del self.buf[:m.end()]
                req, reason = _parse_head(head)
                if req is None:
                    events.append(("error", reason, 400, head.split(b"\n", 1)[0].rstrip(b"\r")))
                    self.state = "raw"
                    continue
                self.req = req
                events.append(("head", req))
                if req["chunked"]:
                    self.state = "chunk-size"
                elif req["length"]:
                    self.state, self.remaining = "body", req["length"]
                else:
                    self._finish(events)
                continue
            if self.state == "body":
                n = min(self.remaining, len(self.buf))
                del self.buf[:n]
                self.remaining -= n
                if self.remaining:
                    return events
                self._finish(events)
                continue
            if self.state in ("chunk-size", "trailer", "chunk-crlf"):
                nl = self.buf.find(b"\n")
                if nl < 0:
                    if len(self.buf) > 4096:
                        events.append(("error", "bad-chunk-line", 400, self.req["line"]))
                        self.state = "raw"
                        continue
                    return events
                line = bytes(self.buf[:nl]).rstrip(b"\r")
                del self.buf[:nl + 1]
                if self.state == "chunk-crlf":
                    if line:
                        events.append(("error", "bad-chunk-end", 400, self.req["line"]))
                        self.state = "raw"
                        continue
                    self.state = "chunk-size"
                elif self.state == "trailer":
                    if not line:
                        self._finish(events)
                else:
                    size = line.split(b";", 1)[0].strip()
                    if not re.match(rb"^[0-9A-Fa-f]{1,15}$", size):
                        events.append(("error", "bad-chunk-size", 400, self.req["line"]))
                        self.state = "raw"
                        continue
                    self.remaining = int(size, 16)
                    self.state = "chunk-data" if self.remaining else "trailer"
                continue
            if self.state == "chunk-data":
                n = min(self.remaining, len(self.buf))
                del self.buf[:n]
                self.remaining -= n
                if self.remaining:
                    return events
                self.state = "chunk-crlf"
                continue
            return events

    def _finish(self, events):
        req, self.req = self.req, None
        events.append(("done", req))
        self.state = "raw" if req["raw_after"] else "head"

    def _first_line(self):
        line = bytes(self.buf[:MAX_LOGGED_LINE]).split(b"\n", 1)[0].rstrip(b"\r")
        return line


def _parse_head(head):
    """Parse one request head (without the blank line). Returns (req, None) or
    (None, reason)."""
    lines = head.split(b"\n")
    lines = [l[:-1] if l.endswith(b"\r") else l for l in lines]
    line = lines[0]
    parts = line.split(b" ")
    if len(parts) != 3:
        return None, "bad-request-line"
    method, target, version = parts
    if not TOKEN.match(method) or not target or not VERSION.match(version):
        return None, "bad-request-line"
    if any(b < 0x21 or b == 0x7F for b in target):
        return None, "bad-target"
    headers = {}
    for h in lines[1:]:
        if h[:1] in (b" ", b"\t"):
            return None, "obsolete-line-folding"
        name, sep, value = h.partition(b":")
        if not sep or not TOKEN.match(name):
            return None, "bad-header"
        name = name.decode("ascii").lower()
        value = value.strip(b" \t").decode("latin-1")
        if name in headers and name in ("content-length", "host", "transfer-encoding"):
            if name == "transfer-encoding":
                headers[name] += ", " + value
                continue
            if headers[name] != value:
                return None, "duplicate-" + name
        headers[name] = value
    chunked = False
    if "transfer-encoding" in headers:
        codings = [c.strip().lower() for c in headers["transfer-encoding"].split(",") if c.strip()]
        if codings != ["chunked"]:
            return None, "unsupported-transfer-encoding"
        chunked = True
    length = 0
    if "content-length" in headers and not chunked:
        cl = headers["content-length"]
        if not re.match(r"^[0-9]{1,18}$", cl):
            return None, "bad-content-length"
        length = int(cl)
    conn_tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
    if version == b"HTTP/1.0":
        keep_alive = "keep-alive" in conn_tokens
    else:
        keep_alive = "close" not in conn_tokens
    target_text = target.decode("latin-1")
    raw_after = ("upgrade" in conn_tokens or "upgrade" in headers
                 or (method == b"POST" and RAW_STREAM_PATH.match(target_text) is not None))
    return {
        "line": line,
        "method": method.decode("ascii"),
        "target": target_text,
        "version": version.decode("ascii"),
        "headers": headers,
        "chunked": chunked,
        "length": length,
        "keep_alive": keep_alive,
        "raw_after": raw_after,
    }, None


# --------------------------------------------------------------------------
# Answering modes: empty-engine and not-found.
# --------------------------------------------------------------------------

DOCKER_HEADERS = [("Api-Version", "1.41"), ("Docker-Experimental", "false"),
                  ("Ostype", "linux"), ("Server", "Docker/20.10.24 (linux; netkeep-test empty-engine)")]
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 431: "Request Header Fields Too Large"}


def json_body(obj):
    return (json.dumps(obj, separators=(",", ":"), ensure_ascii=False) + "\n").encode("utf-8")


NOT_FOUND = json_body({"message": "page not found"})


def response(status, body, content_type="application/json", docker_headers=True,
             close=False, head_only=False, extra=()):
    """A complete HTTP/1.1 response with Content-Length."""
    headers = list(DOCKER_HEADERS) if docker_headers else []
    headers += list(extra)
    headers += [("Content-Type", content_type), ("Date", formatdate(usegmt=True)),
                ("Content-Length", str(len(body)))]
    if close:
        headers.append(("Connection", "close"))
    out = "HTTP/1.1 %d %s\r\n" % (status, REASONS.get(status, "Unknown"))
    out += "".join("%s: %s\r\n" % kv for kv in headers) + "\r\n"
    return out.encode("latin-1") + (b"" if head_only else body)


def events_head(close):
    headers = list(DOCKER_HEADERS) + [("Content-Type", "application/json"),
                                      ("Date", formatdate(usegmt=True)),
                                      ("Transfer-Encoding", "chunked")]
    if close:
        headers.append(("Connection", "close"))
    out = "HTTP/1.1 200 OK\r\n" + "".join("%s: %s\r\n" % kv for kv in headers) + "\r\n"
    return out.encode("latin-1")


VERSION_PREFIX = re.compile(r"^/v[0-9]+(\.[0-9]+)?(?=/)")


def empty_engine_answer(args, req):
    """(bytes to send, hold_open) for one request in empty-engine mode."""
    method, close = req["method"], not req["keep_alive"]
    head_only = method == "HEAD"
    path = req["target"].split("?", 1)[0]
    path = VERSION_PREFIX.sub("", path, count=1)
    if path == "/_ping" and method in ("GET", "HEAD"):
        return response(200, b"OK", "text/plain; charset=utf-8", close=close, head_only=head_only,
                        extra=[("Cache-Control", "no-cache, no-store, must-revalidate"),
                               ("Pragma", "no-cache")]), False
    if method == "GET":
        if path == "/info":
            return response(200, json_body({"ID": args.engine_id, "DockerRootDir": args.root_dir,
                                             "Containers": 0, "Name": "empty"}), close=close), False
        if path == "/containers/json":
            return response(200, b"[]\n", close=close), False
        m = re.match(r"^/containers/(.+)/json$", path)
        if m:
            name = urllib.parse.unquote(m.group(1), errors="replace")
            return response(404, json_body({"message": "No such container: " + name}), close=close), False
        if path == "/events":
            return events_head(close), True
    return response(404, NOT_FOUND, close=close, head_only=head_only), False


def serve_answering(args, conn_id, client):
    """empty-engine / not-found: parse requests, answer them; never upstream."""
    parser = RequestParser()
    holding = False          # an /events stream is open: answer nothing more
    client.settimeout(POLL)
    while not stop.is_set():
        try:
            data = client.recv(CHUNK)
        except socket.timeout:
            continue
        except OSError:
            return
        if not data:
            return
        if holding:
            continue         # discard whatever comes behind an open stream
        for ev in parser.feed(data):
            if ev[0] == "head":
                log_request(conn_id, ev[1]["line"])
            elif ev[0] == "error":
                _, reason, code, line = ev
                log_request(conn_id, line, reason)
                body = b"%d %s" % (code, REASONS[code].encode())
                _send(client, response(code, body, "text/plain; charset=utf-8",
                                       docker_headers=False, close=True))
                return
            elif ev[0] == "done":
                req = ev[1]
                if args.mode == "not-found":
                    out, hold = response(404, NOT_FOUND, docker_headers=False,
                                         close=not req["keep_alive"],
                                         head_only=req["method"] == "HEAD"), False
                else:
                    out, hold = empty_engine_answer(args, req)
                if not _send(client, out):
                    return
                if hold:
                    holding = True
                    break
                if not req["keep_alive"]:
                    return
                if req["raw_after"]:
                    # An upgrade we did not grant: nothing sensible can follow.
                    return


def _send(sock, data):
    """sendall with the stop flag honoured; False if the peer is gone."""
    view = memoryview(data)
    while view and not stop.is_set():
        try:
            n = sock.send(view)
        except socket.timeout:
            continue
        except OSError:
            return False
        view = view[n:]
    return not view


# --------------------------------------------------------------------------
# Relaying modes: forward and stall-file.
# --------------------------------------------------------------------------

def stall_identity(path):
    """(inode, mtime_ns) of the stall file, or None if it does not exist."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns)


def serve_relay(args, conn_id, client):
    try:
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        upstream.settimeout(5)
        upstream.connect(args.upstream)
    except OSError as e:
        diag("conn=%d: cannot connect to upstream %s: %s" % (conn_id, args.upstream, e))
        upstream.close()
        return
    try:
        _relay(args, conn_id, client, upstream)
    finally:
        upstream.close()


def _relay(args, conn_id, client, upstream):
    client.setblocking(False)
    upstream.setblocking(False)
    parser = RequestParser()
    # Stall bookkeeping: what the stall file looked like when we were accepted.
    watch = args.mode == "stall-file"
    born_with = stall_identity(args.stall_file) if watch else None
    stalled = False
    to_up = bytearray()       # client -> upstream, not yet written
    to_client = bytearray()   # upstream -> client, not yet written
    client_eof = upstream_eof = False
    up_shut = False

    while not stop.is_set():
        if watch and not stalled:
            now = stall_identity(args.stall_file)
            if now is not None and now != born_with:
                stalled = True
                to_client.clear()
                diag("conn=%d: stall file present, upstream->client stalled" % conn_id)
        # Pass a client half-close on once everything before it was written.
        if client_eof and not to_up and not up_shut and not upstream_eof:
            try:
                upstream.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            up_shut = True
        if upstream_eof and not to_client and not stalled:
            return                          # engine closed: close the client too
        if client_eof and (stalled or upstream_eof):
            return
        if client_eof and up_shut and upstream_eof:
            return

        rlist, wlist = [], []
        if not client_eof and not to_up:
            rlist.append(client)            # backpressure: read only when drained
        if not upstream_eof and not to_client:
            rlist.append(upstream)
        if to_up and not upstream_eof:
            wlist.append(upstream)
        if to_client:
            wlist.append(client)
        try:
            readable, writable, _ = select.select(rlist, wlist, [], POLL)
        except (InterruptedError, ValueError):
            continue
        except OSError:
            return

        if client in readable:
            try:
                data = client.recv(CHUNK)
            except (BlockingIOError, InterruptedError):
                data = None
            except OSError:
                data = b""
            if data == b"":
                client_eof = True
            elif data:
                for ev in parser.feed(data):
                    if ev[0] == "head":
                        log_request(conn_id, ev[1]["line"])
                    elif ev[0] == "error":
                        log_request(conn_id, ev[3], ev[1])
                if upstream_eof:
                    pass                    # nobody to give it to
                else:
                    to_up += data
        if upstream in readable:
            try:
                data = upstream.recv(CHUNK)
            except (BlockingIOError, InterruptedError):
                data = None
            except OSError:
                data = b""
            if data == b"":
                upstream_eof = True
                to_up.clear()
            elif data and not stalled:
                to_client += data           # a stalled relay reads and discards
        if upstream in writable and to_up:
            try:
                n = upstream.send(to_up)
                del to_up[:n]
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                upstream_eof = True
                to_up.clear()
        if client in writable and to_client:
            try:
                n = client.send(to_client)
                del to_client[:n]
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                return                      # client gone


# --------------------------------------------------------------------------
# Listener and main loop.
# --------------------------------------------------------------------------

def prepare_listen_path(path):
    """Remove a stale socket at path; refuse a live one or a non-socket."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise OSError("%s exists and is not a socket" % path)
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1)
    try:
        probe.connect(path)
    except OSError:
        os.unlink(path)               # nobody listens: stale
        return
    finally:
        probe.close()
    raise OSError("%s is a live socket of another process" % path)


def parse_args(argv):
    p = argparse.ArgumentParser(description="Unix-socket HTTP proxy in front of Docker, for tests.")
    p.add_argument("--listen", required=True, help="unix socket to create (removed at exit)")
    p.add_argument("--upstream", default="/var/run/docker.sock", help="Docker's socket")
    p.add_argument("--mode", required=True, choices=("forward", "stall-file", "empty-engine", "not-found"))
    p.add_argument("--stall-file", help="stall-file mode: stall open relays while this file exists")
    p.add_argument("--engine-id", default="EMPTY:ENGINE:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000",
                   help="empty-engine mode: ID in GET /info")
    p.add_argument("--root-dir", default="/var/lib/docker-empty",
                   help="empty-engine mode: DockerRootDir in GET /info")
    p.add_argument("--log", help="append one line per request line seen (repr of the raw bytes)")
    p.add_argument("--max-seconds", type=float, default=300.0, help="exit by itself after this long")
    p.add_argument("--max-connections", type=int, default=128,
                   help="connections served at once; further ones are closed at once")
    args = p.parse_args(argv)
    if args.mode == "stall-file" and not args.stall_file:
        p.error("--mode stall-file needs --stall-file FILE")
    if not args.max_seconds > 0:
        p.error("--max-seconds must be positive")
    if args.max_connections < 1:
        p.error("--max-connections must be at least 1")
    if len(os.fsencode(args.listen)) >= 108:
        p.error("--listen path too long for a unix socket")
    return args


def main(argv):
    global log_file
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if args.log:
        log_file = open(args.log, "a")

    try:
        prepare_listen_path(args.listen)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(args.listen)
        listener.listen(64)
        listener.settimeout(POLL)
        our_inode = os.lstat(args.listen).st_ino
    except OSError as e:
        diag("cannot listen on %s: %s" % (args.listen, e))
        return 1

    serve = serve_relay if args.mode in ("forward", "stall-file") else serve_answering
    slots = threading.BoundedSemaphore(args.max_connections)
    threads = []
    deadline = time.monotonic() + args.max_seconds
    next_id = 0

    def run(conn_id, client):
        try:
            serve(args, conn_id, client)
        except Exception as e:  # a bug here must not take the proxy down
            diag("conn=%d: %r" % (conn_id, e))
        finally:
            try:
                client.close()
            finally:
                slots.release()

    sys.stdout.write("ready\n")
    sys.stdout.flush()
    try:
        # Bounded: ends on a signal or at the deadline.
        while not stop.is_set():
            if time.monotonic() >= deadline:
                diag("--max-seconds reached, exiting")
                break
            try:
                client, _ = listener.accept()
            except socket.timeout:
                continue
            except InterruptedError:
                continue
            except OSError as e:
                diag("accept: %s" % e)
                time.sleep(POLL)
                continue
            next_id += 1
            if not slots.acquire(blocking=False):
                diag("conn=%d: more than %d connections, closed" % (next_id, args.max_connections))
                client.close()
                continue
            t = threading.Thread(target=run, args=(next_id, client), daemon=True)
            t.start()
            threads = [x for x in threads if x.is_alive()] + [t]
    finally:
        stop.set()
        listener.close()
        try:
            if os.lstat(args.listen).st_ino == our_inode:
                os.unlink(args.listen)
        except OSError:
            pass
        # Connection threads see the stop flag within POLL seconds.
        end = time.monotonic() + 2
        for t in threads:
            t.join(max(0, end - time.monotonic()))
        if log_file:
            log_file.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
