"""A minimal S3 receiver on the standard library, the benchmark's "just write to disk" baseline.

It does what boto3's upload_file needs and nothing else: no authentication, no hashing, no
checks. PUT writes the body to a file; multipart parts are files; complete concatenates them
with copy_file_range (as our server does). Run: python bench/stdlib_s3.py PORT DIR
"""

from __future__ import annotations

import os
import sys
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

CHUNK = 1024 * 1024


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    root: Path

    def log_message(self, *args: object) -> None:
        pass

    def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _target(self) -> tuple[Path, dict[str, list[str]]]:
        parts = urlsplit(self.path)
        return self.root / parts.path.lstrip("/").replace("/", "__"), parse_qs(parts.query, keep_blank_values=True)

    def _save(self, path: Path) -> None:
        remaining = int(self.headers["Content-Length"])
        if self.headers.get("Expect", "").lower() == "100-continue":
            self.send_response_only(100)
            self.end_headers()
        with path.open("wb") as out:
            while remaining:
                block = self.rfile.read(min(CHUNK, remaining))
                out.write(block)
                remaining -= len(block)

    def do_PUT(self) -> None:
        path, query = self._target()
        if "uploadId" in query:
            path = path.with_name(f"{path.name}.{query['uploadId'][0]}.{int(query['partNumber'][0]):05d}")
        self._save(path)
        self._reply(200, headers={"ETag": f'"{uuid.uuid4().hex}"'})

    def do_POST(self) -> None:
        path, query = self._target()
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        if "uploads" in query:
            body = f"<InitiateMultipartUploadResult><UploadId>{uuid.uuid4().hex}</UploadId></InitiateMultipartUploadResult>"
            self._reply(200, body.encode(), {"Content-Type": "application/xml"})
            return
        upload_id = query["uploadId"][0]
        parts = sorted(self.root.glob(f"{path.name}.{upload_id}.*"))
        with path.open("wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    size = os.fstat(src.fileno()).st_size
                    while size:
                        size -= os.copy_file_range(src.fileno(), out.fileno(), size)
                part.unlink()
        body = b'<CompleteMultipartUploadResult><ETag>"x-1"</ETag></CompleteMultipartUploadResult>'
        self._reply(200, body, {"Content-Type": "application/xml"})


def main() -> None:
    port, folder = int(sys.argv[1]), Path(sys.argv[2])
    folder.mkdir(parents=True, exist_ok=True)
    Handler.root = folder
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main()
