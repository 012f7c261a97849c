"""`make serve`: the ops page on loopback, sending to a local emulator.

Starts `bulk-sync emulator` (a little latency and a few faults, so that retries and
throttling show), then `bulk-sync serve` against it with a throwaway API key, prints the
URL to open and waits; Ctrl-C stops both. Nothing leaves this machine. Uploads, runs and
reports are kept in out/serve-data/ (delete it to start afresh).
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from demo import ROOT, start_emulator

OUT = ROOT / "out"


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    signal.signal(signal.SIGTERM, _interrupt)  # stopped by a supervisor: clean up the same way
    data_dir = OUT / "serve-data"
    data_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(32)  # a throwaway key for the local emulator only
    emulator, api_url = start_emulator(token, OUT / "serve-emulator-state.json")
    config = OUT / "serve-config.yaml"
    config.write_text(f"base_url: {api_url}\nconcurrency: 4\n", encoding="utf-8")
    env = dict(os.environ, IC_API_TOKEN=token, BULK_SYNC_WEB_SAMPLES=str(ROOT / "samples"))
    env.pop("BULK_SYNC_WEB_PASSWORD", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "bulk_sync", "serve", "--host", "127.0.0.1", "--port",
         os.environ.get("PORT", "8765"), "--config", str(config), "--data-dir", str(data_dir)],
        env=env, cwd=ROOT,
    )  # fmt: skip
    print(
        "\nThe page sends to a local emulator (a stand-in for the API), never to the real one.\n"
        f"Sample files to upload: {ROOT / 'samples'} (customers.csv, customers.xlsx) and\n"
        f"{ROOT / 'samples' / 'other-headers'} (a file whose columns you map in the page).\n"
        "Ctrl-C stops the page and the emulator.\n",
        flush=True,
    )
    try:
        return server.wait()
    except KeyboardInterrupt:
        server.send_signal(signal.SIGTERM)  # a run in progress stops and writes its report
        server.wait(timeout=60)
        return 0
    finally:
        emulator.send_signal(signal.SIGTERM)
        try:
            emulator.wait(timeout=10)
        except subprocess.TimeoutExpired:
            emulator.kill()


if __name__ == "__main__":
    sys.exit(main())
