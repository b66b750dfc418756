# One entry point per task; CI calls the same ones (.ci/run).
.DEFAULT_GOAL := help
VENV := .venv/bin

.PHONY: help setup run chat test lint bench bench-hoax bench-escalation bench-gateway bench-trainer train

help: ## list the tasks
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  make %-13s %s\n", $$1, $$2}'

setup: ## make .venv (Python 3.10), install pinned dependencies, train the model if stale
	@bash scripts/setup.sh

run: setup ## run Garda on its embedded defaults (local terminal chat, no token needed)
	@$(VENV)/garda run

test: setup ## run the whole test suite (content and hoax checks, Rasa validate/test, pytest)
	$(VENV)/garda content check
	$(VENV)/garda hoax check
	$(VENV)/python -m pytest

lint: setup ## ruff and mypy
	$(VENV)/ruff check bot actions tests
	$(VENV)/mypy

bench: setup ## measure NLU quality, latency and memory, hoax matching, escalation, the trainer tools, then the gateway; writes docs/benchmarks.md
	$(VENV)/python -m bot.bench --out docs/benchmarks.md
	$(VENV)/python -m bot.bench_hoax --out docs/benchmarks.md
	$(VENV)/python -m bot.bench_escalation --out docs/benchmarks.md
	$(VENV)/python -m bot.bench_trainer --out docs/benchmarks.md
	$(VENV)/python -m bot.bench_loop --out docs/benchmarks.md
	$(VENV)/python -m bot.bench_gateway --out docs/benchmarks.md

bench-hoax: setup ## measure only hoax matching (retrieval, false alarms, latency); ~2 min
	$(VENV)/python -m bot.bench_hoax --out docs/benchmarks.md

bench-escalation: setup ## measure only escalation (held-out set, false escalations, abusive tweets, console); ~10 min
	$(VENV)/python -m bot.bench_escalation --out docs/benchmarks.md

bench-trainer: setup ## measure `garda trainer train` on the full data, and an unanswered question's way to a promoted model; ~20 min
	$(VENV)/python -m bot.bench_trainer --out docs/benchmarks.md
	$(VENV)/python -m bot.bench_loop --out docs/benchmarks.md

bench-gateway: setup ## measure only the gateway (webhook ack, end to end, stock Rasa); ~25 min
	$(VENV)/python -m bot.bench_gateway --out docs/benchmarks.md
