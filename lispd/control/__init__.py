"""LISP control plane: sans-IO protocol machines (RFC 9301)."""
