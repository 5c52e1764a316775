"""A paginated JSON API over a Parquet file, for the HTTP benchmark (runs in its own process)."""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

PAGE = 10_000


def main() -> None:
    import pyarrow.parquet as pq

    path, port = sys.argv[1], int(sys.argv[2])
    table = pq.read_table(path)
    pages = []
    for offset in range(0, table.num_rows, PAGE):
        records = table.slice(offset, PAGE).to_pylist()
        nxt = offset + PAGE if offset + PAGE < table.num_rows else None
        pages.append(json.dumps({"data": records, "next": nxt}, default=str).encode())

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            cursor = int(parse_qs(urlparse(self.path).query).get("cursor", ["0"])[0])
            body = pages[cursor // PAGE]
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main()
