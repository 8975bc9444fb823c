#!/usr/bin/env bash
# Remakes what the shipped weights decide, after weights/base.safetensors or weights/adapters.safetensors
# change (a new base invalidates all of it): the step-cache calibrations and the committed reports, each with
# the command its README section or model card gives. About 2 hours on two free cores. Starts the
# services when they are down (and stops them after).
#   scripts/reports.sh                        every step, in this order
#   scripts/reports.sh base classify          some of: calibrate base personalization stepcache stepcache-dit-s2 classify batch scale soak
# Studies that chose a default (docs/studies/) are records of their time and are not remade.
# The model cards' text and tables are not rewritten: compare the new reports with them and edit by hand.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$REPO_ROOT"

steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(calibrate base personalization stepcache stepcache-dit-s2 classify batch scale soak)
for s in "${steps[@]}"; do
	case $s in
	calibrate | base | personalization | stepcache | stepcache-dit-s2 | classify | batch | scale | soak) ;;
	*) die "unknown step $s: use calibrate, base, personalization, stepcache, stepcache-dit-s2, classify, batch, scale or soak" ;;
	esac
done

make -s build
started=$(scripts/services.sh up)
cleanup() { [ "$started" = started ] && scripts/services.sh down || true; }
trap cleanup EXIT

threads=(--torch-threads "${THREADS:-2}")
for s in "${steps[@]}"; do
	say "$s"
	began=$(date +%s)
	case $s in
	calibrate) # step-cache calibrations under the default sampling (weights/base.calibration.json)
		./cachet calibrate magcache "${threads[@]}"
		./cachet calibrate teacache "${threads[@]}" ;;
	base) # weights/base.md, "Metrics": seeds 1–4 (seed 0 chose the sampling)
		./cachet eval base --seed 1 --seeds 4 "${threads[@]}" --out eval/reports/base ;;
	personalization) # weights/adapters.md, "Metrics"
		./cachet eval personalization "${threads[@]}" --out eval/reports/personalization ;;
	stepcache) # docs/step-caching.md: the service path that chose the default, then the bare sampler's 40 prompts
		./cachet bench stepcache --torch-threads 1 --prompts 8 --subjects 4 --subject-prompts 2 --images 2 --repeats 3 --out bench/reports/stepcache-service
		./cachet bench stepcache --path sampler "${threads[@]}" --prompts 40 --repeats 3 --timing-images 8 --out bench/reports/stepcache \
			--settings "steps=25;steps=17;steps=13;steps=10;steps=8;fora:interval=2;fora:interval=3;taylorseer:interval=3,order=2;taylorseer:interval=4,order=2;taylorseer:interval=4,order=4;foca:interval=3;foca:interval=4;foca:interval=5;foca:interval=6;fbcache:threshold=0.1;dbcache;abcache:order=2;bwcache:delta=0.2;magcache;teacache" ;;
	stepcache-dit-s2) # docs/step-caching.md: the same policies timed at DiT-S/2's real token count (random weights)
		./cachet bench stepcache --torch-threads 1 --preset dit-s/2 --timing-images 1 --repeats 3 --out bench/reports/stepcache-dit-s2 \
			--settings "fora:interval=3;taylorseer:interval=4,order=2;foca:interval=4;fbcache:threshold=0.1;abcache:order=2;bwcache:delta=0.2;steps=25;steps=10" ;;
	classify) # README, "Classification": the committed run
		./cachet eval classify --weights weights/base.safetensors "${threads[@]}" --knn-train 10000 --diffusion 100 \
			--block-study 0 --shot-draws 20 --out eval/reports/classify ;;
	batch) # docs/operations.md: request batching at 8 clients against one request at a time (1 thread)
		./cachet bench batch --torch-threads 1 --rounds 3 --out bench/reports/batch ;;
	scale) # docs/operations.md: API + 1, 2, 3 worker processes, then 3 with 20 SIGKILLs (about 15 minutes)
		./cachet bench scale --out bench/reports/scale ;;
	soak) # docs/operations.md, "Soak": 10,000 generate and 10,000 classify requests against a server of its own
		addr=127.0.0.1:${SOAK_PORT:-18080}
		./cachet serve --addr "$addr" --auth off >var/log/soak-serve.log 2>&1 &
		for _ in $(seq 600); do curl -sf "http://$addr/readyz" >/dev/null && break; sleep 1; done
		pid=$(pgrep -f "bin/cachet serve --addr $addr" | head -1)
		./cachet bench soak --url "http://$addr" --pid "$pid" --generate 10000 --classify 10000 --concurrency 4 --warmup 500 --out bench/reports/soak
		kill "$pid"; wait || true ;;
	esac
	say "$s: $(($(date +%s) - began)) s"
done
git status --short -- weights eval/reports bench/reports
