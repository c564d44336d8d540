"""Packaging for repocket."""

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(
    r'^__version__ = "([^"]+)"', (HERE / "repocket" / "__init__.py").read_text(), re.M
).group(1)

setup(
    name="repocket",
    version=VERSION,
    description="An active-record ORM for Python that uses Redis as its main data store",
    long_description=(HERE / "README.rst").read_text(encoding="utf-8"),
    long_description_content_type="text/x-rst",
    author="repocket contributors",
    license="MIT",
    url="https://github.com/gabrielfalcao/repocket",
    packages=find_packages(include=["repocket", "repocket.*"]),
    package_data={"repocket": ["py.typed"]},
    python_requires=">=3.10",
    install_requires=[
        "redis>=5.0",
        # the memory backend runs the redis backend's Lua scripts: fakeredis's
        # "lua" extra brings lupa
        "fakeredis[lua]>=2.20",
        "click>=8.1",
        # the async API runs the one model layer in greenlets (repocket.asyncbridge)
        "greenlet>=3.0",
    ],
    extras_require={
        # redis-py parses replies in C when hiredis is installed: use it in production
        "hiredis": ["redis[hiredis]>=5.0"],
        "test": [
            "pytest>=7.4",
            "hypothesis>=6.90",
            "build>=1.0",
            "ruff>=0.5",
            "mypy>=1.10",
            "hiredis>=2.0",
            # the suite builds the docs and runs their examples
            "sphinx>=7.2",
            "furo>=2024.1.29",
            # examples/bookshelf, a FastAPI application, is tested in-process
            # through httpx's ASGI transport
            "fastapi>=0.110",
            "httpx>=0.27",
        ],
        "docs": [
            "sphinx>=7.2",
            "furo>=2024.1.29",
        ],
    },
    entry_points={
        "console_scripts": ["repocket = repocket.cli:main"],
        "pytest11": ["repocket = repocket.testing.pytest_plugin"],
        "repocket.backends": [
            "redis = repocket.backends.redis:RedisStorage",
            "rediss = repocket.backends.redis:RedisStorage",
            "unix = repocket.backends.redis:RedisStorage",
            "memory = repocket.backends.memory:MemoryStorage",
            "redis+cluster = repocket.backends.cluster:RedisClusterStorage",
            "rediss+cluster = repocket.backends.cluster:RedisClusterStorage",
        ],
    },
    classifiers=[
        "Development Status :: 3 - Alpha",
        "Intended Audience :: Developers",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3 :: Only",
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Programming Language :: Python :: 3.13",
        "Topic :: Database",
        "Typing :: Typed",
    ],
)
