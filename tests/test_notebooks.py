"""Every chapter runs through papermill at scale "quick" with compute on, into a temporary
results folder, on the CPU, on small data (nbval, configured in pyproject.toml, separately
re-executes the committed chapters and compares their outputs)."""
import json
from pathlib import Path

import nbformat
import papermill as pm
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CHAPTERS = [e["file"] for e in yaml.safe_load((REPO / "_toc.yml").read_text())["chapters"]]
NOTEBOOKS = [c for c in CHAPTERS if (REPO / f"{c}.ipynb").exists()]
EXTRA = {"book/feedforward": {"datasets": ["synthetic"]}, "book/width": {"datasets": ["synthetic"]},
         "book/multitask": {"datasets": ["synthetic", "synthetic1", "synthetic2", "synthetic3"]}}  # no real data needed


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
    # (papermill raises on the first failing cell: test_a_failing_cell_fails_the_run shows it does)
    outputs = [o for c in json.loads(out.read_text())["cells"] for o in c.get("outputs", [])]
    assert any("image/png" in o.get("data", {}) for o in outputs), "the chapter drew no figure"
    text = "".join("".join(o.get("text", "")) for o in outputs if o.get("output_type") == "stream")
    # with compute on, report.missing() must say every run is there, not list runs to compute
    assert "runs are in results/" in text, "the chapter printed no report.missing() note"
    assert "have no stored result" not in text, text


def test_a_failing_cell_fails_the_run(tmp_path):
    """The chapter runs above pass only if no cell raised: papermill raises on an error cell."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1"),
                                         nbformat.v4.new_code_cell("1 / 0"),
                                         nbformat.v4.new_code_cell("print('not reached')")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    src = tmp_path / "failing.ipynb"
    nbformat.write(nb, src)
    with pytest.raises(pm.PapermillExecutionError, match="ZeroDivisionError"):
        pm.execute_notebook(str(src), str(tmp_path / "out.ipynb"), cwd=str(tmp_path), progress_bar=False,
                            kernel_name="python3")


def test_every_chapter_opens_with_the_one_launch_cell():
    """The Colab cell is written once (book/colab.py, CELL) and stamped into every chapter."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("colab", REPO / "book" / "colab.py")
    colab = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(colab)
    for nb_path in sorted((REPO / "book").glob("*.ipynb")):
        first = next(c for c in json.loads(nb_path.read_text())["cells"] if c["cell_type"] == "code")
        assert "".join(first["source"]) == colab.CELL, f"{nb_path.name}: run python book/colab.py --stamp"
        assert "remove-input" in first["metadata"].get("tags", []), nb_path.name


@pytest.mark.parametrize("chapter", [c for c in NOTEBOOKS if c != "book/reproducing"])
def test_chapter_validates_its_parameters_before_any_work(chapter):
    nb = json.loads((REPO / f"{chapter}.ipynb").read_text())
    code = [("".join(c["source"]), c["metadata"].get("tags", [])) for c in nb["cells"] if c["cell_type"] == "code"]
    k = next(i for i, (_, tags) in enumerate(code) if "parameters" in tags)
    assert "report.check_parameters(globals()" in code[k + 1][0], "the cell after the parameters cell must check them"
    assert "collect(" not in code[k + 1][0].split("check_parameters")[0]


@pytest.mark.parametrize("params, message", [({"seed": 5}, "unknown parameter(s) ['seed']"),
                                             ({"seeds": "0"}, "parameter seeds='0'"),
                                             ({"scale": "huge"}, "parameter scale='huge': use one of")])
def test_a_bad_parameter_stops_the_chapter_with_what_is_allowed(params, message, tmp_path):
    with pytest.raises(pm.PapermillExecutionError) as e:
        pm.execute_notebook(str(REPO / "book/recurrent.ipynb"), str(tmp_path / "out.ipynb"),
                            parameters={"results_dir": str(tmp_path), **params}, cwd=str(REPO / "book"),
                            progress_bar=False, kernel_name="python3")
    assert message in str(e.value)


def test_the_readmes_rerun_commands_work_as_written(tmp_path):
    """The README's two rerun commands, exactly as printed. The quick one runs (its runs into a temporary folder,
    through QUICK_RESULTS): it computes the chapter's runs for seeds 7 and 8 and its output notebook shows one
    progress line per computed run, not hundreds. The paper-scale one (20 recurrent runs, about 5 minutes) is
    expanded by make -n: the papermill call it makes, and the runs that call would need (launch.status: seed 7's
    20, and the stored learning-rate selection, not computed again)."""
    import os
    import re
    import subprocess

    from biaslearn import launch

    lines = [l for l in (REPO / "README.md").read_text().splitlines() if l.startswith("make rerun ")]
    paper, quick = (next(l for l in lines if l.startswith(f"make rerun CHAPTER={c}")) for c in ("recurrent", "lorenz"))

    def command(line):
        return line.split("#")[0].strip()

    def out(line):
        return REPO / "_build" / "reproduce" / re.search(r"writes _build/reproduce/(\S+?\.ipynb)", line).group(1)

    dry = subprocess.run(command(paper).replace("make ", "make -n ", 1), shell=True, cwd=REPO, capture_output=True,
                         text=True, timeout=60)
    assert dry.returncode == 0, dry.stderr
    call = " ".join(dry.stdout.replace("\\\n", " ").split())
    assert (f"papermill --no-progress-bar --cwd book book/recurrent.ipynb {out(paper).relative_to(REPO)} "
            '-y "{seeds: [7], scale: paper, compute: true}"') in call, call
    for preset in ("recurrent", "recurrent_coarse"):  # per signal: three widths x three ways of training, and the
        assert len(launch.status(preset, "paper", seeds=[7])) == 10  # linear baseline, seed 7
        # the learning rates come from the stored selection (seed 0): nothing of it is computed again
        assert {r["state"] for r in launch.status(f"{preset}_selection", "paper")} == {"done"}

    root = tmp_path / "results-quick"
    done = subprocess.run(command(quick), shell=True, cwd=REPO, env=dict(os.environ, QUICK_RESULTS=str(root)),
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    nb = json.loads(out(quick).read_text())
    stderr = "".join("".join(o.get("text", "")) for c in nb["cells"] for o in c.get("outputs", [])
                     if o.get("name") == "stderr")
    computed = {f.name: len(list(f.glob("*.json"))) for f in root.iterdir()}
    # two seeds x four ways of training; the selection at scale quick: two learning rates x bias, full (seed 0)
    assert computed == {"lorenz": 8, "lorenz_selection": 4}
    total = sum(computed.values())
    assert stderr.count("computed ") == total and len(stderr.splitlines()) <= total + 2, stderr[:2000]


def test_computing_with_the_data_absent_lists_the_runs_instead_of_crashing(tmp_path, monkeypatch):
    """compute: true on a machine without MNIST: every cell runs, the missing runs are listed with why."""
    monkeypatch.setenv("BIASLEARN_DATA", str(tmp_path / "no-data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("HOME", str(tmp_path))
    out = tmp_path / "out.ipynb"
    pm.execute_notebook(str(REPO / "book/feedforward.ipynb"), str(out), cwd=str(REPO / "book"), progress_bar=False,
                        kernel_name="python3", parameters={"seeds": [0], "scale": "quick", "compute": True,
                                                           "results_dir": str(tmp_path / "results"), "datasets": ["mnist"]})
    text = "".join("".join(o.get("text", "")) for c in json.loads(out.read_text())["cells"] for o in c.get("outputs", []))
    text = " ".join(text.split())  # notes are folded to the page's width
    assert "data set 'mnist' not on this machine (python -m biaslearn.data download mnist)" in text


def test_printed_notes_are_folded_to_the_pages_column():
    """report.say folds a note to report.WIDTH characters, so the page shows its lines as printed (a line wider than
    the output box is wrapped again by the browser, raggedly); a shell command is folded with " \\" continuations
    and still pastes as one command."""
    from biaslearn import report
    text = " ".join(f"word{i}" for i in range(60))
    folded = report.wrap(text).splitlines()
    assert len(folded) > 1 and max(map(len, folded)) <= report.WIDTH and " ".join(folded) == text
    assert report.wrap("  short line\n  another") == "  short line\n  another"
    command = "  python -m biaslearn.experiments " + " ".join(f"--option{i} value{i}" for i in range(12))
    lines = report.wrap(command).splitlines()
    assert len(lines) > 1 and max(map(len, lines)) <= report.WIDTH and all(ln.endswith(" \\") for ln in lines[:-1])
    assert " ".join(ln.removesuffix(" \\").strip() for ln in lines) == command.strip()
    wide = []  # the committed chapters' printed lines wider than WIDTH that had a space to fold at
    for chapter in NOTEBOOKS:
        for cell in json.loads((REPO / f"{chapter}.ipynb").read_text())["cells"]:
            for o in cell.get("outputs", []):
                if o.get("output_type") == "stream" and o.get("name") == "stdout":
                    wide += [f"{chapter}: {ln}" for ln in "".join(o["text"]).splitlines()
                             if len(ln) > report.WIDTH and " " in ln.strip()]
    assert not wide, "printed wider than report.WIDTH (print with report.say):\n" + "\n".join(wide[:10])
