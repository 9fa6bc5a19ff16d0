# make demo  - set up .venv (once) and run the embedded demo + its report on the CPU
# make test  - set up .venv (once) and run the test suite
# make lint  - ruff, snakefmt --check, snakemake --lint (its advice to give each rule a conda
#              environment is not taken: jobs run in the environment that runs Snakemake)
# make rulegraph - regenerate docs/rulegraph.{dot,svg} (Graphviz `dot`)
# make slurm-profile ACCOUNT=... GPU_PARTITION=... CPU_PARTITION=... - install the SLURM site
#      profile in $XDG_CONFIG_HOME/snakemake/slurm (~/.config/...); then: snakemake --profile slurm
#      optional: STATUS_COMMAND=squeue (no accounting), MAX_THREADS=, MAX_MEM_MB= (small nodes)

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.sora-tta-installed
CORES ?= 2
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
SNAKEFILES := Snakefile $(wildcard workflow/rules/*.smk)
# Jobs call `sora-tta` from the environment's bin folder.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup demo report test lint rulegraph slurm-profile clean

ACCOUNT ?=
GPU_PARTITION ?=
CPU_PARTITION ?=
STATUS_COMMAND ?= sacct
SLURM_PROFILE_DIR ?= $(or $(XDG_CONFIG_HOME),$(HOME)/.config)/snakemake/slurm

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(TORCH_PINS)
	$(BIN)/python -m pip install -e '.[dev]'
	touch $@

DEMO := --configfile config/demo.yaml

demo: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) $(DEMO)
	$(BIN)/snakemake --report results/report.html $(DEMO)
	@echo "report: results/report.html"

report: $(STAMP)
	$(BIN)/snakemake --report results/report.html $(DEMO)

slurm-profile: $(STAMP)
	$(BIN)/sora-tta slurm-profile --account "$(ACCOUNT)" --gpu-partition "$(GPU_PARTITION)" \
	    --cpu-partition "$(CPU_PARTITION)" --status-command "$(STATUS_COMMAND)" \
	    $(if $(MAX_THREADS),--max-threads $(MAX_THREADS)) \
	    $(if $(MAX_MEM_MB),--max-mem-mb $(MAX_MEM_MB)) --out "$(SLURM_PROFILE_DIR)"

# pytest exits 5 when it collected no tests: that is a failure here.
test: $(STAMP)
	$(BIN)/python -m pytest; status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; \
	exit $$status

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakefmt --check $(SNAKEFILES)
	$(BIN)/snakemake --lint --cores 1 > .snakemake-lint.txt 2>&1 || $(BIN)/python -c \
	    "import sys; from sora_tta.study.snakemake_cli import unexpected_lints as u; \
	    p = u(open('.snakemake-lint.txt').read()); print(*p, sep='\n'); sys.exit(bool(p))"

# The rule graph is complete once the manifest checkpoint has run: run the demo first.
rulegraph: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) --quiet all $(DEMO)
	$(BIN)/snakemake --rulegraph $(DEMO) > docs/rulegraph.dot
	dot -Tsvg -Glabelloc=b -Glabel="rule graph of config/demo.yaml (make rulegraph)" \
	    docs/rulegraph.dot -o docs/rulegraph.svg

clean:
	rm -rf results .snakemake
