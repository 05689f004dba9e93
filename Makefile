# Vigil: `make boot` boots Vigil in QEMU; `make test` runs every test.
GO ?= go
FUZZTIME ?= 10s

.PHONY: all build deps test unit-test fuzz vet boot bench clean

all: build

deps:
	./scripts/install-deps.sh

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/ ./cmd/...

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }

# The whole suite, QEMU boots included (VIGIL_REQUIRE_VM=1 turns a missing
# kernel or QEMU into a failure instead of a skip).
test: deps vet
	VIGIL_REQUIRE_VM=1 $(GO) test -count=1 -timeout 45m ./...
	$(MAKE) fuzz

unit-test:
	$(GO) test -short -count=1 ./...

# Every fuzz target, briefly.
fuzz:
	./scripts/fuzz-all.sh $(FUZZTIME)

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

boot: deps
	$(GO) run ./cmd/vigil-vm boot

clean:
	rm -rf bin
