"""Every chapter runs through papermill at scale "quick" with compute on, into a temporary
results folder, on the CPU, on small data (nbval, configured in pyproject.toml, separately
re-executes the committed chapters and compares their outputs)."""
import json
from pathlib import Path

import papermill as pm
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CHAPTERS = [e["file"] for e in yaml.safe_load((REPO / "_toc.yml").read_text())["chapters"]]
NOTEBOOKS = [c for c in CHAPTERS if (REPO / f"{c}.ipynb").exists()]
EXTRA = {"book/feedforward": {"datasets": ["synthetic"]}, "book/width": {"datasets": ["synthetic"]}}  # no real data needed


def test_every_chapter_in_the_toc_exists():
    for c in CHAPTERS:
        assert (REPO / f"{c}.ipynb").exists() or (REPO / f"{c}.md").exists(), c


@pytest.mark.parametrize("chapter", NOTEBOOKS)
def test_chapter_has_parameters_cell(chapter):
    nb = json.loads((REPO / f"{chapter}.ipynb").read_text())
    tagged = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    if chapter == "book/reproducing":
        return
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    for name in ("seeds", "scale", "compute", "results_dir"):
        assert f"{name} =" in "".join(tagged[0]["source"]), name


@pytest.mark.parametrize("chapter", [c for c in NOTEBOOKS if c != "book/reproducing"])
def test_chapter_quick_papermill_run(chapter, tmp_path):
    params = {"seeds": [0], "scale": "quick", "compute": True, "results_dir": str(tmp_path / "results"),
              **EXTRA.get(chapter, {})}
    out = tmp_path / "out.ipynb"
    pm.execute_notebook(str(REPO / f"{chapter}.ipynb"), str(out), parameters=params,
                        cwd=str(REPO / "book"), progress_bar=False, kernel_name="python3")
    nb = json.loads(out.read_text())
    errors = [o for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
