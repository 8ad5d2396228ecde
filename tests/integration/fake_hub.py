"""A local stand-in for the Hugging Face Hub, for the tests: the two
endpoints cembed uses, as the Hub answers them.

  GET /api/models/ORG/NAME/revision/REV[?blobs=true]
      {"id", "sha", "private", "gated", "config": {"model_type"}, "siblings":
       [{"rfilename", "blobId", "size", "lfs": {"sha256", "size"}?}]}
  GET|HEAD /ORG/NAME/resolve/REV/PATH
      small files: 200 with ETag (the git blob id); LFS files (*.safetensors,
      *.bin): 302 to the "CDN" (another server, on host "localhost") with
      X-Linked-Etag (the sha256) and X-Linked-Size
  CDN GET /blob/SHA256: Range (bytes=N-) answered 206; test switches make the
      next answer stop after some bytes or carry a flipped byte.

Misbehaviours for the tests (set on the FakeHub): flood = a file name whose
resolve answer sends far more bytes than the file has (no Content-Length);
drip = "api" or a file name whose answer comes at 2 bytes/s; no_blob_ids:
the API answer lists names only (a mirror that ignores ?blobs=true).

Private repos answer 401 without "Authorization: Bearer <token>"; an unknown
repo or revision 404. Every request is recorded (path, Range,
Authorization) for the tests to look at."""
import hashlib
import http.server
import json
import os
import threading
import urllib.parse


def git_blob_id(data):
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def is_lfs(name):
    return name.endswith(".safetensors") or name.endswith(".bin")


class Repo:
    def __init__(self, files, model_type="bert", private=False):
        self.commits, self.refs = {}, {}
        self.private, self.model_type = private, model_type
        self.add_commit(files, "main")

    def add_commit(self, files, ref=None):
        sha = hashlib.sha1(json.dumps(sorted((k, hashlib.sha256(v).hexdigest()) for k, v in files.items()))
                           .encode()).hexdigest()
        self.commits[sha] = dict(files)
        if ref:
            self.refs[ref] = sha
        return sha

    def commit_of(self, rev):
        return rev if rev in self.commits else self.refs.get(rev)


class FakeHub:
    def __init__(self, token="secret-token"):
        self.repos, self.token = {}, token
        self.requests, self.cdn_requests = [], []
        self.blobs = {}
        self.cut_next_after = None   # bytes: the next CDN answer stops there (connection closed)
        self.corrupt_next = False
        self.flood = self.drip = None
        self.no_blob_ids = False
        self.lock = threading.Lock()
        self.hub = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._hub_handler())
        self.cdn = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._cdn_handler())
        self.endpoint = f"http://127.0.0.1:{self.hub.server_address[1]}"
        self.cdn_base = f"http://localhost:{self.cdn.server_address[1]}"   # another host name: no token there
        for s in (self.hub, self.cdn):
            threading.Thread(target=s.serve_forever, daemon=True).start()

    def add(self, repo_id, repo):
        self.repos[repo_id] = repo
        for files in repo.commits.values():
            for data in files.values():
                self.blobs[hashlib.sha256(data).hexdigest()] = data
        return repo

    def add_commit(self, repo_id, files, ref=None):
        sha = self.repos[repo_id].add_commit(files, ref)
        for data in files.values():
            self.blobs[hashlib.sha256(data).hexdigest()] = data
        return sha

    def close(self):
        self.hub.shutdown()
        self.cdn.shutdown()

    def _hub_handler(hub):
        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def send(self, status, body=b"", headers=None, drip=False):
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command == "HEAD":
                    return
                if not drip:
                    self.wfile.write(body)
                    return
                import time
                try:   # 2 bytes a second, until the client gives up
                    for i in range(0, len(body), 2):
                        self.wfile.write(body[i:i + 2])
                        self.wfile.flush()
                        time.sleep(1)
                except OSError:
                    pass
                self.close_connection = True

            def flood(self, data):
                self.send_response(200)
                self.send_header("ETag", f'"{git_blob_id(data)}"')
                self.send_header("Connection", "close")
                self.end_headers()
                junk = b"x" * (1 << 20)
                try:   # 300 MB where the file has a few hundred bytes
                    for _ in range(300):
                        self.wfile.write(junk)
                except OSError:
                    pass
                self.close_connection = True

            def do_HEAD(self):
                self.do_GET()

            def do_GET(self):
                u = urllib.parse.urlparse(self.path)
                path = urllib.parse.unquote(u.path)
                with hub.lock:
                    hub.requests.append((self.command, path, self.headers.get("Authorization")))
                parts = path.strip("/").split("/")
                if parts[:2] == ["api", "models"] and len(parts) >= 6 and parts[4] == "revision":
                    repo_id, rev = "/".join(parts[2:4]), "/".join(parts[5:])
                    return self.api(repo_id, rev)
                if len(parts) >= 5 and parts[2] == "resolve":
                    return self.resolve("/".join(parts[:2]), parts[3], "/".join(parts[4:]))
                self.send(404, b'{"error":"not found"}')

            def allowed(self, repo):
                return not repo.private or self.headers.get("Authorization") == f"Bearer {hub.token}"

            def api(self, repo_id, rev):
                repo = hub.repos.get(repo_id)
                if repo and not self.allowed(repo):
                    return self.send(401, b'{"error":"Invalid credentials in Authorization header"}')
                sha = repo.commit_of(rev) if repo else None
                if not sha:
                    return self.send(404, b'{"error":"Repository or revision not found"}')
                sib = []
                for name, data in sorted(repo.commits[sha].items()):
                    s = {"rfilename": name, "blobId": git_blob_id(data), "size": len(data)}
                    if is_lfs(name):
                        s["lfs"] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
                    if hub.no_blob_ids:
                        s = {"rfilename": name}
                    sib.append(s)
                body = json.dumps({"id": repo_id, "sha": sha, "private": repo.private, "gated": False,
                                   "config": {"model_type": repo.model_type}, "siblings": sib}).encode()
                self.send(200, body, {"Content-Type": "application/json"}, drip=hub.drip == "api")

            def resolve(self, repo_id, rev, name):
                repo = hub.repos.get(repo_id)
                if repo and not self.allowed(repo):
                    return self.send(401, b'{"error":"Invalid credentials in Authorization header"}')
                sha = repo.commit_of(rev) if repo else None
                data = repo.commits[sha].get(name) if sha else None
                if data is None:
                    return self.send(404, b'{"error":"Entry not found"}')
                if is_lfs(name):
                    h = hashlib.sha256(data).hexdigest()
                    return self.send(302, b"", {"Location": f"{hub.cdn_base}/blob/{h}", "X-Linked-Etag": f'"{h}"',
                                                "X-Linked-Size": str(len(data)), "ETag": f'"{git_blob_id(data)}"',
                                                "X-Repo-Commit": sha})
                if hub.flood == name and self.command == "GET":
                    return self.flood(data)
                self.send(200, data, {"ETag": f'"{git_blob_id(data)}"', "X-Repo-Commit": sha},
                          drip=hub.drip == name)
        return H

    def _cdn_handler(hub):
        class C(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                h = self.path.split("?")[0].rsplit("/", 1)[-1]
                rng = self.headers.get("Range")
                with hub.lock:
                    hub.cdn_requests.append((self.path, rng, self.headers.get("Authorization")))
                    cut, hub.cut_next_after = hub.cut_next_after, None
                    corrupt, hub.corrupt_next = hub.corrupt_next, False
                data = hub.blobs.get(h)
                if data is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                start = 0
                if rng and rng.startswith("bytes=") and rng[6:].split("-")[0].isdigit():
                    start = int(rng[6:].split("-")[0])
                body = data[start:]
                if corrupt and body:
                    body = bytes([body[0] ^ 0xFF]) + body[1:]
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                if cut is not None:   # a connection that breaks midway
                    self.wfile.write(body[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self.wfile.write(body)
        return C


def model_files(model_dir):
    """The files of a model folder, by their path inside it."""
    out = {}
    for root, _, files in os.walk(model_dir):
        for f in files:
            p = os.path.join(root, f)
            out[os.path.relpath(p, model_dir)] = open(p, "rb").read()
    return out
