"""The package's version, in a leaf module (hatch reads it from here: ``[tool.hatch.version]``).

Every module that writes the version (the JSON and SARIF reports, baselines, ``--version``)
imports it from here, not from the package root: ``pcapcheck/__init__.py`` is the public
face that exposes :func:`pcapcheck.analyze`, the top of the layers, and a module of a lower
layer that imported it would depend on the whole API (an import-linter contract checks it).
"""

__version__ = "0.1.0"
