"""The example trainer (the `local` provider's default command) logs its last line before it
reports "completed": a reader who fetches the logs on seeing that status gets the whole run.
CI once read the logs between the two (tests/providers/test_local_flow_live.py)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

# Run with -I, as providers.local does (providers/selectors.py would shadow the stdlib module).
TRAINER = Path(__file__).resolve().parents[2] / "providers" / "example_trainer.py"


def test_the_last_log_line_is_written_before_the_completed_status_is_sent(tmp_path: Path) -> None:
    log_file = tmp_path / "job.log"
    seen: dict[str, str] = {}

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            event = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if event.get("data", {}).get("status") == "completed":
                seen["log_at_completed"] = log_file.read_text()  # the trainer waits for our answer
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"max_train_steps": 2, "step_seconds": 0, "checkpoint_size_mb": 0}))
    env = {
        **os.environ,
        "SIMPLETUNER_JOB_ID": "job-order",
        "SIMPLETUNER_JOB_DIR": str(tmp_path),
        "SIMPLETUNER_JOB_CONFIG": str(config),
        "SIMPLETUNER_WEBHOOK_URL": f"http://127.0.0.1:{server.server_port}/hook",
        "SIMPLETUNER_WEBHOOK_SECRET": "whsec_" + base64.b64encode(b"k" * 32).decode(),
    }
    for name in ("SIMPLETUNER_S3_BUCKET", "AWS_ENDPOINT_URL_S3", "SIMPLETUNER_S3_ENDPOINT", "AWS_ACCESS_KEY_ID"):
        env.pop(name, None)
    try:
        with log_file.open("w") as out:
            done = subprocess.run(
                [sys.executable, "-I", str(TRAINER)], env=env, stdout=out, stderr=subprocess.STDOUT, timeout=60
            )
    finally:
        server.shutdown()
        server.server_close()
    assert done.returncode == 0, log_file.read_text()
    assert "log_at_completed" in seen, "the trainer never reported completed"
    assert "step 2/2" in seen["log_at_completed"]
    assert "training complete" in seen["log_at_completed"]
