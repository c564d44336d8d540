"""The models of the 0.0.1 documentation and tests, as the suite ships them.

They are declared once, in :mod:`repocket.testing.models`; this module only
re-exports them for the project's own tests.
"""

from __future__ import annotations

from repocket.testing.models import BlogPost, Build, Everything, Project, User

__all__ = ["BlogPost", "Build", "Everything", "Project", "User"]
