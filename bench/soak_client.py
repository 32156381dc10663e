"""The soak test's clients: many keep-alive connections in one asyncio loop per process.

Each client holds one HTTP/1.1 connection to the Worker and, until the deadline, runs one
flow after another, picked at random by the weights in FLOWS:

- `single`: `POST /v1/uploads` below the multipart threshold, in two profiles, with
  sizes from 1 byte to 99 MiB, some with metadata, a checksum or an expiry. Now and then
  a small one is uploaded to the S3 stub with the presigned URL, which checks the
  signature; and now and then with another content type, which the stub must refuse.
- `small_multipart`: a one-part multipart upload of a few KiB, taken to the end: create
  (the Worker calls CreateMultipartUpload), sign part 1, PUT it to the stub, list the
  parts, complete (the stub checks the ETag), sometimes complete again (the Worker
  finds the object with HeadObject and gives the same answer) and ask for a download URL.
- `large_multipart`: a planned upload of 100 MiB to 80 GiB (up to 10,000 parts): one to
  four batches of part URLs of 1 to 10,000 parts, the small last part PUT to the stub,
  list, abort, and sometimes a part batch after the abort (409).
- `bad_etag`: a three-part upload completed with ETags the store never gave (400), then
  aborted.
- `bad_request`: one request the Worker must refuse, with the exact 4xx expected.

Every answer from the Worker is checked against the status its request should get;
anything else counts as unexpected. The numbers go to the parent process once per
interval through a queue; see soak.py.
"""

import asyncio
import base64
import hashlib
import hmac
import json
import random
import time
from array import array
from collections import Counter
from urllib.parse import quote, urlsplit

KIB = 1024
MIB = 1024 * KIB

# Relative weights of the flows a client picks from.
FLOWS = {"single": 70, "small_multipart": 8, "large_multipart": 8, "bad_etag": 2,
         "bad_request": 6}
# The share of single uploads that are small and sent to the store.
PUT_SHARE = 0.05
# The share of those sent with another content type, which the store must refuse.
TAMPER_SHARE = 0.2
# Part batch sizes (and weights): most small, a few of 10,000.
BATCHES = [(1, 30), (5, 25), (20, 20), (100, 15), (1000, 8), (10_000, 2)]

FILENAMES = ["photo.png", "holiday photo.png", "Übersicht 2026.pdf", "notes.txt",
             "clip.mp4", "données.zip", "写真.jpg", "voice memo.m4a", "scan (1).pdf"]
TYPES = {"default": ["image/png", "image/jpeg", "video/mp4", "audio/mp4", "text/plain",
                     "application/pdf", "application/zip", "application/octet-stream"],
         "soak-docs": ["application/pdf", "text/plain"]}
TYPES["bench-multipart"] = TYPES["default"]


# ---------------------------------------------------------------------------------------
# HTTP/1.1 over asyncio streams

class Closed(Exception):
    """The connection closed before a whole answer arrived."""


async def read_answer(reader):
    """Reads one answer: (status, headers by lowercase name, body)."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as e:
        raise Closed("closed before the status line") from e
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = bytearray()
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":
                    pass  # trailers
                return status, headers, bytes(body)
            body += await reader.readexactly(size)
            await reader.readexactly(2)
    length = int(headers.get("content-length") or 0)
    return status, headers, await reader.readexactly(length) if length else b""


def request_bytes(method, host, path, headers, body):
    lines = [f"{method} {path} HTTP/1.1", f"host: {host}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body or method in ("POST", "PUT"):
        lines.append(f"content-length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Connection:
    """One keep-alive connection, opened again after the server closes it."""

    def __init__(self, port):
        self.port = port
        self.streams = None

    async def send(self, method, path, headers, body=b""):
        reused = self.streams is not None
        try:
            return await self.exchange(method, path, headers, body)
        except (Closed, ConnectionResetError):
            if not reused:
                raise
        # The server closed an idle connection as the request went out: once more, anew.
        return await self.exchange(method, path, headers, body)

    async def exchange(self, method, path, headers, body):
        if self.streams is None:
            self.streams = await asyncio.open_connection("127.0.0.1", self.port)
        reader, writer = self.streams
        try:
            writer.write(request_bytes(method, f"127.0.0.1:{self.port}", path, headers, body))
            status, answer_headers, data = await read_answer(reader)
        except BaseException:
            self.close()
            raise
        if answer_headers.get("connection", "").lower() == "close":
            self.close()
        return status, data

    def close(self):
        if self.streams is not None:
            self.streams[1].close()
            self.streams = None


async def put_to_store(url, headers, body):
    """A presigned PUT on a connection of its own: (status, ETag)."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        target = f"{parts.path}?{parts.query}"
        sent = {**headers, "connection": "close"}
        sent.pop("content-length", None)  # written from the body
        writer.write(request_bytes("PUT", parts.netloc, target, sent, body))
        status, answer_headers, _ = await read_answer(reader)
        return status, answer_headers.get("etag", "")
    finally:
        writer.close()


# ---------------------------------------------------------------------------------------
# What one process counts, interval by interval

class Tally:
    """The numbers of one interval."""

    def __init__(self):
        self.statuses = Counter()  # (request kind, status or error name)
        self.latency = {}  # request kind -> array of milliseconds
        self.unexpected = Counter()  # (kind, expected, got)
        self.samples = []  # a few unexpected answers, to show in the report
        # Checks beside the statuses: presigned PUTs accepted or refused by the store,
        # tampered PUTs, answers whose content is wrong.
        self.checks = Counter()

    def record(self, kind, status, elapsed_ms, expected, body):
        self.statuses[(kind, status)] += 1
        self.latency.setdefault(kind, array("d")).append(elapsed_ms)
        if status != expected:
            self.unexpected[(kind, expected, status)] += 1
            if len(self.samples) < 5:
                self.samples.append({"kind": kind, "expected": expected, "got": status,
                                     "body": body[:300].decode("utf-8", "replace")})

    def malformed(self, flow, error):
        """A flow met an answer without a field it needs, or of the wrong type."""
        self.checks["malformed_answer"] += 1
        if len(self.samples) < 5:
            self.samples.append({"kind": flow, "expected": "a well-formed answer",
                                 "got": "malformed", "body": repr(error)[:300]})

    def message(self):
        return {"statuses": [[k, s, n] for (k, s), n in self.statuses.items()],
                "latency": {k: v.tobytes() for k, v in self.latency.items()},
                "unexpected": [[k, e, g, n] for (k, e, g), n in self.unexpected.items()],
                "samples": self.samples, "checks": dict(self.checks)}


class Unexpected(Exception):
    """A flow cannot go on after an unexpected answer."""


# ---------------------------------------------------------------------------------------
# Credentials

def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256_jwt(claims, secret):
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64url(json.dumps(claims).encode())
    signature = hmac.new(secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256)
    return f"{header}.{payload}.{b64url(signature.digest())}"


def jwt_for(config, subject, lifetime_s):
    now = int(time.time())
    claims = {"sub": subject, "iat": now, "exp": now + lifetime_s, **config["jwt_claims"]}
    return hs256_jwt(claims, config["jwt_secret"])


# ---------------------------------------------------------------------------------------
# The clients

class Client:
    def __init__(self, number, config, state):
        self.config = config
        self.state = state  # shared by the process's clients: the current Tally
        self.rng = random.Random(config["seed"] * 100_003 + number)
        self.connection = Connection(config["worker_port"])
        if number % 2:
            self.credential = jwt_for(config, f"soak-client-{number}",
                                      config["seconds"] + 3600)
        else:
            self.credential = config["api_key"]
        self.last_token = None

    # One request to the Worker, counted.
    async def call(self, kind, method, path, payload=None, expected=200, credential=None,
                   raw=None):
        headers = {}
        credential = self.credential if credential is None else credential
        if credential:
            headers["authorization"] = f"Bearer {credential}"
        body = b""
        if raw is not None or payload is not None:
            body = raw if raw is not None else json.dumps(payload).encode()
            headers["content-type"] = "application/json"
        started = time.perf_counter()
        try:
            status, data = await asyncio.wait_for(
                self.connection.send(method, path, headers, body), self.config["timeout_s"])
        except (OSError, Closed, asyncio.TimeoutError, ValueError) as e:
            status, data = type(e).__name__, b""
        elapsed_ms = (time.perf_counter() - started) * 1000
        self.state.tally.record(kind, status, elapsed_ms, expected, data)
        if status != expected:
            raise Unexpected(kind)
        return json.loads(data) if data else None

    # A presigned PUT to the store, counted apart from the Worker's numbers.
    async def put(self, url, headers, body, tamper=False):
        checks = self.state.tally.checks
        sent = dict(headers)
        if tamper:
            sent["content-type"] = "application/x-tampered"
        try:
            status, etag = await asyncio.wait_for(put_to_store(url, sent, body),
                                                  self.config["timeout_s"])
        except (OSError, Closed, asyncio.TimeoutError, ValueError) as e:
            checks["put_unreachable"] += 1
            raise Unexpected("the store could not be reached") from e
        if tamper:
            checks["tamper_refused" if status == 403 else "tamper_accepted"] += 1
            return None
        checks["put_accepted" if status == 200 else "put_refused"] += 1
        if status != 200:
            raise Unexpected("the store refused a presigned PUT")
        return etag

    async def run(self, deadline):
        flows, weights = zip(*FLOWS.items())
        while time.monotonic() < deadline:
            if not await self.run_flow(self.rng.choices(flows, weights)[0]):
                await asyncio.sleep(0.05)  # no tight loop when something is wrong
        self.connection.close()

    async def run_flow(self, flow):
        """Runs one flow; False when it stopped at an unexpected answer."""
        try:
            await getattr(self, flow)()
            return True
        except Unexpected:
            return False  # counted where it happened
        except (KeyError, IndexError, TypeError, ValueError) as e:
            self.state.tally.malformed(flow, e)
            return False

    # The flows

    async def single(self):
        profile = self.rng.choice(["default", "default", "soak-docs"])
        small = self.rng.random() < PUT_SHARE
        # Below each profile's multipart threshold.
        top = 10 * MIB - 1 if profile == "soak-docs" else 100 * MIB - 1
        size = self.rng.randint(1, 4 * KIB) if small else self.rng.randint(1, top)
        body = {"profile": profile, "filename": self.rng.choice(FILENAMES),
                "contentType": self.rng.choice(TYPES[profile]), "size": size}
        if self.rng.random() < 0.3:
            body["metadata"] = {"caption": "soak", "batch": str(self.rng.randint(1, 99))}
        if self.rng.random() < 0.2:
            body["expiresIn"] = self.rng.randint(60, 300)
        content = None
        if small:
            content = self.rng.randbytes(size)
            if self.rng.random() < 0.5:
                digest = hashlib.sha256(content).digest()
                body["checksumSha256"] = base64.b64encode(digest).decode()
        elif self.rng.random() < 0.2:
            body["checksumSha256"] = base64.b64encode(self.rng.randbytes(32)).decode()
        answer = await self.call("single", "POST", "/v1/uploads", body, 201)
        if answer["type"] != "single":
            raise ValueError(f"a single upload of {size} bytes answered {answer['type']}")
        if small:
            tamper = self.rng.random() < TAMPER_SHARE
            await self.put(answer["url"], answer["headers"], content, tamper)

    async def create(self, profile, size, kind, multipart=True):
        body = {"profile": profile, "filename": self.rng.choice(FILENAMES),
                "contentType": self.rng.choice(TYPES[profile]), "size": size}
        if multipart:
            body["multipart"] = True
        answer = await self.call(kind, "POST", "/v1/uploads", body, 201)
        self.last_token = answer["token"]
        return answer

    async def small_multipart(self):
        size = self.rng.randint(1, 4 * KIB)
        upload = await self.create("default", size, "multipart_create")
        token = upload["token"]
        try:
            parts = await self.call("parts_sign", "POST", "/v1/multipart/parts",
                                    {"token": token, "partNumbers": [1]})
            part = parts["parts"][0]
            etag = await self.put(part["url"], part["headers"], self.rng.randbytes(size))
            listed = await self.call("parts_list", "GET",
                                     "/v1/multipart/parts?token=" + quote(token, safe=""))
            if [p["etag"] for p in listed["parts"]] != [etag]:
                self.state.tally.checks["list_mismatch"] += 1
            done_body = {"token": token, "parts": [{"partNumber": 1, "etag": etag}]}
            done = await self.call("complete", "POST", "/v1/multipart/complete", done_body)
        except Unexpected:
            await self.abort(token)
            raise
        if self.rng.random() < 0.15:
            again = await self.call("complete_again", "POST", "/v1/multipart/complete",
                                    done_body)
            if again["etag"] != done["etag"]:
                self.state.tally.checks["complete_again_mismatch"] += 1
        if self.rng.random() < 0.3:
            await self.call("download", "POST", "/v1/downloads", {"key": done["key"]})

    async def large_multipart(self):
        profile = self.rng.choice(["default", "bench-multipart"])
        full_parts = self.rng.randint(13, 639 if profile == "default" else 9_999)
        size = full_parts * 8 * MIB + self.rng.randint(1, 4 * KIB)
        upload = await self.create(profile, size, "multipart_create",
                                   multipart=self.rng.random() < 0.5)
        token, count = upload["token"], upload["partCount"]
        try:
            for _ in range(self.rng.randint(1, 4)):
                sizes, weights = zip(*BATCHES)
                batch = min(self.rng.choices(sizes, weights)[0], count)
                first = self.rng.randint(1, count - batch + 1)
                await self.call(f"parts_sign_{batch_label(batch)}", "POST",
                                "/v1/multipart/parts",
                                {"token": token, "partNumbers": list(range(first, first + batch))})
            last = await self.call("parts_sign", "POST", "/v1/multipart/parts",
                                   {"token": token, "partNumbers": [count]})
            part = last["parts"][0]
            length = int(part["headers"]["content-length"])
            await self.put(part["url"], part["headers"], self.rng.randbytes(length))
            await self.call("parts_list", "GET",
                            "/v1/multipart/parts?token=" + quote(token, safe=""))
        finally:
            await self.abort(token)
        if self.rng.random() < 0.2:
            await self.call("parts_after_abort", "POST", "/v1/multipart/parts",
                            {"token": token, "partNumbers": [1]}, 409)

    async def abort(self, token):
        await self.call("abort", "POST", "/v1/multipart/abort", {"token": token}, 204)

    async def bad_etag(self):
        upload = await self.create("default", 2 * 8 * MIB + 100, "multipart_create")
        token = upload["token"]
        try:
            fake = [{"partNumber": n, "etag": hashlib.md5(self.rng.randbytes(8)).hexdigest()}
                    for n in range(1, upload["partCount"] + 1)]
            await self.call("complete_bad_etag", "POST", "/v1/multipart/complete",
                            {"token": token, "parts": fake}, 400)
        finally:
            await self.abort(token)

    async def bad_request(self):
        name, method, path, payload, expected, credential, raw = self.rng.choice(
            bad_requests(self))
        await self.call(f"bad_{name}", method, path, payload, expected, credential, raw)


def batch_label(batch):
    for limit in (1, 20, 100, 1000):
        if batch <= limit:
            return f"le{limit}"
    return "le10000"


def bad_requests(client):
    """(name, method, path, body, expected status, credential, raw body) of requests the
    Worker must refuse. An empty credential sends none; None sends the client's own."""
    good = {"filename": "a.png", "contentType": "image/png", "size": 1000}
    requests = [
        ("no_credential", "POST", "/v1/uploads", good, 401, "", None),
        ("wrong_key", "POST", "/v1/uploads", good, 401, "not-a-key", None),
        ("expired_jwt", "POST", "/v1/uploads", good, 401,
         jwt_for(client.config, "soak-expired", -600), None),
        ("unknown_profile", "POST", "/v1/uploads", {**good, "profile": "nope"}, 404, None,
         None),
        ("type_not_allowed", "POST", "/v1/uploads",
         {**good, "contentType": "application/x-msdownload"}, 415, None, None),
        ("too_large", "POST", "/v1/uploads", {**good, "size": 6 * 1024 * MIB}, 413, None,
         None),
        ("malformed_json", "POST", "/v1/uploads", None, 400, None, b'{"filename": '),
        ("bad_token", "POST", "/v1/multipart/parts",
         {"token": "not.a.token", "partNumbers": [1]}, 401, None, None),
        ("wrong_method", "GET", "/v1/uploads", None, 405, None, None),
        ("unknown_route", "GET", "/v1/nothing-here", None, 404, None, None),
    ]
    if client.last_token:
        requests.append(("part_outside_plan", "POST", "/v1/multipart/parts",
                         {"token": client.last_token, "partNumbers": [10_001]}, 400, None,
                         None))
        if client.credential != client.config["api_key"]:
            requests.append(("other_subjects_token", "POST", "/v1/multipart/parts",
                             {"token": client.last_token, "partNumbers": [1]}, 403,
                             client.config["api_key"], None))
    return requests


# ---------------------------------------------------------------------------------------
# One load-generating process

class State:
    def __init__(self):
        self.tally = Tally()


async def run_clients(config, first, count, queue):
    state = State()
    start, interval = config["start_at"], config["interval_s"]
    deadline = start + config["seconds"]
    clients = [Client(first + i, config, state) for i in range(count)]

    async def report():
        index = 0
        while True:
            await asyncio.sleep(max(0.0, start + (index + 1) * interval - time.monotonic()))
            finished, state.tally = state.tally, Tally()
            queue.put((config["process"], index, finished.message()))
            index += 1

    await asyncio.sleep(max(0.0, start - time.monotonic()))
    reporter = asyncio.create_task(report())
    await asyncio.gather(*(c.run(deadline) for c in clients))
    reporter.cancel()
    index = int((time.monotonic() - start) // interval)
    queue.put((config["process"], index, state.tally.message()))
    queue.put((config["process"], "done", None))


def generate(config, first, count, queue):
    """The entry of a load-generating process."""
    asyncio.run(run_clients(config, first, count, queue))


async def smoke(config):
    """Runs each flow once, one after the other, and returns the tally: the soak's check
    that everything answers as expected before it starts."""
    state = State()
    client = Client(1, config, state)  # an odd number: a JWT subject
    for flow in FLOWS:
        await client.run_flow(flow)
    for request in bad_requests(client):
        try:
            await client.call(f"bad_{request[0]}", *request[1:])
        except Unexpected:
            pass
    client.connection.close()
    return state.tally
