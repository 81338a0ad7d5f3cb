"""Say clearly when PostgreSQL or Redis is not reachable, and how to start it."""

import shutil
import socket
import sys
from urllib.parse import urlparse

HOW = {
    "PostgreSQL": "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    "Redis": 'redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no',
}


def reachable(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or default_port), timeout=2):
            return True
    except OSError:
        return False


def main() -> int:
    database_url, redis_url = sys.argv[1], sys.argv[2]
    missing = [
        name for name, url, port in (("PostgreSQL", database_url, 5432), ("Redis", redis_url, 6379))
        if not reachable(url, port)
    ]
    for name in missing:
        print(f"{name} is not reachable. Start it with:\n    {HOW[name]}\n(or run `bash .ci/run`, which starts both)",
              file=sys.stderr)
    if not (shutil.which("chromium") or shutil.which("chromium-browser")):
        # Not fatal here: the export tests fail with the same hint, so the rest still runs.
        print("chromium is not installed; the export archive tests need it. Install it with:\n"
              "    apt-get update && apt-get install -y chromium\n(or run `bash .ci/run`, which installs it)",
              file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
