"""Hook handlers (hook.*) arrive with the hooks issue."""
