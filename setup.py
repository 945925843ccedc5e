"""The wheel also carries the course notebooks, so that `cnclip-edu course / student / grade` work after
`pip install 'cnclip-edu[course]'` without a clone. The repository keeps them at the top-level
`notebooks/` (where the course's users open them); the build copies them into `cnclip_edu/notebooks/`.
Everything else is configured in pyproject.toml."""
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class BuildWithNotebooks(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:  # an editable install reads the checkout's notebooks/ directly
            return
        target = Path(self.build_lib) / "cnclip_edu" / "notebooks"
        target.mkdir(parents=True, exist_ok=True)
        for nb in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
            self.copy_file(str(nb), str(target / nb.name))


setup(cmdclass={"build_py": BuildWithNotebooks})
