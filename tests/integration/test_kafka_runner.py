"""The Maven Central Kafka broker of deploy/kafka serves the contract's topics and keeps its data across a restart."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from deploy.kafka.runner import KafkaBroker, free_port
from shared.topics import RATINGS, UNITS, full_name, topic_specs

pytestmark = pytest.mark.integration

PREFIX = "itest."
UNITS_TOPIC = full_name(PREFIX, UNITS)
GROUP = "itest-runner"
# Vietnamese text checks that values round-trip byte for byte.
KEY, VALUE = b"unit-1", '{"name": "UBND Phường 1"}'.encode()


async def _topic_config(bootstrap: str, topic: str, key: str) -> str:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic, {key: None})])
    finally:
        await admin.close()
    [(error_code, _message, _type, name, entries)] = response.resources
    assert (error_code, name) == (0, topic)
    return str({entry[0]: entry[1] for entry in entries}[key])


async def _units_cleanup_policy(bootstrap: str) -> str:
    return await _topic_config(bootstrap, UNITS_TOPIC, "cleanup.policy")


Record = tuple[bytes | None, bytes | None]


async def _read_all(bootstrap: str, group_id: str | None, partition_count: int) -> list[Record]:
    """Every record of the units topic from the beginning; with a group, its offsets are committed."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group_id,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(UNITS_TOPIC, p) for p in range(partition_count)]
        if group_id is None:
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
        else:
            consumer.subscribe([UNITS_TOPIC])
        end = await consumer.end_offsets(partitions)
        wanted = sum(end.values())
        records: list[Record] = []
        while len(records) < wanted:
            batch = await asyncio.wait_for(consumer.getmany(timeout_ms=1000), 20)
            records += [(r.key, r.value) for rs in batch.values() for r in rs]
        if group_id is not None:
            await consumer.commit()
        return records
    finally:
        await consumer.stop()


async def _committed(bootstrap: str, partition_count: int) -> dict[int, int | None]:
    # Joins the group before asking, as the services' consumers do. While __consumer_offsets is still
    # loading after a restart, an offset fetch outside the group is answered with a group-level
    # "loading" error that aiokafka reads as "no offset" (it checks only per-partition errors);
    # joining waits the loading out, since the coordinator refuses the join until then.
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=GROUP, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.subscribe([UNITS_TOPIC])
        async with asyncio.timeout(60):
            while len(consumer.assignment()) < partition_count:
                await consumer.getmany(timeout_ms=200)
        return {p: await consumer.committed(TopicPartition(UNITS_TOPIC, p)) for p in range(partition_count)}
    finally:
        await consumer.stop()


async def test_broker_serves_topics_and_survives_restart(tmp_path: Path) -> None:
    broker = KafkaBroker(port=free_port(), data_dir=tmp_path / "kafka", num_partitions=2)
    broker.start()
    try:
        await broker.wait_ready(timeout=90)
        specs = topic_specs(PREFIX, broker.num_partitions)
        await broker.create_topics(specs)
        await broker.create_topics(specs)  # idempotent: existing topics are success
        assert await _units_cleanup_policy(broker.bootstrap) == "compact"
        # Ratings are the record scoring is rebuilt from: kept for good, not the broker's 7 days.
        assert await _topic_config(broker.bootstrap, full_name(PREFIX, RATINGS), "retention.ms") == "-1"

        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(UNITS_TOPIC, VALUE, key=KEY)
        finally:
            await producer.stop()
        assert await _read_all(broker.bootstrap, GROUP, broker.num_partitions) == [(KEY, VALUE)]

        committed = await _committed(broker.bootstrap, broker.num_partitions)
        assert set(committed.values()) == {0, 1}  # one partition holds the record, the other is empty
        broker.stop()
        assert broker.running_pid() is None
        # Same object, same data dir and ports: storage must not be reformatted.
        broker.start()
        await broker.wait_ready(timeout=90)

        assert await _read_all(broker.bootstrap, None, broker.num_partitions) == [(KEY, VALUE)]
        assert await _committed(broker.bootstrap, broker.num_partitions) == committed
        assert await _units_cleanup_policy(broker.bootstrap) == "compact"
    finally:
        broker.stop()
