"""ClaudeBench: a Redis-first coordination server for Claude Code agents."""

__version__ = "0.1.0"
