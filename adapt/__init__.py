"""transferlab's training side: domains, config, cells, methods, the shared training loop and the runner.

Data flows one way: config → cells → train → record → analysis → report. Import what you need from the
submodules (``adapt.domains``, ``adapt.config``, ``adapt.train``…); this package import stays light.
"""

__version__ = "0.1.0"
