"""Serve a local reward model over the simple JSON API that `HttpRewardModel` speaks.

`python -m cascade.rewards.reward_model.server --checkpoint DIR [--host 127.0.0.1] [--port 8008]` loads a
checkpoint (`LocalRewardModel`) once and answers `POST /score` with
`{"conversations": [[{"role", "content"}, ...]]}` -> `{"scores": [float, ...]}`, so several
trainer ranks can share one reward model. `GET /health` answers `{"ok": true}`.
"""

from __future__ import annotations

import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cascade.rewards.reward_model.scorer import LocalRewardModel, RewardModelScorer


def make_server(scorer: RewardModelScorer, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """An HTTP server (not yet serving) for `scorer`; port 0 picks a free port."""
    lock = threading.Lock()  # one forward pass at a time: the model is not thread-safe

    class Handler(BaseHTTPRequestHandler):
        def _reply(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            self._reply(200 if self.path == "/health" else 404, {"ok": self.path == "/health"})

        def do_POST(self) -> None:  # noqa: N802
            if self.path.rstrip("/") != "/score":
                self._reply(404, {"error": f"unknown path {self.path}"})
                return
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                convs = body["conversations"]
                with lock:
                    scores = scorer.score(convs)
                self._reply(200, {"scores": scores})
            except Exception as e:  # report to the client instead of dropping the connection
                self._reply(400, {"error": f"{type(e).__name__}: {e}"})

        def log_message(self, *args: Any) -> None:
            pass

    return ThreadingHTTPServer((host, port), Handler)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8008)
    args = ap.parse_args(argv)
    server = make_server(LocalRewardModel(args.checkpoint), args.host, args.port)
    print(f"reward model {args.checkpoint} at http://{args.host}:{server.server_port}/score", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
