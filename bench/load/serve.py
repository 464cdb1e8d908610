#!/usr/bin/env python3
"""Start a server and time it from exec to its first 200 on a URL.

    serve.py URL READY_FILE PID_FILE LOG_FILE -- COMMAND [ARG...]

Runs COMMAND (output to LOG_FILE), writes its pid to PID_FILE, and polls
URL (a loopback http:// URL) every 2 ms with a new connection until it
answers 200. Then writes to READY_FILE the milliseconds from just before the
exec to that answer, or `exited` / `timeout` (60 s). Stays the server's
parent until it ends, passing SIGTERM and SIGINT on, and exits with its
status; so the caller stops the server by stopping this process.
"""

import http.client
import os
import signal
import subprocess
import sys
import time
import urllib.parse

POLL_S = 0.002
GIVE_UP_S = 60.0


def write_atomically(path, text):
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text + "\n")
    os.replace(tmp, path)


def status_of(host, port, path):
    conn = http.client.HTTPConnection(host, port, timeout=2)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


def main():
    args = sys.argv[1:]
    if len(args) < 6 or args[4] != "--":
        sys.exit(__doc__)
    url, ready_file, pid_file, log_file = args[:4]
    command = args[5:]
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or parts.hostname not in ("127.0.0.1", "::1", "localhost"):
        sys.exit(f"serve.py: {url}: only http:// on loopback")
    path = parts.path or "/"

    with open(log_file, "ab") as log:
        began = time.monotonic()
        child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    write_atomically(pid_file, str(child.pid))

    def forward(signum, _frame):
        if child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)

    outcome = "timeout"
    while time.monotonic() - began < GIVE_UP_S:
        if child.poll() is not None:
            outcome = "exited"
            break
        try:
            if status_of(parts.hostname, parts.port, path) == 200:
                outcome = f"{(time.monotonic() - began) * 1000:.1f}"
                break
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(POLL_S)
    write_atomically(ready_file, outcome)
    if outcome == "timeout":
        forward(signal.SIGTERM, None)
    code = child.wait()
    sys.exit(128 - code if code < 0 else code)


if __name__ == "__main__":
    main()
