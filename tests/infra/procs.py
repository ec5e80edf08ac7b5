"""Process tables for `manage.py up --processes tests.infra.procs.<NAME>` in the supervisor tests."""

from claudebench.management.commands.up import Child

PAIR = (
    Child("alpha", "-m tests.infra.child alpha"),
    Child("beta", "-m tests.infra.child beta"),
)
CRASHER = (Child("crasher", "-m tests.infra.child crasher --crash"),)
PARENT = (Child("parent", "-m tests.infra.child parent --grandchild"),)
STUBBORN = (Child("stubborn", "-m tests.infra.child stubborn --ignore-term"),)
# A stand-in web process: the ready line waits until HOST:PORT accepts connections.
WEB = (Child("web", "-m http.server {PORT} --bind {HOST}"),)
