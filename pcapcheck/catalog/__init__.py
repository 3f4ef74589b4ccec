"""The rule catalogue: ``rules/*.yaml`` loaded and validated, rule selection, events → findings.

- :mod:`~pcapcheck.catalog.rules`: :class:`Rule`, :class:`Catalog`, :func:`load_catalog`;
- :mod:`~pcapcheck.catalog.config`: ``pcapcheck.toml`` / ``[tool.pcapcheck]`` discovery and
  the rule selection it gives;
- :mod:`~pcapcheck.catalog.yamlfile`: reading a user's YAML file with one-line errors.
"""
