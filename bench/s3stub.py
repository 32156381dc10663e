"""A tiny S3 stand-in for the benchmark and the soak test, on 127.0.0.1 only.

It keeps multipart uploads and the parts sent to them in memory (part sizes and ETags,
never the bytes) and answers the calls a Worker and its clients make of a store:

- CreateMultipartUpload (`POST /<bucket>/<key>?uploads`);
- ListParts (`GET /<bucket>/<key>?uploadId=`, paged by `max-parts` and
  `part-number-marker`), made by edge-presigner once per `POST /v1/multipart/parts` to
  check that the upload still exists; 404 NoSuchUpload for an unknown upload id;
- CompleteMultipartUpload (`POST /<bucket>/<key>?uploadId=` with the part list): every
  part listed must have been sent with that ETag (else 400 InvalidPart), in ascending
  order (400 InvalidPartOrder); the object's ETag is S3's, the MD5 of the parts' MD5s and
  the part count;
- AbortMultipartUpload (`DELETE ...?uploadId=`, 204), HeadObject and DeleteObject, for
  the objects that PUTs and completions made (the last 20,000 are remembered);
- a presigned `PUT` of an object or a part: the stub checks the SigV4 query signature the
  way S3 does (method, path, query, the signed headers as sent, `UNSIGNED-PAYLOAD`,
  expiry) and answers 200 with the body's MD5 as ETag, or 403 SignatureDoesNotMatch.

Requests signed in the `Authorization` header (the Worker's own calls) are checked too:
the signature over the same canonical request, and `x-amz-content-sha256` against the
body. A bad signature gets 403 SignatureDoesNotMatch, which the Worker turns into a 502.

`GET /_stub/stats` answers how many calls of each kind the stub served and refused, as
JSON, for the soak test's report.

Run: python3 s3stub.py PORT ACCESS_KEY_ID SECRET_ACCESS_KEY
"""

import hashlib
import hmac
import json
import re
import sys
import threading
import uuid
import xml.etree.ElementTree as ElementTree
from collections import Counter, OrderedDict
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, quote, urlsplit

# upload id -> {part number: (ETag, size)}
UPLOADS = {}
# "/bucket/key" -> (ETag, size), the most recent last
OBJECTS = OrderedDict()
MAX_OBJECTS = 20_000
STATS = Counter()
LOCK = threading.Lock()
MAX_SKEW = timedelta(minutes=15)
AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=([^,]+), ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]+)$")


def canonical_query(pairs):
    encoded = [(quote(k, safe="-_.~"), quote(v, safe="-_.~")) for k, v in pairs]
    return "&".join(f"{k}={v}" for k, v in sorted(encoded))


def signing_key(secret, date, region, service="s3"):
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def expected_signature(request, scope, amz_date, signed_names, payload, secret):
    """SigV4 over the canonical request: `request` is (method, raw path, query pairs
    without the signature, headers by lowercase name). None when a signed header is
    missing."""
    method, raw_path, query, headers = request
    canonical_headers = ""
    for name in signed_names:
        value = headers.get(name)
        if value is None:
            return None
        canonical_headers += f"{name}:{' '.join(value.split())}\n"
    canonical = "\n".join([method, raw_path, canonical_query(query), canonical_headers,
                           ";".join(signed_names), payload])
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                         hashlib.sha256(canonical.encode()).hexdigest()])
    date, region, service, _ = scope.split("/")
    key = signing_key(secret, date, region, service)
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def check_presigned(method, raw_path, query, headers, credentials, now):
    """Returns None when the presigned request is valid, else why not."""
    params = dict(query)
    needed = ["X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires",
              "X-Amz-SignedHeaders", "X-Amz-Signature"]
    missing = [name for name in needed if name not in params]
    if missing:
        return f"missing {', '.join(missing)}"
    access_key, scope = params["X-Amz-Credential"].split("/", 1)
    if access_key != credentials[0]:
        return "unknown access key"
    signed_at = datetime.strptime(params["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(
        tzinfo=timezone.utc)
    if now > signed_at + timedelta(seconds=int(params["X-Amz-Expires"])):
        return "expired"

    request = (method, raw_path, [(k, v) for k, v in query if k != "X-Amz-Signature"],
               headers)
    payload = params.get("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
    expected = expected_signature(request, scope, params["X-Amz-Date"],
                                  params["X-Amz-SignedHeaders"].split(";"), payload,
                                  credentials[1])
    if expected is None:
        return "a signed header was not sent"
    if not hmac.compare_digest(expected, params["X-Amz-Signature"]):
        return "signature does not match"
    return None


def check_header_signed(method, raw_path, query, headers, body, credentials, now):
    """Returns None when a request signed in its Authorization header is valid, else why
    not."""
    found = AUTHORIZATION.match(headers.get("authorization", ""))
    if not found:
        return "no AWS4-HMAC-SHA256 Authorization header"
    credential, signed_names, signature = found.groups()
    access_key, scope = credential.split("/", 1)
    if access_key != credentials[0]:
        return "unknown access key"
    amz_date = headers.get("x-amz-date", "")
    try:
        signed_at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        return "no valid x-amz-date"
    if abs(now - signed_at) > MAX_SKEW:
        return "x-amz-date too far from now"
    payload = headers.get("x-amz-content-sha256", "")
    if payload != "UNSIGNED-PAYLOAD" and payload != hashlib.sha256(body).hexdigest():
        return "x-amz-content-sha256 is not the body's SHA-256"
    expected = expected_signature((method, raw_path, query, headers), scope, amz_date,
                                  signed_names.split(";"), payload, credentials[1])
    if expected is None:
        return "a signed header was not sent"
    if not hmac.compare_digest(expected, signature):
        return "signature does not match"
    return None


def multipart_etag(etags):
    digests = b"".join(bytes.fromhex(etag.strip('"')) for etag in etags)
    return f'"{hashlib.md5(digests).hexdigest()}-{len(etags)}"'


def remember_object(path, etag, size):
    with LOCK:
        OBJECTS[path] = (etag, size)
        OBJECTS.move_to_end(path)
        while len(OBJECTS) > MAX_OBJECTS:
            OBJECTS.popitem(last=False)


def xml_text(value):
    return (str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


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
        if self.command != "HEAD":
            self.wfile.write(body)

    def xml(self, status, text):
        body = ('<?xml version="1.0" encoding="UTF-8"?>' + text).encode()
        self.answer(status, body, [("content-type", "application/xml")])

    def error(self, status, code, message):
        with LOCK:
            STATS[f"refused {code}"] += 1
        self.xml(status, f"<Error><Code>{code}</Code><Message>{xml_text(message)}</Message>"
                         "</Error>")

    def read_body(self):
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def parse(self, presigned):
        """The request's parts, once its signature is checked; None after answering 403."""
        url = urlsplit(self.path)
        body = self.read_body()
        query = parse_qsl(url.query, keep_blank_values=True)
        headers = {name.lower(): value for name, value in self.headers.items()}
        now = datetime.now(timezone.utc)
        if presigned:
            problem = check_presigned(self.command, url.path, query, headers,
                                      self.credentials, now)
        else:
            problem = check_header_signed(self.command, url.path, query, headers, body,
                                          self.credentials, now)
        kind = "presigned" if presigned else "header-signed"
        if problem:
            with LOCK:
                STATS[f"{kind} refused"] += 1
            self.error(403, "SignatureDoesNotMatch", problem)
            return None
        with LOCK:
            STATS[f"{kind} accepted"] += 1
        return url.path, dict(query), body

    def count(self, operation):
        with LOCK:
            STATS[operation] += 1

    def do_POST(self):
        parsed = self.parse(presigned=False)
        if parsed is None:
            return
        path, query, body = parsed
        if "uploads" in query:
            return self.create(path)
        if "uploadId" in query:
            return self.complete(path, query["uploadId"], body)
        return self.error(400, "InvalidRequest", "this POST is not served")

    def create(self, path):
        self.count("CreateMultipartUpload")
        upload_id = uuid.uuid4().hex
        with LOCK:
            UPLOADS[upload_id] = {}
        bucket, _, key = path.lstrip("/").partition("/")
        self.xml(200, f"<InitiateMultipartUploadResult><Bucket>{xml_text(bucket)}</Bucket>"
                      f"<Key>{xml_text(key)}</Key><UploadId>{upload_id}</UploadId>"
                      "</InitiateMultipartUploadResult>")

    def complete(self, path, upload_id, body):
        self.count("CompleteMultipartUpload")
        try:
            listed = [(int(part.findtext("{*}PartNumber")),
                       (part.findtext("{*}ETag") or "").strip('"'))
                      for part in ElementTree.fromstring(body).iter()
                      if part.tag.rsplit("}", 1)[-1] == "Part"]
        except (ElementTree.ParseError, TypeError, ValueError):
            return self.error(400, "MalformedXML", "the part list is not valid")
        with LOCK:
            stored = UPLOADS.get(upload_id)
            if stored is None:
                problem = (404, "NoSuchUpload", "the upload does not exist")
            elif not listed:
                problem = (400, "MalformedXML", "no parts")
            elif [n for n, _ in listed] != sorted({n for n, _ in listed}):
                problem = (400, "InvalidPartOrder", "parts must ascend, once each")
            elif any(stored.get(n, ("", 0))[0].strip('"') != etag for n, etag in listed):
                problem = (400, "InvalidPart", "a part was not uploaded with that ETag")
            else:
                problem = None
                size = sum(stored[n][1] for n, _ in listed)
                del UPLOADS[upload_id]
        if problem:
            return self.error(*problem)
        etag = multipart_etag([etag for _, etag in listed])
        remember_object(path, etag, size)
        bucket, _, key = path.lstrip("/").partition("/")
        self.xml(200, f"<CompleteMultipartUploadResult><Bucket>{xml_text(bucket)}</Bucket>"
                      f"<Key>{xml_text(key)}</Key><ETag>{xml_text(etag)}</ETag>"
                      "</CompleteMultipartUploadResult>")

    def do_GET(self):
        if self.path == "/_stub/stats":
            with LOCK:
                body = json.dumps({"stats": dict(STATS), "open_uploads": len(UPLOADS),
                                   "objects": len(OBJECTS)}).encode()
            return self.answer(200, body, [("content-type", "application/json")])
        parsed = self.parse(presigned=False)
        if parsed is None:
            return
        _, query, _ = parsed
        if "uploadId" not in query:
            return self.error(400, "InvalidRequest", "only ListParts is served")
        self.count("ListParts")
        marker = int(query.get("part-number-marker") or 0)
        max_parts = int(query.get("max-parts") or 1000)
        with LOCK:
            stored = UPLOADS.get(query["uploadId"])
            parts = sorted((n, *p) for n, p in (stored or {}).items() if n > marker)
        if stored is None:
            return self.error(404, "NoSuchUpload", "the upload does not exist")
        page, truncated = parts[:max_parts], len(parts) > max_parts
        text = "".join(f"<Part><PartNumber>{n}</PartNumber><ETag>{xml_text(etag)}</ETag>"
                       f"<Size>{size}</Size></Part>" for n, etag, size in page)
        if truncated:
            text += f"<NextPartNumberMarker>{page[-1][0]}</NextPartNumberMarker>"
        self.xml(200, f"<ListPartsResult><UploadId>{query['uploadId']}</UploadId>"
                      f"<IsTruncated>{str(truncated).lower()}</IsTruncated>{text}"
                      "</ListPartsResult>")

    def do_HEAD(self):
        parsed = self.parse(presigned=False)
        if parsed is None:
            return
        self.count("HeadObject")
        with LOCK:
            found = OBJECTS.get(parsed[0])
        if found is None:
            return self.answer(404)
        etag, size = found
        # HEAD sends no body: the content-length is the object's, as S3 gives it.
        self.send_response(200)
        self.send_header("etag", etag)
        self.send_header("content-length", str(size))
        self.end_headers()

    def do_DELETE(self):
        parsed = self.parse(presigned=False)
        if parsed is None:
            return
        path, query, _ = parsed
        if "uploadId" in query:
            self.count("AbortMultipartUpload")
            with LOCK:
                found = UPLOADS.pop(query["uploadId"], None)
            if found is None:
                return self.error(404, "NoSuchUpload", "the upload does not exist")
        else:
            self.count("DeleteObject")
            with LOCK:
                OBJECTS.pop(path, None)
        self.answer(204)

    def do_PUT(self):
        parsed = self.parse(presigned=True)
        if parsed is None:
            return
        path, query, body = parsed
        etag = '"' + hashlib.md5(body).hexdigest() + '"'
        if "uploadId" in query:
            self.count("UploadPart")
            with LOCK:
                stored = UPLOADS.get(query["uploadId"])
                if stored is not None:
                    stored[int(query.get("partNumber") or 0)] = (etag, len(body))
            if stored is None:
                return self.error(404, "NoSuchUpload", "the upload does not exist")
        else:
            self.count("PutObject")
            remember_object(path, etag, len(body))
        self.answer(200, b"", [("etag", etag)])


class Server(ThreadingHTTPServer):
    daemon_threads = True
    # workerd opens a connection for each call it makes at the same time. With the default
    # listen backlog of 5, a burst of them overflows it, and each dropped connection
    # waits a second for its SYN to be sent again.
    request_queue_size = 1024


def main():
    port, access_key, secret_key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    Handler.credentials = (access_key, secret_key)
    server = Server(("127.0.0.1", port), Handler)
    print(f"s3stub listening on 127.0.0.1:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
