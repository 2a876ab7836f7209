"""transferlab's training side: one cell's training — domains, models, methods, the shared training loop, the
record of a cell. The runner (config, plan, store, executors) is :mod:`transferlab`; adapt imports neither it
nor :mod:`analysis`.

Data flows one way: config → cells → train → record → analysis → report. Import what you need from the
submodules (``adapt.domains``, ``adapt.methods``, ``adapt.train``…); this package import stays light.
"""

__version__ = "0.1.0"


def load_model(run_dir, key: str):
    """The trained ``nn.Module`` of cell ``key`` in a run folder made with ``train.save_models: true``, in eval
    mode (see :func:`adapt.saved.load_model`; imported lazily so ``import adapt`` stays light)."""
    from .saved import load_model as _load_model

    return _load_model(run_dir, key)
