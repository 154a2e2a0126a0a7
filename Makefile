# The two commands a newcomer needs: `make book` and `make test`.
VENV    ?= .venv
PY      := $(VENV)/bin/python
CHAPTERS := theory feedforward width multitask recurrent lorenz generation tasks
SEEDS   ?= 0 1 2 3 4

# Local copies of the data sets: ../shared/data on the project's machines, if present.
ifneq ($(wildcard ../shared/data),)
export BIASLEARN_DATA ?= $(abspath ../shared/data)
endif

.PHONY: venv book test bench execute reproduce rerun clean check-site pdf verify

venv: $(VENV)/.installed
$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -r requirements.txt -e .
	touch $@

# --all: Sphinx re-reads (so re-executes) only pages whose source changed; a change under src/
# or results/ must re-execute every chapter too.
book: venv
	$(VENV)/bin/jupyter-book build . -W -n --keep-going --all

# The built book in headless Chromium: figures, math, cell errors, links; screenshots in _build/screenshots.
check-site: book
	$(PY) tests/site/check_site.py _build/html

# The book as one PDF (needs TeX: see the README); not part of CI.
pdf: venv
	$(VENV)/bin/jupyter-book build . --builder pdflatex

# Re-execute the chapters in place against results/ (commit them executed: nbval compares outputs).
execute: venv
	cd book && for ch in intro $(CHAPTERS) reproducing; do ../$(VENV)/bin/jupyter-execute --inplace $$ch.ipynb || exit 1; done

test: venv
	$(PY) -m pytest

# Recompute the cheapest stored run of every experiment (up to 10 min each) and compare its metrics: stale results fail.
verify: venv
	$(PY) -m biaslearn.results verify --max-seconds 600

bench: venv
	$(PY) -m biaslearn.bench --out book/bench.json

# Every chapter at the paper's scale, computing what is missing; one papermill run per chapter and seed.
# EXECUTOR=local or slurm first runs the missing runs of every preset as jobs (biaslearn.launch, through submitit;
# LAUNCH holds its options, e.g. LAUNCH="--partition gpu --account mylab --qos normal --gpus 1") and waits for
# them; the chapters then load them.
EXECUTOR ?= inline
LAUNCH   ?=
reproduce: venv
ifneq ($(EXECUTOR),inline)
	$(PY) -m biaslearn.launch submit --all --scale paper --seeds $(SEEDS) --executor $(EXECUTOR) --wait $(LAUNCH)
endif
	mkdir -p _build/reproduce
	for ch in $(CHAPTERS); do for s in $(SEEDS); do \
	  $(VENV)/bin/papermill book/$$ch.ipynb _build/reproduce/$$ch-seed$$s.ipynb \
	    -y "{seeds: [$$s], scale: paper, compute: true}" || exit 1; \
	done; done

# One chapter for other seeds, computing the runs missing from results/ (scale paper unless SCALE=quick):
#   make rerun CHAPTER=recurrent SEEDS="7 8"      -> _build/reproduce/recurrent-seeds-7-8.ipynb
# (SCALE=quick stores its runs in _build/results-quick, never among the book's paper-scale runs)
CHAPTER ?=
SCALE   ?= paper
empty   :=
space   := $(empty) $(empty)
comma   := ,
# where SCALE=quick stores its runs, relative to book/ (where the chapter runs)
QUICK_RESULTS ?= ../_build/results-quick
rerun: venv
	@test -n "$(CHAPTER)" -a -f "book/$(CHAPTER).ipynb" || { echo "make rerun: CHAPTER='$(CHAPTER)': use one of $(CHAPTERS)" >&2; exit 2; }
	mkdir -p _build/reproduce
	$(VENV)/bin/papermill --no-progress-bar --cwd book book/$(CHAPTER).ipynb \
	  _build/reproduce/$(CHAPTER)-seeds-$(subst $(space),-,$(strip $(SEEDS))).ipynb \
	  -y "{seeds: [$(subst $(space),$(comma),$(strip $(SEEDS)))], scale: $(SCALE), compute: true$(if $(filter quick,$(SCALE)),$(comma) results_dir: $(QUICK_RESULTS))}"

clean:
	rm -rf _build
