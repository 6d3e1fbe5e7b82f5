"""YAML → frozen settings: `${VAR}` interpolation and one-line errors that name the key path."""
