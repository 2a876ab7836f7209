"""The ``transferlab`` command line (:mod:`transferlab.cli`), above the :mod:`adapt` and :mod:`analysis`
packages: it drives both and neither imports it."""
