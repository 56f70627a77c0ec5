"""The wheel carries the shipped probe's CO-RE objects (sdxfer.kernel.objects):
built after build_py, from the package as it was copied into build/, so their
manifest's digest is that of the files installed beside them. An editable
install leaves them to scripts/setup.sh (python -m sdxfer.kernel.objects).
Building needs what `sdxfer build` needs: clang, bpftool, libbpf-dev, this
kernel's BTF and tracefs (root)."""
import os
import subprocess
import sys

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithObjects(build_py):
    def run(self):
        super().run()
        if self.editable_mode:
            return
        build_lib = os.path.abspath(self.build_lib)
        # run from build_lib, so `-m` imports the package just copied there; the
        # environment is left as it is (pip's build isolation holds the requirements)
        out = os.path.join(build_lib, "sdxfer", "objects")
        subprocess.run([sys.executable, "-m", "sdxfer.kernel.objects", "--out", out],
                       cwd=build_lib, check=True)


setup(cmdclass={"build_py": BuildWithObjects})
