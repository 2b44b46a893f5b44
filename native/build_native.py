"""cffi (API mode) build of lispd._native from native/*.c.

The cdef is the public header itself, less its preprocessor lines, so the C
surface is declared exactly once.
"""

from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
HEADER = HERE / "lispd_native.h"
SOURCES = sorted(path.name for path in HERE.glob("*.c"))

ffibuilder = FFI()
ffibuilder.cdef(
    "\n".join(
        line for line in HEADER.read_text().splitlines() if not line.lstrip().startswith("#")
    )
)
ffibuilder.set_source(
    "lispd._native",
    '#include "lispd_native.h"',
    # Paths relative to the repository root, where setup.py runs.
    sources=[f"native/{name}" for name in SOURCES],
    include_dirs=["native"],
    # Rebuild when a header changes, not only a .c file.
    depends=[f"native/{path.name}" for path in sorted(HERE.glob("*.h"))],
    extra_compile_args=["-O2", "-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-Werror"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
