"""The built book, opened in a real browser: every page's figures, math, cell outputs and links.

    python tests/site/check_site.py [_build/html]        (or: make check-site, which builds first)

Serves the built HTML on 127.0.0.1 (a free port, a thread), opens every page in headless
Chromium (Debian's /usr/bin/chromium, driven by Playwright, whose own browser download is never
used), and checks on each page that
  - every <img> has loaded (complete, naturalWidth > 0);
  - where the page has math, MathJax ran from the book's own copy and typeset it without errors;
  - no cell output is an error or a traceback, and no Markdown table is left as raw text;
  - every relative link and every resource the page loads answers 200 (and #anchors exist);
  - the page raises no JavaScript exception.
  - every figure's cell (or the next) prints its provenance: which runs it shows, with their
    commit, hardware and wall time ("N runs, seeds [...]", report.provenance), or that the page
    computed it itself (report.built_here), or which `make bench` it shows (bench.provenance).
Requests to other hosts are blocked (this must pass offline) and listed as warnings. A
screenshot of each page goes to _build/screenshots/. Not collected by plain pytest (no test_
prefix); exits non-zero if any page fails, after a "N passed, N failed" line.
"""
from __future__ import annotations

import functools
import http.server
import re
import sys
import tempfile
import threading
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urldefrag, urlparse

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
MATH = ".math, span.math, div.math"  # what Sphinx writes for $...$, $$...$$ and {math}
ERRORS = "div.output.traceback, div.output.error, .cell_output .traceback"


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def serve(root: Path):
    """An HTTP server for ``root`` on 127.0.0.1 and a free port, in a daemon thread."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}/"


def pages(root: Path) -> list[str]:
    skip = {"genindex.html", "search.html"}
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.html")
                  if not p.relative_to(root).parts[0].startswith(("_", ".")) and p.name not in skip)


@functools.lru_cache(maxsize=None)
def fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            body = r.read()
            return r.status, body.decode("utf-8", "replace") if url.endswith(".html") else ""
    except urllib.error.HTTPError as e:
        return e.code, ""


def check_page(context, base: str, page: str, shots: Path) -> tuple[list[str], list[str]]:
    """(failures, warnings) for one page."""
    fail, warn, external, bad = [], [], set(), []
    p = context.new_page()
    p.on("pageerror", lambda e: fail.append(f"JavaScript exception: {e}"))
    p.on("response", lambda r: r.status >= 400 and bad.append(f"{r.status} {r.url}"))
    p.on("console", lambda m: m.type == "error" and "ERR_BLOCKED" not in m.text
         and "net::ERR_FAILED" not in m.text and warn.append(f"console error: {m.text[:200]}"))

    def route(r):
        if r.request.url.startswith(base) or r.request.url.startswith("data:"):
            r.continue_()
        else:
            external.add(urlparse(r.request.url).netloc)
            r.abort("blockedbyclient")
    p.route("**/*", route)
    p.goto(base + page, wait_until="load", timeout=60_000)
    # index.html redirects (meta refresh) to the first chapter: let any navigation finish first
    p.wait_for_load_state("networkidle", timeout=60_000)

    # Math: typeset by the local MathJax, no \merror.
    n_math = p.locator(MATH).count()
    if n_math:
        try:
            p.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise"
                                " && document.querySelectorAll('mjx-container').length > 0", timeout=20_000)
            p.evaluate("() => MathJax.startup.promise")
        except Exception:
            src = p.evaluate("() => [...document.scripts].map(s => s.src).filter(s => /mathjax/i.test(s))")
            fail.append(f"{n_math} math elements but MathJax did not typeset them (MathJax scripts: {src})")
        merr = p.locator("mjx-merror").count()
        if merr:
            fail.append(f"{merr} MathJax errors (bad TeX) on the page")
    mj = p.evaluate("() => [...document.scripts].map(s => s.src).filter(s => /mathjax/i.test(s))")
    for s in mj:
        if not s.startswith(base):
            fail.append(f"MathJax loaded from another host: {s}")

    # Figures.
    imgs = p.evaluate("() => [...document.images].map(i => [i.currentSrc || i.src, i.complete, i.naturalWidth])")
    for src, complete, width in imgs:
        if not complete or not width:
            fail.append(f"image did not render: {src[:100]}")

    # Provenance: a figure's cell (or the next) prints which runs it shows (report.provenance).
    bare = p.evaluate(r"""() => [...document.querySelectorAll('div.cell')].filter(c =>
        c.querySelector('.cell_output img')).filter(c => {
          const next = c.nextElementSibling, re = /\d+\s+runs?,\s+seeds|No runs stored|Computed\s+while\s+this\s+page\s+was\s+built|From\s+make\s+bench/;  // notes are folded (report.WIDTH)
          return !re.test(c.innerText) && !(next && next.matches('div.cell') && re.test(next.innerText));
        }).map(c => { let h = c.previousElementSibling;
          while (h && !/^H[1-4]$/.test(h.tagName) && !h.querySelector('h1,h2,h3,h4')) h = h.previousElementSibling;
          const t = h ? (h.querySelector('h1,h2,h3,h4') || h).innerText : '';
          return t.replace(/[#¶]/g, '').trim(); })""")
    for heading in bare:
        fail.append(f"figure without a provenance line (count, seeds, commit, hardware, time), after '{heading[:60]}'")

    # Printed notes: a line wider than its output box is wrapped again by the browser, raggedly (report.say folds
    # them to report.WIDTH characters, which must fit the box).
    wide = p.evaluate(r"""() => { const ctx = document.createElement('canvas').getContext('2d'), out = [];
        for (const pre of document.querySelectorAll('.cell_output .output pre')) {
          const s = getComputedStyle(pre); ctx.font = s.font;
          const fit = Math.floor((pre.clientWidth - parseFloat(s.paddingLeft) - parseFloat(s.paddingRight))
                                 / (ctx.measureText('M'.repeat(100)).width / 100));
          const long = pre.innerText.split('\n').filter(l => l.length > fit && /\s/.test(l.trim()));
          if (long.length) out.push([fit, long.length, long[0]]);
        } return out; }""")
    for fit, n, line in wide:
        fail.append(f"{n} printed line(s) wider than the output box's {fit} characters, wrapped again: '{line[:60]}...'")

    # Cell outputs: errors and tracebacks (stderr is a warning).
    for el in p.locator(ERRORS).all():
        fail.append("cell output is an error: " + el.inner_text()[:300].replace("\n", " | "))
    for el in p.locator(".cell_output .output.stderr").all():
        warn.append("stderr in a cell output: " + el.inner_text()[:200].replace("\n", " | "))
    text = p.locator("main").inner_text() if p.locator("main").count() else p.inner_text("body")
    if "Traceback (most recent call last)" in text:
        fail.append("a traceback is printed on the page")
    if "|---|" in text or "| claim | the paper says |" in text:
        fail.append("a Markdown table is shown as raw text (nb_render_markdown_format must be myst)")

    # Links: every relative href resolves (200), and its #anchor exists.
    hrefs = p.evaluate("() => [...document.querySelectorAll('a[href]')].map(a => a.href)")
    for href in sorted(set(hrefs)):
        if not href.startswith(base):
            continue
        url, frag = urldefrag(href)
        status, body = fetch(url)
        if status != 200:
            fail.append(f"broken link ({status}): {href[len(base):]}")
        elif frag and url.endswith(".html") and not re.search(rf'id=["\']{re.escape(frag)}["\']', body):
            warn.append(f"link to a missing anchor: {href[len(base):]}")
    fail += [f"resource failed: {b}" for b in bad]
    if external:
        warn.append(f"requests to other hosts (blocked): {sorted(external)}")

    shots.mkdir(parents=True, exist_ok=True)
    p.screenshot(path=str(shots / (page.replace("/", "_").removesuffix(".html") + ".png")), full_page=True)
    info = f"{len(imgs)} images, {n_math} math, {sum(h.startswith(base) for h in hrefs)} internal links"
    p.close()
    return fail, [info] + warn


def main(argv=None) -> int:
    from playwright.sync_api import sync_playwright

    root = Path((argv or sys.argv[1:] or ["_build/html"])[0]).resolve()
    if not (root / "index.html").exists():
        print(f"no built book in {root}: run `make book` first")
        return 2
    shots = root.parent / "screenshots"
    httpd, base = serve(root)
    passed = failed = 0
    try:
        with sync_playwright() as pw, tempfile.TemporaryDirectory(prefix="chromium-") as profile:
            context = pw.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, headless=True, args=FLAGS,
                viewport={"width": 1280, "height": 900}, service_workers="block")
            for page in pages(root):
                try:
                    fail, notes = check_page(context, base, page, shots)
                except Exception as e:  # a navigation (the index's redirect) raced a check: once more
                    if "context was destroyed" not in str(e):
                        raise
                    fail, notes = check_page(context, base, page, shots)
                print(f"{'FAIL' if fail else 'ok  '} {page}: {notes[0]}")
                for f in fail:
                    print(f"     ✗ {f}")
                for w in notes[1:]:
                    print(f"     ! {w}")
                failed += bool(fail)
                passed += not fail
            context.close()
    finally:
        httpd.shutdown()
    print(f"screenshots: {shots}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
