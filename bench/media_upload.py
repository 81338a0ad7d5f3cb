"""Upload throughput: one plain multipart POST /attachments against the resumable (tus) path.

Run by bench/run.py (`--only media_upload`) against a uvicorn process it started; the
client is httpx in this process. Each case uploads the same random file (kind `file`,
so no probing: the figure is the transfer path) and times the request(s) until the
attachment exists; the median of `runs` is reported in MiB/s.
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

import httpx

TUS = {"Tus-Resumable": "1.0.0"}
MIB = 1024 * 1024


def sign_in(base: str, phone: str) -> str:
    with httpx.Client(base_url=base, timeout=30) as http:
        http.post("/api/v1/auth/otp/request", json={"phone": phone}).raise_for_status()
        verified = http.post("/api/v1/auth/otp/verify", json={
            "phone": phone, "code": "000000", "device": {"name": "bench", "platform": "web"}})
        verified.raise_for_status()
        return verified.json()["token"]


def plain_post(http: httpx.Client, data: bytes) -> str:
    response = http.post("/api/v1/attachments", files={"file": ("bench.bin", data)}, data={"kind": "file"})
    response.raise_for_status()
    return response.json()["id"]


def resumable(http: httpx.Client, data: bytes, chunk: int | None) -> str:
    created = http.post("/api/v1/uploads", headers={**TUS, "Upload-Length": str(len(data)),
                                                    "Upload-Metadata": "kind ZmlsZQ=="})
    created.raise_for_status()
    url = created.headers["Location"]
    step = chunk or len(data)
    attachment = ""
    for start in range(0, len(data), step):
        response = http.patch(url, content=data[start:start + step], headers={
            **TUS, "Upload-Offset": str(start), "Content-Type": "application/offset+octet-stream"})
        if response.status_code != 204:
            raise RuntimeError(f"PATCH at {start}: {response.status_code} {response.text[:300]}")
        attachment = response.headers.get("Attachment-Id", "")
    if not attachment:
        raise RuntimeError("the last PATCH named no attachment")
    return attachment


def measure(base: str, *, mib: int, runs: int, phone: str) -> dict[str, Any]:
    token = sign_in(base, phone)
    data = os.urandom(mib * MIB)
    cases = {
        "plain_post": lambda http: plain_post(http, data),
        "tus_one_patch": lambda http: resumable(http, data, None),
        "tus_8mib_patches": lambda http: resumable(http, data, 8 * MIB),
    }
    results: dict[str, Any] = {"mib": mib, "runs": runs}
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=300) as http:
        for name, case in cases.items():
            case(http)  # warm-up
            seconds = []
            for _ in range(runs):
                started = time.perf_counter()
                case(http)
                seconds.append(time.perf_counter() - started)
            median = statistics.median(seconds)
            results[name] = {"seconds": seconds, "mib_per_s": mib / median}
    results["tus_vs_plain"] = results["tus_one_patch"]["mib_per_s"] / results["plain_post"]["mib_per_s"]
    return results
