"""transferlab's training side: domains, config, cells, methods, the shared training loop and the runner.

Data flows one way: config → cells → train → record → analysis → report. Import what you need from the
submodules (``adapt.domains``, ``adapt.config``, ``adapt.train``…); this package import stays light.
"""

__version__ = "0.1.0"


def load_model(run_dir, key: str):
    """The trained ``nn.Module`` of cell ``key`` in a run folder made with ``train.save_models: true``, in eval
    mode (see :func:`adapt.saved.load_model`; imported lazily so ``import adapt`` stays light)."""
    from .saved import load_model as _load_model

    return _load_model(run_dir, key)
