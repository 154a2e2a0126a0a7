"""Two fixes to the HTML pages the book's readers get (found by tests/site/check_site.py).

1. MathJax 3 is served from the built book itself instead of a CDN. The book must read offline and the browser check (tests/site/check_site.py) runs without
internet, so the HTML builder copies MathJax from the PyPI package ``django-static-mathjax``
(plain static files; despite its name it needs no Django) into ``_static/mathjax/`` and points
Sphinx's ``mathjax_path`` at it. Only what the CommonHTML output needs is copied (~5 MB).

2. sphinx-thebe 0.3.1 (under Jupyter Book 1.0.4) writes its inline configuration script twice
into every page, so the browser throws "Identifier 'THEBE_JS_URL' has already been declared"
on each page: duplicate scripts are dropped from each page's script list.

3. Long lines in cell outputs wrap (static/book_site.css) instead of scrolling out of sight.
"""
import shutil
from pathlib import Path

SCRIPT = "tex-mml-chtml.js"
PARTS = [SCRIPT, "a11y", "input", "output/chtml", "ui"]


def _source() -> Path:
    import mathjax  # installed by django-static-mathjax (requirements.txt)
    return Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"


def _use_local(app, config):
    _source()  # fail at the start of the build, with the package's name, if it is missing
    config.mathjax_path = f"mathjax/{SCRIPT}"  # relative: Sphinx serves it from _static/


def _copy(app, exception):
    if exception or app.builder.format != "html":
        return
    src, dest = _source(), Path(app.outdir) / "_static" / "mathjax"
    for part in PARTS:
        if (src / part).is_dir():
            shutil.copytree(src / part, dest / part, dirs_exist_ok=True)
        else:
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / part, dest / part)


def _dedupe_scripts(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for js in scripts:
        # the copies differ only in priority and in None vs "" as the file of an inline script
        key = (str(getattr(js, "filename", js) or ""), repr(sorted(getattr(js, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(js)
    scripts[:] = unique


def _add_static(app, config):
    config.html_static_path.append(str(Path(__file__).parent / "static"))


def setup(app):
    app.connect("config-inited", _use_local, priority=900)
    app.connect("config-inited", _add_static)
    app.add_css_file("book_site.css")
    app.connect("build-finished", _copy)
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
