"""A recording remote network driver, for scripts/capture-plugin-fixtures.

Serves Docker's plugin protocol on a unix socket with the smallest answers
that let dockerd go on (a real veth per endpoint, so Join can hand one over)
and writes every request body, byte for byte as dockerd sent it, to
OUT/NN-Method.json, plus the headers of the first request to OUT/headers.txt.
"""
import json, os, socketserver, subprocess, sys
from http.server import BaseHTTPRequestHandler

sock, out = sys.argv[1], sys.argv[2]
count = [0]
endpoints = {}


def reply_for(path, req):
    if path == "/Plugin.Activate":
        return {"Implements": ["NetworkDriver"]}
    if path == "/NetworkDriver.GetCapabilities":
        return {"Scope": "local"}
    if path == "/NetworkDriver.CreateEndpoint":
        n = len(endpoints) + 1
        host, peer = "nkcaph%d" % n, "nkcapc%d" % n
        subprocess.run(["ip", "link", "add", host, "type", "veth", "peer", "name", peer], check=True)
        endpoints[req["EndpointID"]] = (host, peer)
        iface = req.get("Interface") or {}
        if iface.get("Address"):
            return {"Interface": {}}
        return {"Interface": {"Address": "10.9.9.%d/24" % (10 + n)}}
    if path == "/NetworkDriver.Join":
        return {"InterfaceName": {"SrcName": endpoints[req["EndpointID"]][1], "DstPrefix": "eth"}}
    if path == "/NetworkDriver.DeleteEndpoint":
        host = endpoints.pop(req["EndpointID"], (None,))[0]
        if host:
            subprocess.run(["ip", "link", "del", host])
        return {}
    if path == "/NetworkDriver.EndpointOperInfo":
        return {"Value": {}}
    if path.startswith("/NetworkDriver."):
        return {}
    return None


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        count[0] += 1
        if count[0] == 1:
            with open(os.path.join(out, "headers.txt"), "w") as f:
                f.write("POST %s\n%s" % (self.path, self.headers))
        name = "%02d-%s.json" % (count[0], self.path.rsplit(".", 1)[-1])
        with open(os.path.join(out, name), "wb") as f:
            f.write(body)
        req = json.loads(body) if body.strip() else None
        rep = reply_for(self.path, req)
        if rep is None:
            self.send_response(404)
            self.end_headers()
            return
        data = json.dumps(rep).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.docker.plugins.v1+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    pass


if os.path.exists(sock):
    os.unlink(sock)
Server(sock, Handler).serve_forever()
