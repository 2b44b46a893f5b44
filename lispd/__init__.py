"""lispd: a userspace LISP/VXLAN overlay daemon."""

__version__ = "0.1.0"
