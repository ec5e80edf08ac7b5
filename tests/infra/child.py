"""A trivial supervised child for the supervisor tests: `python -m tests.infra.child NAME [flags]`.

Prints one line when it starts (name, pid, INSTANCE_ID) and one when SIGTERM stops it.
--crash exits at once with code 3; --ignore-term ignores SIGTERM (only SIGKILL ends it);
--grandchild starts one more such child in its own process group, as uvicorn starts its workers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys


def say(line: str) -> None:
    # One write per line: siblings share the supervisor's stdout and must not interleave.
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main() -> None:
    name, flags = sys.argv[1], set(sys.argv[2:])

    def on_term(signum: int, _frame: object) -> None:
        say(f"child {name} stopping")
        sys.exit(0)

    # Before the first line: a test signals as soon as it has seen it, and a SIGTERM arriving
    # before the handler would end the child silently.
    signal.signal(signal.SIGTERM, signal.SIG_IGN if "--ignore-term" in flags else on_term)
    say(f"child {name} pid={os.getpid()} instance={os.environ.get('INSTANCE_ID', '')}")
    if "--crash" in flags:
        sys.exit(3)
    if "--grandchild" in flags:
        subprocess.Popen([sys.executable, "-m", "tests.infra.child", f"{name}-grandchild", "--ignore-term"])
    while True:
        signal.pause()


if __name__ == "__main__":
    main()
