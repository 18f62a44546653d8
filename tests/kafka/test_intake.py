"""The intake without a broker: whatever the accepted topic refuses, loses or takes twice,
the table stage ends with the tables of a clean run, and only confirmed offsets are
committed."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any, Literal

import pytest
from aiokafka.structs import ConsumerRecord, TopicPartition
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm2stream.kafka import chunks
from crm2stream.kafka import intake as intake_module
from crm2stream.kafka.intake import Intake, make_batch
from crm2stream.kafka.names import Names
from crm2stream.kafka.stage import TableStage
from tests.kafka.broker import free_port
from tests.kafka.test_stage import CFG, CLEAN, EVENTS, digest

NAMES = Names.of("t")
#: what the accepted topic does with one send: takes it, loses it, or takes it and still
#: reports a failure (a timeout after the write)
Outcome = Literal["ok", "lost", "ambiguous"]
INPUTS = {
    TopicPartition(NAMES.input, p): [raw for i, raw in enumerate(EVENTS) if i % 2 == p]
    for p in (0, 1)
}


def record(tp: TopicPartition, offset: int, value: bytes) -> ConsumerRecord[bytes, bytes]:
    now = time.time_ns() // 1_000_000  # appended by the broker now
    return ConsumerRecord(tp.topic, tp.partition, offset, now, 1, None, value, None, 0, 0, [])


class FakeConsumer:
    """An input topic of two partitions, read ``per_fetch`` records at a time."""

    def __init__(self, per_fetch: int, producer: FakeProducer) -> None:
        self.per_fetch = per_fetch
        self.producer = producer
        self.positions = dict.fromkeys(INPUTS, 0)
        self.commits: list[dict[TopicPartition, int]] = []
        #: offsets committed beyond what the accepted topic had confirmed then
        self.unconfirmed: list[tuple[TopicPartition, int]] = []

    def assignment(self) -> set[TopicPartition]:
        return set(self.positions)

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, Any]:
        out = {}
        for tp, start in self.positions.items():
            values = INPUTS[tp][start : start + self.per_fetch]
            if values:
                out[tp] = [record(tp, start + i, v) for i, v in enumerate(values)]
                self.positions[tp] = start + len(values)
        return out

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.positions[tp] = offset

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(dict(offsets))
        confirmed = self.producer.confirmed
        self.unconfirmed += [
            (tp, o) for tp, o in offsets.items() if o > confirmed.get(tp.partition, 0)
        ]


class FakeProducer:
    """The accepted topic: each send's outcome from a script (then every send is taken)."""

    def __init__(self, script: list[Outcome]) -> None:
        self.script = list(script)
        self.log: list[bytes] = []
        #: one past the highest input offset confirmed, per input partition
        self.confirmed: dict[int, int] = {}

    async def send(self, topic: str, value: bytes, partition: int) -> asyncio.Future[None]:
        outcome = self.script.pop(0) if self.script else "ok"
        if outcome != "lost":
            self.log.append(value)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if outcome == "ok":
            chunk = chunks.decode_chunk(value)
            self.confirmed[chunk.partition] = max(self.confirmed.get(chunk.partition, 0), chunk.end)
            future.set_result(None)
        else:
            future.set_exception(TimeoutError(f"send {outcome}"))
        return future


class NoProgress:
    def seen(self, tp: Any, offset: int) -> None:
        pass

    def resumed(self, tp: Any, offset: int) -> None:
        pass


def run_intake(script: list[Outcome], per_fetch: int) -> tuple[FakeConsumer, FakeProducer]:
    producer = FakeProducer(script)
    consumer = FakeConsumer(per_fetch, producer)
    intake = Intake("127.0.0.1:9", NAMES, CFG, NoProgress())
    intake.consumer, intake._producer = consumer, producer  # type: ignore[assignment]

    async def drain() -> None:
        ends = {tp: len(values) for tp, values in INPUTS.items()}
        for _ in range(10_000):
            await intake.step()
            if consumer.positions == ends and await intake._confirm():
                await intake._commit(intake.consumer)  # type: ignore[arg-type]
                return
        raise AssertionError("the intake never got to the end of its input")

    asyncio.run(drain())
    return consumer, producer


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    script=st.lists(st.sampled_from(["ok", "ok", "lost", "ambiguous"]), max_size=30),
    per_fetch=st.integers(1, 400),
)
def test_the_stage_counts_every_input_record_once_whatever_the_topic_loses(
    script: list[Outcome], per_fetch: int
) -> None:
    consumer, producer = run_intake(script, per_fetch)
    stage = TableStage(CFG, NAMES)
    stage.apply(list(enumerate(producer.log)))
    assert stage.position.totals == CLEAN.position.totals
    assert digest(stage) == digest(CLEAN)
    assert stage.position.inputs == {tp.partition: len(v) for tp, v in INPUTS.items()}
    assert not consumer.unconfirmed
    assert consumer.commits[-1] == {tp: len(v) for tp, v in INPUTS.items()}


def test_an_offset_is_committed_only_once_confirmed() -> None:
    # the third send (partition 0 of the second batch) is lost and the fourth fails: the
    # commits wait for them to be sent again
    consumer, _ = run_intake(["ok", "ok", "lost", "ambiguous"], per_fetch=100)
    assert consumer.commits and not consumer.unconfirmed


def test_a_batch_has_one_chunk_per_partition_in_partition_order() -> None:
    fetched = {tp: [record(tp, o, v) for o, v in enumerate(INPUTS[tp][:3])] for tp in INPUTS}
    batch = make_batch(dict(reversed(list(fetched.items()))), CFG)
    assert [value[:14] for value in batch.values] == [b'{"partition":0', b'{"partition":1']
    assert batch.starts == dict.fromkeys(INPUTS, 0) and batch.ends == dict.fromkeys(INPUTS, 3)


@pytest.mark.parametrize("outcome", ["lost", "ambiguous"])
def test_a_refused_batch_is_read_again_from_where_it_began(outcome: Outcome) -> None:
    _, producer = run_intake(["ok", "ok", outcome], per_fetch=100)
    landed = Counter(
        (c.partition, c.offsets[0]) for c in map(chunks.decode_chunk, producer.log) if c.offsets
    )
    # the second batch: partition 0's chunk refused, partition 1's taken; both sent again
    assert landed[(0, 100)] == (2 if outcome == "ambiguous" else 1)
    assert landed[(1, 100)] == 2
    assert set(landed.values()) == {1, 2} and len(landed) == 16


def test_an_intake_that_cannot_reach_its_broker_keeps_trying_and_stops_when_told(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(intake_module, "RETRY_FIRST", 600.0)
    intake = Intake(f"127.0.0.1:{free_port()}", NAMES, CFG, NoProgress())

    async def scenario() -> None:
        intake.start()
        async with asyncio.timeout(60):  # the first attempt fails, then a 600 s pause
            while "the intake failed" not in caplog.text:
                await asyncio.sleep(0.05)
            await intake.stop()

    asyncio.run(scenario())
    assert intake.consumer is None and "starting again in 600.0 s" in caplog.text
