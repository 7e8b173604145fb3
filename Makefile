# tidehunt: two commands on a fresh machine.
#   make demo   venv + install + hunt the bundled synthetic APT40 demo case
#   make test   venv + install with test extras + run the tests
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TSTAMP := $(VENV)/.installed-test
NATIVE := $(VENV)/.native
NATIVE_SRC := $(wildcard native/evtxflat/src/*.rs) native/evtxflat/Cargo.toml
# The editable install leaves tidehunt's own modules uncompiled (pip compiles only what it
# copies), and where PYTHONDONTWRITEBYTECODE is set (containers, CI) every process then
# compiles them from source: 0.3-0.6 s of a 10x benchmark hunt. Compiled before each
# target; only changed files are (0.05 s when none are).
PYC := $(BIN)/python -m compileall -q src/tidehunt

.PHONY: demo test lint bench fuzz clean
FUZZ_SECONDS ?= 60

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(TSTAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(STAMP)

# the optional native EVTX flatten: built where cargo is (see scripts/build-native.sh),
# skipped with a message where it is not
$(NATIVE): $(NATIVE_SRC) | $(STAMP)
	@scripts/build-native.sh $(BIN)/python
	@touch $@

demo: $(STAMP) $(NATIVE)
	@$(PYC)
	$(BIN)/tidehunt demo -o demo-case
	@echo "Report: demo-case/case/report.html (and report.json), timeline: demo-case/case/timeline.csv"

test: $(TSTAMP) $(NATIVE)
	@$(PYC)
	@scripts/install-chromium.sh
	$(BIN)/python -m pytest -q

lint: $(TSTAMP)
	$(BIN)/ruff check src tests bench fuzz
	$(BIN)/mypy src

# the property tests with many more examples, then each atheris harness FUZZ_SECONDS
fuzz: $(TSTAMP)
	TIDEHUNT_FUZZ_PROFILE=fuzz $(BIN)/python -m pytest -q tests/fuzz
	PYTHONPATH=. $(BIN)/python fuzz/run.py --seconds $(FUZZ_SECONDS)

bench: $(STAMP) $(NATIVE)
	@$(PYC)
	$(BIN)/python bench/bench_hunt.py

clean:
	rm -rf $(VENV) demo-case build dist src/*.egg-info .hypothesis native/evtxflat/target
	rm -f src/tidehunt/_evtxflat.*.so
