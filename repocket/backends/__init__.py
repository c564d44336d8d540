"""repocket's built-in storage backends: ``redis`` (also ``rediss``, ``unix``) and ``memory``.

They are found through the ``repocket.backends`` entry point group like any
third-party backend; see :mod:`repocket.storage`.
"""
