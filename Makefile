# One-command set-up: every target below creates .venv and installs the project when setup.py changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo
DATA_DIR ?= $(DEMO_DIR)/data
# The demo's training length: the whole target takes about eight minutes on 2 quiet CPU cores (docs/training.md,
# "The demo"). Rerunning resumes.
DEMO_EPOCHS ?= 8
DEMO_STEPS_PER_EPOCH ?= 100

# The shipped models (models/README.md): both variants on mouth, components and face in 100-step epochs (batch 16),
# exported, evaluated and drawn. Each trains in stages, each to the given number of epochs (the learning rate falls to
# 0 at the end of each stage and rises again at the start of the next): 4500 steps, then on to 13500 and to 18000
# (about 60-80 minutes per 4500 steps when both train at once on 2 cores). A run starts from those networks with the
# exemplar aligned to the source and a spatial code (SHIP_ALIGNED_CONFIG, docs/method.md) for
# SHIP_ALIGNED_EPOCHS_<variant> epochs. The variants train one after the other, EBGAN first. Then the runs with the
# eyes-and-mouth alignment and a jittered landmark estimator (SHIP_EYES_MOUTH_CONFIG, --landmark_jitter), in the order
# of SHIP_EYES_MOUTH_RUNS, one per word: <variant>:<epochs>, then any flags of its own after colons (a fifth of the
# learning rate, a stronger classification loss and the other variant's run as a teacher: docs/method.md; the single
# parts' regions besides, a new discriminator for the first two of those: docs/training.md; the bicubic resampling of
# the aligned exemplar for the last sixteen, SHIP_BICUBIC; the hole's squared error for the last ten, SHIP_L2;
# three times as many noses for EBGAN's last two, SHIP_NOSES; Att-EBGAN's eleventh without its filtering losses,
# SHIP_UNFILTERED, which the runs after it bring back; the swap-back loss for each variant's last, SHIP_SWAP_BACK;
# Att-EBGAN's third from last again from its run without the filtering losses, SHIP_FROM_UNFILTERED, taught by that
# EBGAN; its last two with the classification loss on the edit as a user receives it, SHIP_CLS_EDIT, the first of them
# with a new discriminator). Each is named eyes_mouth<N>_<variant>, N counting that variant's runs, and starts from
# its variant's run before (the first from aligned_<variant>). Each variant's last run is the one exported; rerunning
# resumes the training.
SHIP_RUNS ?= runs
SHIP_VARIANTS := ebgan att_ebgan
SHIP_STAGES ?= 45 135 180
SHIP_ALIGNED_EPOCHS_ebgan ?= 12
SHIP_ALIGNED_EPOCHS_att_ebgan ?= 28
SHIP_ALIGNED_CONFIG := code_pooling=spatial,exemplar_alignment=landmarks
# The later runs' flags: a fifth of the learning rate, and run $(2) of the other variant as a teacher at weight $(1).
ship_taught = --learning_rate=1e-4:--teacher_weight=$(1):--teacher=$(SHIP_RUNS)/$(2)
SHIP_SIX_REGIONS := --regions=mouth,components,face,eyes,brows,nose
SHIP_EYES_MOUTH_RUNS ?= ebgan:8 ebgan:8 ebgan:8 att_ebgan:8 \
    att_ebgan:4:$(call ship_taught,300,eyes_mouth3_ebgan):--cls_weight=5 \
    ebgan:4:$(call ship_taught,300,eyes_mouth2_att_ebgan) \
    att_ebgan:18:$(call ship_taught,300,eyes_mouth4_ebgan):--cls_weight=5:$(SHIP_SIX_REGIONS):--noinit_discriminator \
    ebgan:4:$(call ship_taught,300,eyes_mouth3_att_ebgan):$(SHIP_SIX_REGIONS):--noinit_discriminator \
    ebgan:4:$(call ship_taught,30,eyes_mouth3_att_ebgan):$(SHIP_SIX_REGIONS) \
    att_ebgan:4:$(call ship_taught,30,eyes_mouth6_ebgan):--cls_weight=5:$(SHIP_SIX_REGIONS) \
    ebgan:4:$(call ship_taught,30,eyes_mouth4_att_ebgan):$(SHIP_SIX_REGIONS) \
    ebgan:4:$(call ship_taught,30,eyes_mouth4_att_ebgan):$(SHIP_SIX_REGIONS) \
    att_ebgan:8:$(call ship_taught,30,eyes_mouth6_ebgan):--cls_weight=5:$(SHIP_SIX_REGIONS) \
    ebgan:4:$(call ship_taught,30,eyes_mouth5_att_ebgan):$(SHIP_SIX_REGIONS) \
    ebgan:4:$(call ship_taught,30,eyes_mouth5_att_ebgan):$(SHIP_SIX_REGIONS) \
    ebgan:4:$(call ship_taught,30,eyes_mouth5_att_ebgan):$(SHIP_SIX_REGIONS):$(SHIP_BICUBIC) \
    att_ebgan:4:$(call ship_taught,30,eyes_mouth10_ebgan):--cls_weight=5:$(SHIP_SIX_REGIONS):$(SHIP_BICUBIC) \
    ebgan:4:$(call ship_taught,30,eyes_mouth6_att_ebgan):$(SHIP_SIX_REGIONS):$(SHIP_BICUBIC) \
    att_ebgan:4:$(call ship_taught,30,eyes_mouth11_ebgan):--cls_weight=5:$(SHIP_SIX_REGIONS):$(SHIP_BICUBIC) \
    ebgan:4:$(call ship_taught,30,eyes_mouth7_att_ebgan):$(SHIP_SIX_REGIONS):$(SHIP_BICUBIC) \
    att_ebgan:4:$(call ship_taught,30,eyes_mouth12_ebgan):--cls_weight=5:$(SHIP_SIX_REGIONS):$(SHIP_BICUBIC) \
    ebgan:4:$(call ship_taught,30,eyes_mouth8_att_ebgan):$(SHIP_SIX_REGIONS):$(SHIP_BICUBIC):$(SHIP_L2) \
    att_ebgan:4:$(call ship_taught,30,eyes_mouth13_ebgan):--cls_weight=5:$(SHIP_SIX_REGIONS):$(SHIP_BICUBIC):$(SHIP_L2) \
    ebgan:4:$(call ship_taught,30,eyes_mouth9_att_ebgan):$(SHIP_SIX_REGIONS):$(SHIP_BICUBIC):$(SHIP_L2):$(SHIP_NOSES) \
    att_ebgan:4:$(call ship_taught,30,eyes_mouth14_ebgan):--cls_weight=5:$(SHIP_SIX_REGIONS):$(SHIP_BICUBIC):$(SHIP_L2) \
    att_ebgan:4:$(call ship_taught,30,eyes_mouth15_ebgan):$(SHIP_UNFILTERED):$(SHIP_SIX_REGIONS):$(SHIP_BICUBIC):$(SHIP_L2) \
    att_ebgan:4:$(call ship_taught,30,eyes_mouth15_ebgan):--cls_weight=5:$(SHIP_SIX_REGIONS):$(SHIP_BICUBIC):$(SHIP_L2) \
    ebgan:4:$(call ship_taught,30,eyes_mouth12_att_ebgan):$(SHIP_SIX_REGIONS):$(SHIP_BICUBIC):$(SHIP_L2):$(SHIP_NOSES):$(SHIP_SWAP_BACK) \
    att_ebgan:4:$(call ship_taught,30,eyes_mouth16_ebgan):--cls_weight=5:$(SHIP_SIX_REGIONS):$(SHIP_BICUBIC):$(SHIP_L2):$(SHIP_FROM_UNFILTERED) \
    att_ebgan:4:$(call ship_taught,30,eyes_mouth16_ebgan):--cls_weight=5:$(SHIP_SIX_REGIONS):$(SHIP_BICUBIC):$(SHIP_L2):$(SHIP_CLS_EDIT):--noinit_discriminator \
    att_ebgan:4:$(call ship_taught,30,eyes_mouth16_ebgan):--cls_weight=5:$(SHIP_SIX_REGIONS):$(SHIP_BICUBIC):$(SHIP_L2):$(SHIP_CLS_EDIT):$(SHIP_SWAP_BACK)
SHIP_EYES_MOUTH_CONFIG := code_pooling=spatial,exemplar_alignment=eyes_mouth
# The last runs' alignment: the same, the exemplar resampled by the bicubic kernel (the later --model_config wins).
SHIP_BICUBIC = --model_config=$(SHIP_EYES_MOUTH_CONFIG),exemplar_resampling=bicubic
SHIP_L2 := --hole_rec_l2_weight=100
SHIP_NOSES := --region_weights=1,1,1,1,1,3
SHIP_UNFILTERED := --cls_weight=0:--gate_dropout=0
SHIP_SWAP_BACK := --swap_back_weight=100
SHIP_CLS_EDIT := --cls_on_composite:--cls_labels=region
# The later --init_from wins: this run starts from the run named, not from its variant's run before.
SHIP_FROM_UNFILTERED = --init_from=$(SHIP_RUNS)/eyes_mouth11_att_ebgan
SHIP_TRAIN_FLAGS = --preset=synthetic64 --regions=mouth,components,face --dataset=synthetic_faces \
    --data_dir=$(DATA_DIR) --steps_per_epoch=100 --checkpoint_every=100 --keep_checkpoints=140 --image_every=500 \
    --validation_steps=2
comma := ,
space := $(subst ,, )
# $(1), a list of words, joined by commas (the form --model_dir takes several models in).
joined = $(subst $(space),$(comma),$(strip $(1)))
SHIPPED_MODELS = $(call joined,$(foreach variant,$(SHIP_VARIANTS),models/$(variant)))
# The run of variant $(1) that is exported: its last eyes-and-mouth run.
ship_final = $(SHIP_RUNS)/eyes_mouth$(words $(filter $(1):%,$(SHIP_EYES_MOUTH_RUNS)))_$(1)
# The shell commands that train variant $(1) up to its aligned run: the staged run, then the aligned run.
ship_training = for epochs in $(SHIP_STAGES); do \
        $(BIN)/ebgan-train $(SHIP_TRAIN_FLAGS) --variant=$(1) --model_dir=$(SHIP_RUNS)/ship_$(1) \
            --epochs=$$epochs || exit 1; \
    done; \
    $(BIN)/ebgan-train $(SHIP_TRAIN_FLAGS) --variant=$(1) --model_dir=$(SHIP_RUNS)/aligned_$(1) \
        --init_from=$(SHIP_RUNS)/ship_$(1) --model_config=$(SHIP_ALIGNED_CONFIG) \
        --epochs=$(SHIP_ALIGNED_EPOCHS_$(1)) || exit 1
# The shell commands that train the runs of SHIP_EYES_MOUTH_RUNS in order ($$trained: the variants of those done).
ship_eyes_mouth_training = trained=; \
    for run in $(SHIP_EYES_MOUTH_RUNS); do \
        set -- $$(echo $$run | tr : ' '); variant=$$1; epochs=$$2; shift 2; \
        number=$$(printf '%s\n' $$trained | grep -cx $$variant); \
        previous=eyes_mouth$${number}_$$variant; [ $$number -gt 0 ] || previous=aligned_$$variant; \
        number=$$((number + 1)); \
        $(BIN)/ebgan-train $(SHIP_TRAIN_FLAGS) --variant=$$variant \
            --model_dir=$(SHIP_RUNS)/eyes_mouth$${number}_$$variant --init_from=$(SHIP_RUNS)/$$previous \
            --model_config=$(SHIP_EYES_MOUTH_CONFIG) --landmark_jitter=0.05 --epochs=$$epochs "$$@" || exit 1; \
        trained="$$trained $$variant"; \
    done
SHIP_DATA64 ?= $(SHIP_RUNS)/data64
# The evaluations of the shipped models in models/reports/: make models writes new ones beside them (<record>.new)
# and prints the differences; make models-keep replaces the old by the new.
SHIP_RECORDS := eval_500 regression_saved_model regression_tflite

.PHONY: demo test test-fast lint bench clean models models-keep browser

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
	$(BIN)/python -m ebgan_tf.training.demo --model_dir=$(DEMO_DIR)/model --data_dir=$(DATA_DIR) \
	    --out=$(DEMO_DIR)/edits.png
	$(BIN)/ebgan-eval --model_dir=$(DEMO_DIR)/model --data_dir=$(DATA_DIR) --num_pairs=200 --output_dir=$(DEMO_DIR)/eval
	$(BIN)/ebgan-export --model_dir=$(DEMO_DIR)/model --export_base=$(DEMO_DIR)/exports --name=ebgan \
	    --tflite=dynamic --verify
	$(BIN)/ebgan-edit --model=$(DEMO_DIR)/exports/ebgan \
	    --source=$(DEMO_DIR)/source.png --exemplar=$(DEMO_DIR)/exemplar.png --region=mouth --drop=Mustache \
	    --output=$(DEMO_DIR)/edited.png

test: $(STAMP) lint browser
	$(BIN)/python -m pytest -q tests

# Lint (docs/development.md, "Lint"): ruff's lint and format check over every Python file, then mypy over the package as it installs, ebgan_tf
# with the command folders inside it (setup.py's package_dir), laid out as symbolic links in build/typecheck. Both
# are configured in pyproject.toml and pinned in setup.py's dev extra.
TYPECHECK_DIR := build/typecheck
TYPECHECK_LINKS = $(filter-out %/__pycache__,$(wildcard ebgan_tf/*)) training export serving
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	rm -rf $(TYPECHECK_DIR)/ebgan_tf && mkdir -p $(TYPECHECK_DIR)/ebgan_tf
	ln -s $(addprefix $(CURDIR)/,$(TYPECHECK_LINKS)) $(TYPECHECK_DIR)/ebgan_tf/
	cd $(TYPECHECK_DIR) && $(abspath $(BIN))/mypy --config-file $(CURDIR)/pyproject.toml -p ebgan_tf

# The web editor's browser tests drive Debian's chromium through chromedriver (never a browser download): installed
# here when missing and this is root with apt-get, otherwise make stops with the command to run.
CHROMIUM_PACKAGES := chromium chromium-driver
browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
	    if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	        apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $(CHROMIUM_PACKAGES); \
	    else \
	        echo "make: the browser tests need Debian's chromium and chromedriver; run: sudo apt-get install $(CHROMIUM_PACKAGES)" >&2; \
	        exit 1; \
	    fi; \
	fi

# The developer's loop: every test but those marked slow, on two workers, each test file on one worker (its module
# fixtures are built once; docs/development.md).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q --fast -n 2 --dist loadfile tests

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

models: $(STAMP)
	$(BIN)/ebgan-data prepare --dataset=synthetic_faces --data_dir=$(DATA_DIR)
	$(foreach variant,$(SHIP_VARIANTS),( $(call ship_training,$(variant)) ) || exit 1;)
	$(ship_eyes_mouth_training)
	# Exported and checked beside the runs first; only a verified export replaces the shipped one.
	for final in $(foreach variant,$(SHIP_VARIANTS),$(variant):$(call ship_final,$(variant))); do \
	    variant=$${final%%:*}; \
	    rm -rf $(SHIP_RUNS)/exports/$$variant $(SHIP_RUNS)/exports/$$variant-tflite && \
	    $(BIN)/ebgan-export --model_dir=$${final#*:} --export_base=$(SHIP_RUNS)/exports \
	        --name=$$variant --version=1 --tflite=dynamic,int8 --data_dir=$(DATA_DIR) --verify && \
	    rm -rf models/$$variant models/$$variant-tflite && \
	    mv $(SHIP_RUNS)/exports/$$variant $(SHIP_RUNS)/exports/$$variant-tflite models/ || exit 1; \
	done
	$(BIN)/ebgan-eval-classifier --dataset=synthetic_faces --data_dir=$(DATA_DIR) --output_dir=$(SHIP_RUNS)/evalcls \
	    --image_size=64
	$(BIN)/ebgan-eval --model_dir=$(call joined,$(foreach variant,$(SHIP_VARIANTS),$(call ship_final,$(variant)))) \
	    --data_dir=$(DATA_DIR) --regions=mouth,components,face --num_pairs=500 --classifier_dir=$(SHIP_RUNS)/evalcls \
	    --output_dir=models/reports/eval_500.new
	$(BIN)/ebgan-data prepare --dataset=synthetic_faces --data_dir=$(SHIP_DATA64) --num_train=8 --num_validation=8 \
	    --num_test=64
	$(BIN)/ebgan-eval --model_dir=$(SHIPPED_MODELS) --dataset=synthetic_faces --data_dir=$(SHIP_DATA64) \
	    --regions=mouth,components,face --num_pairs=64 --output_dir=models/reports/regression_saved_model.new
	$(BIN)/ebgan-eval --model_dir=$(call joined,$(foreach variant,$(SHIP_VARIANTS),models/$(variant)-tflite/1/model_dynamic.tflite)) \
	    --dataset=synthetic_faces --data_dir=$(SHIP_DATA64) --regions=mouth,components,face --num_pairs=64 \
	    --output_dir=models/reports/regression_tflite.new
	rm -rf models/reports/*/logs  # TensorBoard copies of the reports' numbers: not shipped
	for record in $(SHIP_RECORDS); do \
	    $(BIN)/python -m ebgan_tf.training.compare_reports --old=models/reports/$$record \
	        --new=models/reports/$$record.new || exit 1; \
	done
	@echo "New records in models/reports/*.new beside the old ones; make models-keep replaces the old by them."
	$(BIN)/ebgan-figures --model=$(SHIPPED_MODELS) --data_dir=$(DATA_DIR) --output_dir=docs/images/paper

# The new records of make models replace the old ones (after their differences were read).
models-keep:
	for record in $(SHIP_RECORDS); do \
	    rm -rf models/reports/$$record && mv models/reports/$$record.new models/reports/$$record || exit 1; \
	done

clean:
	rm -rf $(VENV) $(DEMO_DIR) build *.egg-info
