"""Build storage/native/libmd5lanes.so (storage/md5.py) with the machine's C compiler.

Run by `make` before the server or the tests. Without a compiler the server still works:
storage/md5.py falls back to hashlib's MD5 (more CPU per uploaded byte), and this script says
so and exits 0, unless `--require` (which `make` passes under CI=true, where the tests must run
on the kernel) makes that an error.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "md5lanes.c"
LIBRARY = HERE / "libmd5lanes.so"


def main() -> int:
    require = "--require" in sys.argv[1:]
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None:
        compiler = "cc"
    command = [compiler, "-O3", "-shared", "-fPIC", "-Wall", "-Wextra", "-o", str(LIBRARY), str(SOURCE)]
    if require:
        command.insert(-3, "-Werror")  # CI's compiler is known; another's warnings are not errors
    try:
        subprocess.run(command, check=True)
    except (OSError, subprocess.CalledProcessError) as error:
        print(f"warning: {LIBRARY.name} not built ({error}); uploads hash MD5 with hashlib", file=sys.stderr)
        return 1 if require else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
