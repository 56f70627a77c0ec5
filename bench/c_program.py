"""The benches' load generators are small C programs compiled at bench time."""
import subprocess
from pathlib import Path


def compile_c(source: str, folder: Path, name: str) -> Path:
    """`source` written to folder/NAME.c and compiled with cc -O2 -Wall into folder/NAME, returned."""
    (folder / f"{name}.c").write_text(source)
    subprocess.run(["cc", "-O2", "-Wall", "-o", str(folder / name), str(folder / f"{name}.c")], check=True)
    return folder / name
