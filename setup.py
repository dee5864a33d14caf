"""Build hook: the wheel carries the top-level `sweeps/` (Hydra configs) and `data/` (published data).

Both folders stay at the top of the clone, where users read and edit them; the wheel holds copies under
`scaling/_shipped/`, where `scaling.resources` finds them in an install without a clone. Everything else
about the package is declared in pyproject.toml.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

# Folder -> the files of it that ship (MANIFEST.in lists the same for the sdist).
SHIPPED = {"sweeps": ("**/*.yaml",), "data": ("**/*.csv", "**/*.md")}


class BuildPyWithShipped(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:  # an editable install reads the clone's own folders
            return
        shipped = Path(self.build_lib, "scaling", "_shipped")
        shutil.rmtree(shipped, ignore_errors=True)  # a file deleted from the clone must not linger in build/
        for folder, patterns in SHIPPED.items():
            for pattern in patterns:
                for source in sorted(Path(folder).glob(pattern)):
                    target = shipped / source
                    self.mkpath(str(target.parent))
                    self.copy_file(str(source), str(target))


setup(cmdclass={"build_py": BuildPyWithShipped})
