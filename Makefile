# mimmigrate — see README.md.
GO       ?= go
BIN      := bin/mimmigrate
DEMO_DIR ?= /tmp/mimmigrate-demo
FUZZTIME ?= 60s
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

.PHONY: setup build test test-short bench demo demo-stop fuzz vet clean

# Installs what the tests and the demo need on Debian 12 (as root; only what is
# missing), starts PostgreSQL and epmd, downloads the Go modules.
setup:
	bash .ci/setup

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/mimmigrate

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }

# The whole suite against real components (ejabberd, erl, RabbitMQ, PostgreSQL), with the race detector.
test: setup vet
	ERL_FLAGS="+c false" $(GO) test -race -count=1 -timeout 20m ./...

# Only what needs no ejabberd (faster; still starts erl nodes).
test-short:
	$(GO) test -count=1 -run 'Usage|Decode|Handshake|Len|Trunc|Hostile|Encode|Disagree|DETS|Cookie' ./...

# Benchmarks with their anchors, measured in the same run (docs/benchmarks.md).
bench: setup
	$(GO) test -run XXX -bench RPCVersusErlang -benchtime 7x -cpu 1,2 ./erldist/
	$(GO) test -run XXX -bench InspectVersusEjabberdctl -benchtime 20x ./cmd/mimmigrate/
	$(GO) test -run XXX -bench ReadVersusErlang -benchtime 3x -timeout 60m ./cmd/mimmigrate/
	$(GO) test -run XXX -bench ExportVersusEjabberd -benchtime 1x -timeout 60m ./cmd/mimmigrate/
	$(GO) test -run XXX -bench ClusterVersusMnesia -benchtime 1x -timeout 30m ./cetsnode/
	$(GO) test -run XXX -bench XMPPVersusEjabberd -benchtime 1x -timeout 30m ./cetsnode/xmpp/
	$(GO) test -run XXX -bench TsungCrossCheck -benchtime 1x -timeout 20m ./cetsnode/xmpp/
	$(GO) test -run XXX -bench SyncDelta -benchtime 1x -timeout 30m ./cmd/mimmigrate/
	$(GO) test -run XXX -bench CutoverDowntime -benchtime 1x -timeout 60m ./cmd/mimmigrate/

# The whole migration on this machine: a private two-node ejabberd cluster with
# sample data, broken like the 2012 log; inspect, repair, sync, two Go nodes in
# standby, cutover, a real client logging in on a Go node.
demo: setup build
	$(GO) run ./internal/demo start -dir $(DEMO_DIR)
	$(GO) run ./internal/demo migrate -dir $(DEMO_DIR) -bin $(BIN)

demo-stop:
	$(GO) run ./internal/demo stop -dir $(DEMO_DIR)

# Run every fuzz target for FUZZTIME each.
fuzz:
	$(GO) test -run XXX -fuzz FuzzDecode -fuzztime $(FUZZTIME) ./erldist/term/
	$(GO) test -run XXX -fuzz FuzzTextReader -fuzztime $(FUZZTIME) ./erldist/term/
	$(GO) test -run XXX -fuzz FuzzHandshakeMessages -fuzztime $(FUZZTIME) ./erldist/
	$(GO) test -run XXX -fuzz FuzzReadPacket -fuzztime $(FUZZTIME) ./erldist/
	$(GO) test -run XXX -fuzz FuzzSplitPacket -fuzztime $(FUZZTIME) ./erldist/
	$(GO) test -run XXX -fuzz FuzzEPMDMessages -fuzztime $(FUZZTIME) ./erldist/
	$(GO) test -run XXX -fuzz FuzzDecodeMessage -fuzztime $(FUZZTIME) ./cetsnode/
	$(GO) test -run XXX -fuzz FuzzReader -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./cetsnode/xmpp/stream/
	$(GO) test -run XXX -fuzz FuzzDETS -fuzztime $(FUZZTIME) ./mnesiaread/dets/
	$(GO) test -run XXX -fuzz FuzzDiskLog -fuzztime $(FUZZTIME) ./mnesiaread/disklog/

clean:
	rm -rf bin
