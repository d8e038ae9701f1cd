#!/usr/bin/env python3
"""Puts the Zarr fixture stores into the Azure Blob emulator (Azurite) for the cloud store
tests: creates a container (public: anonymous reads and listings allowed; or private) and
uploads every `*.zarr` directory of a folder into it, with requests signed by the
emulator's documented development account (SharedKey). Standard library only.

    test-emulators.py azure-upload ENDPOINT CONTAINER DIR [--public]

ENDPOINT is the account URL, path style: http://127.0.0.1:PORT/devstoreaccount1.
"""
import base64
import hashlib
import hmac
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from email.utils import formatdate

# Azurite's well-known development account (published in its documentation; not a secret)
ACCOUNT = "devstoreaccount1"
KEY = base64.b64decode(
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def request(endpoint, method, path, query="", body=b"", headers=None):
    """One SharedKey-signed request to `endpoint/path?query`; returns the HTTP status."""
    url = f"{endpoint}/{urllib.parse.quote(path)}" + (f"?{query}" if query else "")
    h = {"x-ms-date": formatdate(usegmt=True), "x-ms-version": "2021-08-06"}
    if method == "PUT":
        # signed, so urllib must not add its own form content type
        h["Content-Type"] = "application/octet-stream"
    h.update(headers or {})
    ms = sorted((k.lower(), v) for k, v in h.items() if k.lower().startswith("x-ms-"))
    resource = urllib.parse.urlsplit(url).path
    canon = f"/{ACCOUNT}{resource}"
    for k, v in sorted(urllib.parse.parse_qsl(query)):
        canon += f"\n{k.lower()}:{v}"
    to_sign = "\n".join(
        [method, "", "", str(len(body)) if body else "", "", h.get("Content-Type", ""),
         "", "", "", "", "", ""]
    ) + "\n" + "".join(f"{k}:{v}\n" for k, v in ms) + canon
    sig = base64.b64encode(hmac.new(KEY, to_sign.encode(), hashlib.sha256).digest()).decode()
    h["Authorization"] = f"SharedKey {ACCOUNT}:{sig}"
    req = urllib.request.Request(url, data=body if method == "PUT" else None, method=method,
                                 headers=h)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def azure_upload(endpoint, container, folder, public):
    headers = {"x-ms-blob-public-access": "container"} if public else {}
    status = request(endpoint, "PUT", container, "restype=container", headers=headers)
    if status not in (201, 409):  # 409: it exists already
        sys.exit(f"creating container {container} at {endpoint}: HTTP {status}")
    n = 0
    for store in sorted(os.listdir(folder)):
        top = os.path.join(folder, store)
        if not (store.endswith(".zarr") and os.path.isdir(top)):
            continue
        for d, _, files in os.walk(top):
            for f in files:
                path = os.path.join(d, f)
                key = os.path.relpath(path, folder).replace(os.sep, "/")
                with open(path, "rb") as fh:
                    body = fh.read()
                status = request(endpoint, "PUT", f"{container}/{key}", body=body,
                                 headers={"x-ms-blob-type": "BlockBlob"})
                if status != 201:
                    sys.exit(f"PUT {endpoint}/{container}/{key}: HTTP {status}")
                n += 1
    kind = "public" if public else "private"
    print(f"test-emulators: uploaded {n} blobs to {kind} container {endpoint}/{container}",
          file=sys.stderr)


def main(argv):
    if len(argv) >= 4 and argv[0] == "azure-upload":
        azure_upload(argv[1].rstrip("/"), argv[2], argv[3], "--public" in argv[4:])
        return
    sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
