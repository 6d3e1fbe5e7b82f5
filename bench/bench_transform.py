"""Per-record cost of the reference transform and the compiled one, on the sample bets.

Run from the repository root: `.venv/bin/python -m bench.bench_transform [--count 20000]`.

Both transforms are built from the same `TransformSpec` (`--record sample`: the demo mapping of
the bet kind and bet.avsc; `--record bench`: the `make bench` bet and mapping, bench/workload.py)
and run over the same Avro payloads (the bytes after the Confluent header), in
batches of `--batch` whose results are kept until the batch is done, as the pipeline keeps a
batch's bodies until it is uploaded (keeping them all, or none, moves the allocator's share).
The reference's stages (decode, map, validate, serialize) are also timed one by one. Figures
are CPU µs per record on this machine; the best of `--repeat` runs is printed.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from bench import workload
from connector.avro.decoding import ReadPlan, encode_raw, read_datum
from connector.avro.schemas import load_schema, parse
from connector.config.settings import DestinationSettings, MappingSettings
from connector.devtools.samples import make_messages, sample_mappings
from connector.ingest.fastjson import dumps_bytes
from connector.ingest.validation import validate_record
from connector.mapping.compiled import TopicMapping
from connector.transform.build import build_transform
from connector.transform.reference import build_reference
from connector.transform.spec import TransformSpec

DESTINATION = DestinationSettings.model_validate(
    {
        "base_url": "https://gateway.example.com/apigw/ingest",
        "account_id": "acc-bench",
        "workspace_id": "ws-bench",
        "auth_token": "tok_bench",
    }
)


def bet_spec() -> TransformSpec:
    entry = sample_mappings()["bet"]
    mapping = TopicMapping.from_settings(MappingSettings.model_validate(entry), DESTINATION)
    schema = load_schema(entry["schema"])
    return TransformSpec(mapping, schema, "com.operator.events.Bet (schema id 1)")


def bench_bet_spec() -> TransformSpec:
    settings = MappingSettings.model_validate(workload.mapping("bench"))
    mapping = TopicMapping.from_settings(settings, DESTINATION)
    return TransformSpec(mapping, workload.load_schema(), "bench.events.BenchBet (schema id 1)")


def bench_bet_payloads(count: int) -> list[bytes]:
    parsed = workload.parsed_schema()
    return [encode_raw(parsed, workload.bet("bench", n)) for n in range(count)]


def bet_payloads(spec: TransformSpec, count: int) -> list[bytes]:
    parsed = parse(spec.writer_schema)
    messages = make_messages(
        "bet", count, lambda record: encode_raw(parsed, record), random.Random(7), wire_format="avro"
    )
    return [m.value for m in messages]


def batched(work: Callable[[Any], Any], items: Sequence[Any], size: int) -> Callable[[], None]:
    def run() -> None:
        for start in range(0, len(items), size):
            kept = [work(item) for item in items[start : start + size]]
            del kept

    return run


def best_us(run: Callable[[], Any], count: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        run()
        best = min(best, time.process_time() - start)
    return best / count * 1e6


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--batch", type=int, default=500, help="records kept at a time (batching.max_records)"
    )
    parser.add_argument("--only", choices=("reference", "compiled"), help="run one transform (for py-spy)")
    parser.add_argument("--record", choices=("sample", "bench"), default="sample", help="which bet")
    args = parser.parse_args(argv)

    if args.record == "bench":
        spec, payloads = bench_bet_spec(), bench_bet_payloads(args.count)
    else:
        spec = bet_spec()
        payloads = bet_payloads(spec, args.count)
    transforms = {"reference": build_reference(spec), "compiled": build_transform(spec)}
    for name in (args.only,) if args.only else transforms:
        transform = transforms[name]
        us = best_us(batched(transform, payloads, args.batch), len(payloads), args.repeat)
        print(f"{name:>10}: {us:6.2f} µs/record  ({1e6 / us:9,.0f} records/s)")
    if args.only:
        return

    # The reference's stages one by one, each over the previous stage's output.
    plan = ReadPlan(parse(spec.writer_schema), spec.writer_label, None, "")
    decoded = [read_datum(plan, p, 0) for p in payloads]
    mapped = [spec.mapping.map(d) for d in decoded]
    endpoint = spec.mapping.endpoint
    stages: dict[str, Callable[[], Any]] = {
        "decode": batched(lambda p: read_datum(plan, p, 0), payloads, args.batch),
        "map": batched(spec.mapping.map, decoded, args.batch),
        "validate": batched(lambda m: validate_record(endpoint, m), mapped, args.batch),
        "serialize": batched(dumps_bytes, mapped, args.batch),
    }
    print("reference stages:")
    for stage, run in stages.items():
        print(f"  {stage:>10}: {best_us(run, len(payloads), args.repeat):6.2f} µs/record")


if __name__ == "__main__":
    main()
