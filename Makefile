# One-command set-up: every target below creates .venv and installs the project when setup.py changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo
DATA_DIR ?= $(DEMO_DIR)/data
# The demo's training length: about eleven minutes on 2 quiet CPU cores (docs/training.md, "The demo"). Rerunning resumes.
DEMO_EPOCHS ?= 8
DEMO_STEPS_PER_EPOCH ?= 100

.PHONY: demo test test-fast bench clean

$(STAMP): setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/ebgan-data prepare --dataset=synthetic_faces --data_dir=$(DATA_DIR)
	$(BIN)/ebgan-data preview --dataset=synthetic_faces --data_dir=$(DATA_DIR) --region=mouth --num=8 --out=$(DEMO_DIR)/preview.png
	$(BIN)/ebgan-train --preset=synthetic64 --variant=att_ebgan --regions=mouth --dataset=synthetic_faces \
	    --data_dir=$(DATA_DIR) --model_dir=$(DEMO_DIR)/model --epochs=$(DEMO_EPOCHS) \
	    --steps_per_epoch=$(DEMO_STEPS_PER_EPOCH) --validation_steps=2 --checkpoint_every=100 --image_every=200
	$(BIN)/python -m training.demo --model_dir=$(DEMO_DIR)/model --data_dir=$(DATA_DIR) --out=$(DEMO_DIR)/edits.png
	$(BIN)/ebgan-eval --model_dir=$(DEMO_DIR)/model --data_dir=$(DATA_DIR) --num_pairs=200 --output_dir=$(DEMO_DIR)/eval
	$(BIN)/ebgan-export --model_dir=$(DEMO_DIR)/model --export_base=$(DEMO_DIR)/exports --name=ebgan \
	    --tflite=dynamic --verify
	$(BIN)/ebgan-edit --model=$(DEMO_DIR)/exports/ebgan \
	    --source=$(DEMO_DIR)/source.png --exemplar=$(DEMO_DIR)/exemplar.png --region=mouth --drop=Mustache \
	    --output=$(DEMO_DIR)/edited.png

test: $(STAMP)
	$(BIN)/python -m pytest -q tests

# The developer's loop: every test but those marked slow, on two workers (docs/development.md).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q --fast -n 2 tests

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) $(DEMO_DIR) build *.egg-info
