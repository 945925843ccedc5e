# cnclip-edu — one venv, two commands: `make course` and `make test`.
# Re-running a target does not reinstall: installation is keyed on pyproject.toml and this file.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The PyTorch build to install. This default is the one cached on our CI machines; on a GPU server
# pick the wheel that matches your CUDA, e.g. make course TORCH_SPEC="torch torchvision".
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
# cn_clip is a test oracle only. It pins lmdb==1.3.0, so it goes in without its dependencies.
CN_CLIP_SPEC ?= cn-clip==1.6.0
STAMP := $(VENV)/.cnclip-installed
COURSE_ARGS ?=
STUDENT_OUT ?= student
PYTEST_ARGS ?=

.PHONY: install course student test test-fast lab bench bench-gpu toy-checkpoint clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(STAMP): pyproject.toml Makefile | $(PY)
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e ".[dev]"
	$(PY) -m pip install -q --no-deps $(CN_CLIP_SPEC)
	$(PY) -m ipykernel install --sys-prefix --name cnclip-edu --display-name "cnclip-edu (.venv)" >/dev/null
	touch $(STAMP)

install: $(STAMP)

## The main job: run every notebook in order into runs/course/ and print the summary.
course: $(STAMP)
	$(VENV)/bin/cnclip-edu course $(COURSE_ARGS)

## Classroom: the student versions of the notebooks (solutions stubbed out) into $(STUDENT_OUT)/.
student: $(STAMP)
	$(VENV)/bin/cnclip-edu student --out $(STUDENT_OUT)

## The whole test suite, notebooks included (what CI runs).
test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

## Everything but the notebook runs.
test-fast: $(STAMP)
	$(PY) -m pytest -m "not notebooks" $(PYTEST_ARGS)

lab: $(STAMP)
	$(PY) -m pip install -q -e ".[dev,lab]"
	$(VENV)/bin/jupyter lab notebooks/

bench: $(STAMP)
	@for f in bench/bench_*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

## On a GPU machine: the GPU tests and GPU benchmarks in one go (skips, saying so, without CUDA).
bench-gpu: $(STAMP)
	PYTHON=$(PY) bash bench/run_gpu.sh

## Retrain the small course model that ships as package data (about 3 minutes on 2 CPU cores).
toy-checkpoint: $(STAMP)
	$(PY) -m cnclip_edu.course.recipe --out cnclip_edu/assets/course_model

clean:
	rm -rf runs build dist *.egg-info .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
