"""docs/notebook.ipynb, the chapter told through the API, runs end to end: at smoke size, on the
stand-in data (found through $DROPCLI_DATA), in a real Jupyter kernel."""

from pathlib import Path

import pytest

from conftest import PATIENCE_S

NOTEBOOK = Path(__file__).parents[2] / "docs" / "notebook.ipynb"


def outputs_of(notebook, kind: str) -> list:
    return [
        output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs if kind in output.get("data", {})
    ]


def test_the_notebook_runs_end_to_end(fake_data, tmp_path, monkeypatch):
    nbclient = pytest.importorskip("nbclient", reason="running the notebook needs nbclient: pip install 'dropcli[notebook]'")
    import nbformat

    monkeypatch.setenv("DROPCLI_DATA", str(fake_data))
    monkeypatch.setenv("DROPCLI_NOTEBOOK_SMOKE", "1")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    # A cell that raises fails the test here (CellExecutionError), with the cell and its traceback.
    nbclient.NotebookClient(
        notebook, timeout=PATIENCE_S, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    text = "".join(output.get("text", "") for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs)
    assert "identical: 16,384 outputs and gradients" in text  # the two dropouts agree
    assert "test image 4:" in text and "entropy" in text  # Monte Carlo dropout on test images
    figures = [
        cell
        for cell in notebook.cells
        if cell.cell_type == "code" and cell.source.strip().endswith(("curves()", "figure()", "reliability()"))
    ]
    assert len(outputs_of(notebook, "image/png")) == len(figures) == 5  # each figure shown once, inline
    assert "epoch 2/2" in "".join(output["data"].get("text/plain", "") for output in outputs_of(notebook, "text/html"))
    saved = sorted(path.name.split("-")[0] for path in (tmp_path / "runs").iterdir())
    assert saved == ["compare", "compare", "default", "sweep"]  # the run and the three experiments, where the notebook ran


def test_the_notebook_is_kept_without_outputs():
    nbformat = pytest.importorskip("nbformat", reason="reading the notebook needs nbformat: pip install 'dropcli[notebook]'")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    assert [cell.outputs for cell in notebook.cells if cell.cell_type == "code"] == [[]] * sum(
        cell.cell_type == "code" for cell in notebook.cells
    )
