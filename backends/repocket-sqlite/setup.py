"""Packaging for repocket-sqlite, a separately installed repocket backend."""

import re
from pathlib import Path

from setuptools import setup

HERE = Path(__file__).parent
VERSION = re.search(
    r'^__version__ = "([^"]+)"', (HERE / "repocket_sqlite" / "__init__.py").read_text(), re.M
).group(1)

setup(
    name="repocket-sqlite",
    version=VERSION,
    description="A repocket storage backend keeping records in one SQLite file",
    long_description=(HERE / "README.rst").read_text(encoding="utf-8"),
    long_description_content_type="text/x-rst",
    author="repocket contributors",
    license="MIT",
    url="https://github.com/gabrielfalcao/repocket",
    packages=["repocket_sqlite"],
    package_data={"repocket_sqlite": ["py.typed"]},
    python_requires=">=3.10",
    # the storage protocol of engine v2 (create-only saves, conditional
    # saves, expiry, query_records)
    install_requires=["repocket>=0.2.0.dev0"],
    extras_require={"test": ["pytest>=7.4"]},
    entry_points={
        "repocket.backends": [
            "sqlite = repocket_sqlite.storage:SQLiteStorage",
        ],
    },
    classifiers=[
        "Development Status :: 3 - Alpha",
        "Intended Audience :: Developers",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3 :: Only",
        "Topic :: Database",
        "Typing :: Typed",
    ],
)
