"""The chapters' Colab set-up, written once.

Every chapter's first code cell is ``CELL`` (hidden in the book; it does nothing outside Colab):
on Colab it fetches the repository, with its code and stored results, and runs this file, which
installs the package and works from the repository's book/ folder.

    python book/colab.py --stamp     write CELL into every chapter (tests/test_notebooks.py checks it)
"""
import json
import os
import subprocess
import sys
from pathlib import Path

_REPO = "/content/random-weights-learned-biases"
CELL = f"""# Colab only (hidden in the book; does nothing elsewhere): fetch the repository, then set up from book/colab.py.
import sys
if "google.colab" in sys.modules:
    !test -d {_REPO} || git clone -q --depth 1 https://github.com/biaslearn/random-weights-learned-biases {_REPO}
    %run {_REPO}/book/colab.py"""


def _setup():
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", _REPO, "myst-nb"], check=True)
    sys.path.insert(0, f"{_REPO}/src")  # an editable install is only seen after a restart
    os.chdir(f"{_REPO}/book")


def _stamp():
    for path in sorted(Path(__file__).parent.glob("*.ipynb")):
        nb = json.loads(path.read_text())
        first = next(c for c in nb["cells"] if c["cell_type"] == "code")
        first["source"] = CELL.splitlines(keepends=True)
        path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


if "google.colab" in sys.modules:
    _setup()
elif __name__ == "__main__" and "--stamp" in sys.argv:
    _stamp()
