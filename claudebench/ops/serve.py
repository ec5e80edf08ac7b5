"""`python -m claudebench.ops.serve <uvicorn arguments>`: uvicorn whose SIGTERM/SIGINT exit is 0.

uvicorn finishes a graceful shutdown (in-flight requests answered, the lifespan shutdown run)
and then raises the signal it caught again with the handler that was installed before it
started; with the default handler a clean stop reads as "killed by SIGTERM" (-15). Installing a
handler that exits 0 first makes a clean stop look clean to supervisors and orchestrators.
"""

from __future__ import annotations

import signal
import sys


def _exit_clean(signum, _frame) -> None:
    raise SystemExit(0)


def main() -> None:
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _exit_clean)
    from uvicorn.main import main as uvicorn_main

    sys.argv[0] = "uvicorn"
    uvicorn_main()


if __name__ == "__main__":
    main()
