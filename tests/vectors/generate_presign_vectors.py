#!/usr/bin/env python3
"""Writes reference presigned URLs made by AWS's own signer (botocore) at a fixed clock.

The native tests of src/presign sign the same cases and compare the signature, the path
and the set of query parameters with what this script wrote. Nobody on this project wrote
botocore, so a match means our URLs are the ones AWS's SDKs would make.

Run it again after changing the cases:

    pip install 'botocore==1.44.8'
    python3 tests/vectors/generate_presign_vectors.py

It writes tests/vectors/presign/botocore-cases.json.
"""

import datetime
import json
import pathlib
from unittest import mock

import botocore
import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.utils import percent_encode

TIME = datetime.datetime(2026, 1, 15, 12, 34, 56)
ACCESS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SESSION_TOKEN = "FwoGZXIvYXdzEBYaDH+session/token==with+plus&amp;and=equals"

S3_ORIGIN = "https://examplebucket.s3.us-east-1.amazonaws.com"
R2_ORIGIN = "https://0123456789abcdef0123456789abcdef.r2.cloudflarestorage.com"
PNG = [("content-type", "image/png")]


def case(name, key, method="PUT", origin=S3_ORIGIN, path_prefix="", region="us-east-1",
         headers=(), query=(), expires=900, token=None):
    return dict(name=name, key=key, method=method, origin=origin, pathPrefix=path_prefix,
                region=region, headers=list(headers), query=list(query), expiresIn=expires,
                sessionToken=token)


def r2(name, key, **kw):
    return case(name, key, origin=R2_ORIGIN, path_prefix="/uploads", region="auto", **kw)


SHA = "n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg="
CASES = [
    case("put-plain", "photo.png"),
    case("put-content-type", "photo.png", headers=PNG),
    case("put-content-type-and-length", "photo.png",
         headers=PNG + [("content-length", "123456")]),
    case("put-checksum", "photo.png", headers=PNG + [
        ("content-length", "5"), ("x-amz-checksum-sha256", SHA)]),
    case("put-if-none-match-and-metadata", "users/alice/a.png", headers=PNG + [
        ("content-length", "42"), ("if-none-match", "*"),
        ("x-amz-meta-uploader", "edge-presigner"), ("x-amz-meta-caption", "a b  c")]),
    case("put-content-type-with-parameters", "notes.txt",
         headers=[("content-type", "text/plain; charset=utf-8")]),
    case("upload-part", "big/video.mp4", query=[("partNumber", "7"), ("uploadId", "2~abc+def/ghi=")],
         headers=[("content-length", "8388608")]),
    case("upload-part-10000", "big/video.mp4",
         query=[("partNumber", "10000"), ("uploadId", "VXBsb2FkIElE")]),
    case("get-plain", "report.pdf", method="GET"),
    case("get-response-disposition", "report.pdf", method="GET", query=[
        ("response-content-disposition",
         "attachment; filename=\"report.pdf\"; filename*=UTF-8''r%C3%A9port.pdf")]),
    case("get-response-type-and-cache", "report.pdf", method="GET", query=[
        ("response-content-type", "application/pdf"),
        ("response-cache-control", "no-store")]),
    case("query-order-select-before-select-type", "data.csv", method="POST",
         query=[("select-type", "2"), ("select", "")]),
    case("key-space", "my file.txt", headers=PNG),
    case("key-plus", "a+b.txt"),
    case("key-space-and-plus", "a b+c.txt"),
    case("key-percent", "100%.txt"),
    case("key-literal-percent-20", "a%20b.txt"),
    case("key-encoded-slash", "a%2Fb.txt"),
    case("key-tilde", "~user/file.txt"),
    case("key-sub-delims", "it's (1)!*.txt"),
    case("key-equals", "a=b.txt"),
    case("key-ampersand", "a&b.txt"),
    case("key-question-mark", "what?.txt"),
    case("key-hash", "issue#12.txt"),
    case("key-nfc", "caf\u00e9.txt"),
    case("key-nfd", "cafe\u0301.txt"),
    case("key-emoji", "party \U0001F389/\U0001F600.png"),
    case("key-cjk", "\u6587\u4ef6/\u5199\u771f.jpg"),
    case("key-dot-segments", "a/../b/./c"),
    case("key-double-slash", "a//b"),
    case("key-trailing-slash", "folder/"),
    case("key-every-ascii-symbol", "sym/ !\"#$%&'()*+,-.:;<=>?@[\\]^_`{|}~.bin"),
    case("key-long-1024-bytes", "k/" + "x" * 1022),
    case("key-long-multibyte", "k/" + "\u00e9" * 400),
    case("region-eu-central-1", "photo.png", origin="https://examplebucket.s3.eu-central-1.amazonaws.com",
         region="eu-central-1", headers=PNG),
    case("region-ap-southeast-2", "photo.png",
         origin="https://examplebucket.s3.ap-southeast-2.amazonaws.com", region="ap-southeast-2"),
    case("dotted-bucket-path-style", "photo.png", origin="https://s3.us-west-2.amazonaws.com",
         path_prefix="/my.dotted.bucket", region="us-west-2", headers=PNG),
    r2("r2-put", "users/alice/photo.png", headers=PNG + [("content-length", "1048576")]),
    r2("r2-upload-part", "users/alice/big.bin", query=[("partNumber", "3"), ("uploadId", "abc")],
       headers=[("content-length", "5242880")]),
    r2("r2-get-disposition", "users/alice/r\u00e9sum\u00e9.pdf", method="GET",
       query=[("response-content-disposition", "inline")]),
    case("custom-endpoint-with-port", "photo.png", origin="http://localhost:9000",
         path_prefix="/uploads", region="us-east-1", headers=PNG),
    case("custom-endpoint-ip-port", "a b.txt", origin="http://127.0.0.1:8333",
         path_prefix="/test-bucket", region="us-east-1"),
    case("custom-endpoint-path-prefix", "x.txt", origin="http://127.0.0.1:8787",
         path_prefix="/cdn-cgi/local/r2/s3/dev", region="auto", headers=PNG),
    case("session-token", "photo.png", headers=PNG, token=SESSION_TOKEN),
    r2("session-token-r2", "photo.png", token=SESSION_TOKEN),
    case("expires-one-second", "photo.png", expires=1),
    case("expires-seven-days", "photo.png", expires=604800),
]


def sign(c):
    path = c["pathPrefix"] + "/" + percent_encode(c["key"], safe="/~")
    query = "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in c["query"])
    url = c["origin"] + path + ("?" + query if query else "")
    request = AWSRequest(method=c["method"], url=url, headers=dict(c["headers"]))
    credentials = Credentials(ACCESS_KEY_ID, SECRET_ACCESS_KEY, c["sessionToken"])
    signer = botocore.auth.S3SigV4QueryAuth(credentials, "s3", c["region"], c["expiresIn"])
    seen = {}
    canonical_request_of = signer.canonical_request

    def record_canonical_request(req):
        seen["canonicalRequest"] = canonical_request_of(req)
        return seen["canonicalRequest"]

    signer.canonical_request = record_canonical_request
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=TIME):
        signer.add_auth(request)
    signature = request.url.rsplit("X-Amz-Signature=", 1)[1]
    return dict(c, url=request.url, canonicalRequest=seen["canonicalRequest"], signature=signature)


def main():
    out = {
        "generator": f"botocore {botocore.__version__}, S3SigV4QueryAuth",
        "time": TIME.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "accessKeyId": ACCESS_KEY_ID,
        "secretAccessKey": SECRET_ACCESS_KEY,
        "cases": [sign(c) for c in CASES],
    }
    target = pathlib.Path(__file__).parent / "presign" / "botocore-cases.json"
    target.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {len(CASES)} cases to {target}")


if __name__ == "__main__":
    main()
