"""System handlers (SPEC §5.3.3): cluster membership and coordination, then the operator tools."""

from instances.handlers import cluster, diagnostics  # noqa: F401  (importing registers the handlers)
