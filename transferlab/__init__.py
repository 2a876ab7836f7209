"""The application: the run config, plan, pre-flight, identity, store, executors, progress and status of a
transfer matrix, and the ``transferlab`` command line (:mod:`transferlab.cli`). It drives :mod:`adapt` (one
cell's training) and :mod:`analysis` (records -> answers); neither imports it."""
