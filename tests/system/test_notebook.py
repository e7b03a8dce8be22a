"""The README's API example in a real Jupyter kernel, as a notebook user runs it.

A notebook shows what a study writes on stderr as a red block under the cell: the example's
cell must show the progress widget and the final table, and nothing else (no TensorFlow
start-up lines, no Keras warning on loading the best model, no fallback text bars).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import cli_env, readme_blocks

pytestmark = pytest.mark.slow

WIDGET = "application/vnd.jupyter.widget-view+json"


def run_cell(code: str, folder: Path) -> list[Any]:
    """``code`` as one cell of a new notebook, run in a fresh kernel in ``folder``; the
    cell's outputs."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    pytest.importorskip("ipywidgets", reason="the progress widget needs ipywidgets")
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(code)]
    # The kernel starts as a user's does: without the variables that `import search` set
    # in this test process (they would hide TensorFlow's start-up lines).
    env = {
        k: v
        for k, v in cli_env().items()
        if k not in ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS")
    }
    client = nbclient.NotebookClient(
        notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(folder)}}
    )
    client.execute(env=env)
    outputs: list[Any] = notebook.cells[0].outputs
    return outputs


def test_the_readme_example_in_a_notebook_shows_the_widget_and_the_table(
    tmp_path: Path,
) -> None:
    outputs = run_cell(readme_blocks()[0], tmp_path)
    shown = "\n".join(
        f"{o.output_type} {o.get('name', '')}: {o.get('text', o.get('data'))}" for o in outputs
    )
    streams = [o for o in outputs if o.output_type == "stream"]
    assert not streams, shown  # nothing on stderr (nor stdout)
    widgets = [o for o in outputs if WIDGET in o.get("data", {})]
    assert len(widgets) == 1, shown
    (result,) = [o for o in outputs if o.output_type == "execute_result"]
    assert "<table" in result["data"]["text/html"], shown
    assert "units" in result["data"]["text/html"]
    assert len(outputs) == 2, shown
    assert (tmp_path / "results" / "arrays" / "wide-optuna-tpe" / "best.keras").is_file()
