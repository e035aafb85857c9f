"""Only what pyproject.toml cannot say: the top-level resources/ folder (sample lot, style sheet,
icons, sounds) is installed inside the package as ``station._resources``, so that a plain
``pip install .`` has it too. Source checkouts and the frozen bundle use resources/ directly."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["station", "station.*"]), "station._resources"],
    package_dir={"station._resources": "resources"},
)
