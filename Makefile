# Portcullis — the everyday loop.
#
#   make demo    the whole picture on localhost, no cluster needed
#   make test    every test, building the test control plane first if it is not cached
#   make lint    formatting and clippy, warnings are errors
#   make crds    regenerate crds/ from the API types
#   make bench   the data plane side by side with nginx
#   make image   the container image (needs a Docker engine)

CARGO ?= cargo
BIN := target/debug/portcullis

.PHONY: build release test demo lint crds check-generated bench control-plane image

build:
	$(CARGO) build

release:
	$(CARGO) build --release

# The operator tests run against a real kube-apiserver, etcd and kube-controller-manager, built
# once from the upstream Go modules and cached in ~/.cache/portcullis/k8s (a second run costs
# nothing). KUBEBUILDER_ASSETS points at existing binaries instead.
control-plane:
	@hack/build-test-control-plane.sh >/dev/null

test: control-plane
	PORTCULLIS_K8S_BIN="$$(hack/build-test-control-plane.sh | tail -n1)" $(CARGO) test --workspace --all-targets
	$(MAKE) check-generated

demo:
	$(CARGO) build --release
	target/release/portcullis demo

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

crds: build
	$(BIN) crds > crds/portcullis.yaml

# Fails when a generated file no longer matches what the code generates.
check-generated: build
	@$(BIN) crds | diff -u crds/portcullis.yaml - >/dev/null || \
		{ echo "crds/portcullis.yaml is out of date: run 'make crds'"; exit 1; }
	@echo "generated files are up to date"

bench:
	hack/bench-proxy.sh

IMAGE ?= ghcr.io/portcullis-dev/portcullis:$(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
image:
	docker build -t $(IMAGE) .
