# One-command set-up: every target below creates .venv and installs the project when setup.py changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo
DATA_DIR ?= $(DEMO_DIR)/data

.PHONY: demo test bench clean

$(STAMP): setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/ebgan-data prepare --dataset=synthetic_faces --data_dir=$(DATA_DIR)
	$(BIN)/ebgan-data preview --dataset=synthetic_faces --data_dir=$(DATA_DIR) --region=mouth --num=8 --out=$(DEMO_DIR)/preview.png

test: $(STAMP)
	$(BIN)/python -m pytest -q tests

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) $(DEMO_DIR) build *.egg-info
