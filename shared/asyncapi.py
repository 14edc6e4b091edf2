"""The AsyncAPI 3.0 document of Hài Lòng's events, generated from the pydantic schemas in shared.events."""

from __future__ import annotations

from typing import Any

from shared import events
from shared.topics import DLQ_SUFFIX

PRODUCERS = {
    "units.v1": "intake", "dossiers.v1": "intake", "ratings.v1": "intake", "assessments.v1": "intake",
    "verifications.v1": "workflow",
    "scores.v1": "scoring", "tickets.v1": "workflow", "publications.v1": "publisher",
}


def _message_name(event_type: str) -> str:
    return "".join(part.capitalize() for part in event_type.removeprefix("vn.hailong.").removesuffix(".v1").split("."))


def asyncapi_document() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for topic, types in events.EVENTS_BY_TOPIC.items():
        channel_messages = {}
        for event_type in types:
            name = _message_name(event_type)
            model = events.DATA_SCHEMAS[event_type]
            schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            for def_name, definition in schema.pop("$defs", {}).items():
                schemas[def_name] = definition
            schemas[model.__name__] = schema
            messages[name] = {
                "name": name,
                "title": event_type,
                "summary": (model.__doc__ or event_type).strip().splitlines()[0],
                "contentType": "application/cloudevents+json",
                "headers": {"$ref": "#/components/schemas/KafkaHeaders"},
                "payload": {
                    "allOf": [
                        {"$ref": "#/components/schemas/CloudEvent"},
                        {"type": "object", "properties": {
                            "type": {"const": event_type},
                            "data": {"$ref": f"#/components/schemas/{model.__name__}"},
                        }},
                    ]
                },
            }
            channel_messages[name] = {"$ref": f"#/components/messages/{name}"}
        channel_id = topic.replace(".", "_")
        channels[channel_id] = {
            "address": "{prefix}" + topic,
            "description": f"Key: the unit code. Produced by {PRODUCERS[topic]}. Twin dead-letter topic: {topic}{DLQ_SUFFIX}.",
            "parameters": {"prefix": {"default": "hailong.", "description": "HAILONG_TOPIC_PREFIX"}},
            "messages": channel_messages,
        }
        operations[f"publish_{channel_id}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "summary": f"{PRODUCERS[topic]} publishes through its transactional outbox",
        }
    schemas["CloudEvent"] = events.CloudEvent.model_json_schema()
    schemas["KafkaHeaders"] = {
        "type": "object",
        "properties": {
            "traceparent": {"type": "string", "description": "W3C trace context"},
            "hailong-error": {"type": "string", "description": "on .dlq records: why the record failed"},
            "hailong-original-topic": {"type": "string"},
            "hailong-original-partition": {"type": "string"},
            "hailong-original-offset": {"type": "string"},
            "hailong-failed-by": {"type": "string", "description": "the consuming service"},
        },
    }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Hài Lòng events",
            "version": "1.0.0",
            "description": "CloudEvents 1.0 in structured JSON mode on Kafka. The event `id` is the deduplication key.",
        },
        "defaultContentType": "application/cloudevents+json",
        "channels": channels,
        "operations": operations,
        "components": {"schemas": schemas, "messages": messages},
    }
