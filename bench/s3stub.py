"""A tiny S3 stand-in for the benchmark, on 127.0.0.1 only.

It answers the three calls the benchmark makes of a store, from memory:

- CreateMultipartUpload (`POST /<bucket>/<key>?uploads`), made by edge-presigner when
  the benchmark starts a multipart upload to get an upload token;
- ListParts (`GET /<bucket>/<key>?uploadId=`), made by every Worker once per
  `POST /v1/multipart/parts` to check that the upload still exists; it answers an empty
  list, or 404 NoSuchUpload for an unknown upload id;
- a presigned `PUT` (an object or a part), used only by the benchmark's check that each
  Worker's URLs are valid: the stub checks the SigV4 query signature the way S3 does
  (method, path, query, the signed headers as sent, `UNSIGNED-PAYLOAD`, expiry) and
  answers 200, or 403 SignatureDoesNotMatch.

Header-signed requests (CreateMultipartUpload, ListParts) are not checked: the
benchmark measures signing speed, and the project's end-to-end tests check those calls
against real stores. Nothing is stored.

Run: python3 s3stub.py PORT ACCESS_KEY_ID SECRET_ACCESS_KEY
"""

import hashlib
import hmac
import sys
import threading
import uuid
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, quote, urlsplit

UPLOADS = set()
UPLOADS_LOCK = threading.Lock()


def canonical_query(pairs):
    encoded = [(quote(k, safe="-_.~"), quote(v, safe="-_.~")) for k, v in pairs]
    return "&".join(f"{k}={v}" for k, v in sorted(encoded))


def signing_key(secret, date, region, service="s3"):
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def check_presigned(method, raw_path, query, headers, credentials, now):
    """Returns None when the presigned request is valid, else why not."""
    params = dict(query)
    needed = ["X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires",
              "X-Amz-SignedHeaders", "X-Amz-Signature"]
    missing = [name for name in needed if name not in params]
    if missing:
        return f"missing {', '.join(missing)}"
    access_key, date, region, service, _ = params["X-Amz-Credential"].split("/")
    if access_key != credentials[0]:
        return "unknown access key"
    signed_at = datetime.strptime(params["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(
        tzinfo=timezone.utc)
    if now > signed_at + timedelta(seconds=int(params["X-Amz-Expires"])):
        return "expired"

    signed_names = params["X-Amz-SignedHeaders"].split(";")
    canonical_headers = ""
    for name in signed_names:
        value = headers.get(name)
        if value is None:
            return f"signed header {name} was not sent"
        canonical_headers += f"{name}:{' '.join(value.split())}\n"
    payload = params.get("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
    canonical = "\n".join([
        method,
        raw_path,
        canonical_query([(k, v) for k, v in query if k != "X-Amz-Signature"]),
        canonical_headers,
        params["X-Amz-SignedHeaders"],
        payload,
    ])
    scope = f"{date}/{region}/{service}/aws4_request"
    to_sign = "\n".join([
        "AWS4-HMAC-SHA256", params["X-Amz-Date"], scope,
        hashlib.sha256(canonical.encode()).hexdigest(),
    ])
    key = signing_key(credentials[1], date, region, service)
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, params["X-Amz-Signature"]):
        return "signature does not match"
    return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Without TCP_NODELAY, a body written after the headers waits for the Worker's
    # delayed ACK: 40 ms added to every ListParts.
    disable_nagle_algorithm = True
    credentials = ("", "")

    def log_message(self, *args):
        pass

    def answer(self, status, body=b"", headers=()):
        self.send_response(status)
        self.send_header("content-length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def error(self, status, code, message):
        body = (f"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code>"
                f"<Message>{message}</Message></Error>").encode()
        self.answer(status, body, [("content-type", "application/xml")])

    def read_body(self):
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def do_POST(self):
        url = urlsplit(self.path)
        self.read_body()
        if "uploads" not in dict(parse_qsl(url.query, keep_blank_values=True)):
            return self.error(400, "InvalidRequest", "only CreateMultipartUpload is served")
        upload_id = uuid.uuid4().hex
        with UPLOADS_LOCK:
            UPLOADS.add(upload_id)
        bucket, _, key = url.path.lstrip("/").partition("/")
        body = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?><InitiateMultipartUploadResult>"
                f"<Bucket>{bucket}</Bucket><Key>{key}</Key><UploadId>{upload_id}</UploadId>"
                "</InitiateMultipartUploadResult>").encode()
        self.answer(200, body, [("content-type", "application/xml")])

    def do_GET(self):
        url = urlsplit(self.path)
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        upload_id = query.get("uploadId")
        if upload_id is None:
            return self.error(400, "InvalidRequest", "only ListParts is served")
        with UPLOADS_LOCK:
            known = upload_id in UPLOADS
        if not known:
            return self.error(404, "NoSuchUpload", "the upload does not exist")
        body = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListPartsResult>"
                f"<UploadId>{upload_id}</UploadId><IsTruncated>false</IsTruncated>"
                "</ListPartsResult>").encode()
        self.answer(200, body, [("content-type", "application/xml")])

    def do_PUT(self):
        url = urlsplit(self.path)
        body = self.read_body()
        query = parse_qsl(url.query, keep_blank_values=True)
        headers = {name.lower(): value for name, value in self.headers.items()}
        problem = check_presigned("PUT", url.path, query, headers, self.credentials,
                                  datetime.now(timezone.utc))
        if problem:
            return self.error(403, "SignatureDoesNotMatch", problem)
        etag = '"' + hashlib.md5(body).hexdigest() + '"'
        self.answer(200, b"", [("etag", etag)])


def main():
    port, access_key, secret_key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    Handler.credentials = (access_key, secret_key)
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print(f"s3stub listening on 127.0.0.1:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
