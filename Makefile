# The two commands of the README:
#   make hub    builds and runs the hub on its embedded store, ready for agents
#   make test   runs every test
# Both install missing system packages first.

LISTEN ?= 0.0.0.0:8443
# Empty: the hub's default ($XDG_DATA_HOME/lariat, /var/lib/lariat as root, ~/.local/share/lariat).
DATA   ?=

.PHONY: hub agent test build release bench bench-quick bench-k8s corebench fuzz clean

hub:
	scripts/ensure-deps.sh build
	swift build -c release --product lariat-hub
	.build/release/lariat-hub serve --listen $(LISTEN) $(if $(DATA),--data $(DATA))

# The suite takes seconds; the cap turns a hang into a clear failure instead of a stalled CI.
test:
	scripts/ensure-deps.sh build
	swift build --build-tests
	timeout --kill-after=30 1200 swift test --skip-build

build:
	scripts/ensure-deps.sh build
	swift build

release: agent
	swift build -c release --product lariat-hub

agent:
	scripts/ensure-deps.sh build
	# The agent ships with the Swift runtime linked in: one file, and about 3 MiB less RSS.
	swift build -c release --static-swift-stdlib --scratch-path .build-static --product lariat-agent

corebench:
	scripts/ensure-deps.sh bench
	perf/scripts/core-callgrind.sh

bench:
	scripts/ensure-deps.sh bench
	perf/scripts/bench.sh full

bench-quick:
	scripts/ensure-deps.sh bench
	perf/scripts/bench.sh quick

# The Kubernetes path (issue #9): kubectl and API requests through hub and agent vs straight to the
# stand-in API server (../shared/kube-standin), one run of 2 to 5 minutes; perf/results/k8s.json
# and its section of perf/RESULTS.md.
K8S_SCRATCH ?= .build-perf
bench-k8s:
	scripts/ensure-deps.sh build
	swift build -c release --scratch-path $(K8S_SCRATCH) --product lariat-hub
	swift build -c release --scratch-path $(K8S_SCRATCH) --product lariat-agent
	python3 perf/scripts/k8s_bench.py --bin $(K8S_SCRATCH)/release --out perf/results/k8s.json --results-md perf/RESULTS.md

# Every libFuzzer target (fuzz/run.sh lists them) for FUZZ_SECONDS each, one after another;
# saved crashes are replayed first. TARGETS="http-request websocket" selects some.
FUZZ_SECONDS ?= 60
fuzz:
	scripts/ensure-deps.sh build
	fuzz/run.sh $(FUZZ_SECONDS)

clean:
	rm -rf .build
