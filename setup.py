"""Only what pyproject.toml cannot say: build the package into an empty folder.

setuptools copies modules into ``build/lib`` and packs whatever it finds there, so a module renamed
or removed since an earlier build in the same checkout (or the old top-level ``simulator`` and
``models`` packages) would otherwise reach the wheel and site-packages.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class CleanBuildPy(build_py):
    def run(self):
        for name in ("stragglersim", "simulator", "models"):
            shutil.rmtree(Path(self.build_lib) / name, ignore_errors=True)
        super().run()


setup(cmdclass={"build_py": CleanBuildPy})
