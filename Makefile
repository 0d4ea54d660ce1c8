# The whole set-up is `make demo` and `make test`: both create .venv and install what is missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: install test demo bench bench-peer clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(STAMP): setup.py | $(PY)
	$(PY) -m pip install -q -e ".[dev,plots,serving]"
	touch $(STAMP)

install: $(STAMP)

# The suite on TEST_WORKERS processes (pytest-xdist; each test file stays in one process,
# so its module fixtures are built once). TEST_WORKERS=0 runs it in this process.
TEST_WORKERS ?= 2
test: $(STAMP)
	$(PY) -m pytest tests -q -n $(TEST_WORKERS) --dist loadfile

demo: $(STAMP)
	$(PY) experiments/demo.py

bench: $(STAMP)
	$(PY) benchmarks/train_throughput.py $(BENCH_ARGS)

# DeepCTR 0.9.4 on tf-keras, in its own venv (never a dependency of the package).
PEER_VENV ?= .venv-peer
bench-peer:
	test -x $(PEER_VENV)/bin/python || $(PYTHON) -m venv $(PEER_VENV)
	$(PEER_VENV)/bin/python -m pip install -q "deepctr==0.9.4" "tf-keras~=2.21.0" "tensorflow~=2.21.0" numpy
	TF_USE_LEGACY_KERAS=1 $(PEER_VENV)/bin/python benchmarks/peer_deepctr.py $(BENCH_ARGS)

.PHONY: bench-peer-torch
# DeepCTR-Torch 0.3.0's WDL on PyTorch, in its own venv (never a dependency of the package). torch is
# installed first by its exact pin, which takes the CPU build that pip finds on the developers' machines
# (PEER_TORCH_PIP passes pip further options, e.g. where to find a CPU build elsewhere); deepctr-torch's
# own `torch>=2.4` is then satisfied. It imports `requests` without declaring it.
PEER_TORCH_VENV ?= .venv-peer-torch
PEER_TORCH_PIP ?=
bench-peer-torch:
	test -x $(PEER_TORCH_VENV)/bin/python || $(PYTHON) -m venv $(PEER_TORCH_VENV)
	$(PEER_TORCH_VENV)/bin/python -m pip install -q $(PEER_TORCH_PIP) "torch==2.13.0" numpy absl-py requests
	$(PEER_TORCH_VENV)/bin/python -m pip install -q $(PEER_TORCH_PIP) "deepctr-torch==0.3.0"
	$(PEER_TORCH_VENV)/bin/python benchmarks/peer_torch.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(PEER_VENV) *.egg-info

# Reproductions. DATASET=ml-1m|ml-100k|synthetic, DATA_DIR=raw MovieLens folder,
# SEEDS=n repetitions, SPLIT=gender|age|occupation. Finished runs are skipped (resume).
DATASET ?= ml-1m
DATA_DIR ?= datasets
SEEDS ?= 1
SPLIT ?= gender
# LOOP=fast|original: the training loop of every run (original: TF 1.12 + DeepCTR step for step).
LOOP ?= fast
REPRO_FLAGS = --dataset=$(DATASET) --data_dir=$(DATA_DIR) --seeds=$(SEEDS) --split=$(SPLIT) --loop=$(LOOP)

.PHONY: reproduce-table2 reproduce-table2-alpha
reproduce-table2: $(STAMP)
	$(PY) experiments/reproduce_table2.py $(REPRO_FLAGS)

reproduce-table2-alpha: $(STAMP)
	$(PY) experiments/reproduce_table2.py $(REPRO_FLAGS) --ablation=alpha

.PHONY: reproduce-table5
# MLoRA's Table 5: MLP+MLoRA over five hidden widths (the paper's is on DATASET=amazon).
reproduce-table5: $(STAMP)
	$(PY) experiments/reproduce_table2.py $(REPRO_FLAGS) --ablation=widths

.PHONY: fidelity-ablation
# The factor ablation of the original loop (experiments/fidelity_ablation.py); DATASET/DATA_DIR/
# SEEDS/SPLIT as above; ABLATION_ARGS passes further flags (--models, --factors, --split_seeds).
ABLATION_ARGS ?=
fidelity-ablation: $(STAMP)
	$(PY) experiments/fidelity_ablation.py $(REPRO_FLAGS) $(ABLATION_ARGS)

.PHONY: reproduce-moe-table1 reproduce-moe-experts
# DATASET/DATA_DIR/SEEDS as above; SPLITS=gender,age,occupation; MOE_SCHEDULE=paper|as_executed.
SPLITS ?= gender,age,occupation
MOE_SCHEDULE ?= paper
MOE_FLAGS = --dataset=$(DATASET) --data_dir=$(DATA_DIR) --seeds=$(SEEDS) --moe_schedule=$(MOE_SCHEDULE) --loop=$(LOOP)
reproduce-moe-table1: $(STAMP)
	$(PY) experiments/reproduce_moe.py $(MOE_FLAGS) --figure=table1 --splits=$(SPLITS)

reproduce-moe-experts: $(STAMP)
	$(PY) experiments/reproduce_moe.py $(MOE_FLAGS) --figure=experts

.PHONY: reproduce-m3oe
# M3oE's Table 2 (and with M3OE_ARGS=--ablations its Table 3): DATASET/DATA_DIR as above;
# SEEDS defaults to 5 here (run_MDMT.sh's seeds 2022..2026) unless given; M3OE_ARGS passes
# flags to experiments/reproduce_m3oe.py (--models, --max_epochs, --fusion_schedule, ...).
M3OE_SEEDS = $(if $(filter command line environment environment override,$(origin SEEDS)),$(SEEDS),5)
M3OE_ARGS ?=
reproduce-m3oe: $(STAMP)
	$(PY) experiments/reproduce_m3oe.py --dataset=$(DATASET) --data_dir=$(DATA_DIR) --seeds=$(M3OE_SEEDS) $(M3OE_ARGS)

.PHONY: reproduce-multidomain
# Every single-task multi-domain model, Base and +MLoRA, one table: DATASET/DATA_DIR/SEEDS/SPLIT/LOOP
# as above; PROTOCOL=mlora|scenario_wise_rec (Scenario-Wise-Rec's MovieLens: 3 age domains, random
# 8:1:1, embedding 16); MULTIDOMAIN_ARGS passes further flags (--models, --max_epochs, ...).
PROTOCOL ?= mlora
MULTIDOMAIN_ARGS ?=
reproduce-multidomain: $(STAMP)
	$(PY) experiments/reproduce_multidomain.py $(REPRO_FLAGS) --protocol=$(PROTOCOL) $(MULTIDOMAIN_ARGS)
