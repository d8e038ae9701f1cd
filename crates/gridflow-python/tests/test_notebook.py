"""The tutorial notebook (examples/parallel-computing.ipynb) runs top to bottom and draws its
figures (the PNGs are kept under target/notebook-figures to be looked at)."""

import os
import pathlib
import shutil

import matplotlib.image as mpimg
import nbformat
import numpy as np
from nbclient import NotebookClient

from conftest import CRATES

ROOT = CRATES.parent
NOTEBOOK = ROOT / "examples" / "parallel-computing.ipynb"


def _gridflow_binary():
    explicit = os.environ.get("GRIDFLOW_BIN")
    if explicit:
        return explicit
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return str(target / "debug" / "gridflow")


def test_notebook_executes_and_draws_its_figures(tmp_path):
    binary = _gridflow_binary()
    assert pathlib.Path(binary).exists(), f"the gridflow binary is needed to write the sample: {binary}"
    figures = ROOT / "target" / "notebook-figures"
    shutil.rmtree(figures, ignore_errors=True)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    env = {"GRIDFLOW_NOTEBOOK_DATA": str(tmp_path / "data"), "GRIDFLOW_NOTEBOOK_FIGURES": str(figures), "GRIDFLOW_BIN": binary}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    svg = (figures / "milan-graph.svg").read_text()
    assert "</svg>" in svg
    for name in ("point-series.png", "time-mean-map.png"):
        img = mpimg.imread(figures / name)
        assert img.shape[0] > 100 and img.shape[1] > 200, name
        # something was drawn: the picture is not one flat colour
        assert np.asarray(img)[..., :3].std() > 0.05, name
    # the catalog search found the sample's one row and the closing cell closed the client
    outputs = "".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", "")) for c in nb.cells for o in c.get("outputs", []))
    assert "1 matching row(s)" in outputs
    assert "'closed'" in outputs
