"""Compare the official SDK's descriptors of the streaming method (and every message it
reaches) with voiced's, read as a serialized FileDescriptorProto from stdin.

Runs in .venv-yandexcloud (the SDK's stubs cannot share a process with voiced's). Options
(google.api.http, validation annotations) are stripped: they are not on the wire. Prints a
JSON report; exits 1 on any difference.
"""

import json
import sys

import yandex.cloud.ai.stt.v2.stt_service_pb2 as sdk_stt
from google.protobuf import descriptor_pb2, json_format

METHOD = "StreamingRecognize"


def strip_options(message):
    """Drop every `options` field, recursively (annotations only, nothing on the wire)."""
    for field, value in list(message.ListFields()):
        if field.name == "options":
            message.ClearField("options")
        elif field.type == field.TYPE_MESSAGE:
            for item in value if field.is_repeated else [value]:
                strip_options(item)


def reachable_messages(file_proto, method):
    """Full names of the file's messages the method uses, directly or through fields."""
    prefix = "." + file_proto.package + "."
    by_name = {prefix + m.name: m for m in file_proto.message_type}
    todo, seen = [method.input_type, method.output_type], set()
    while todo:
        name = todo.pop()
        if name in seen or name not in by_name:
            continue
        seen.add(name)
        todo.extend(f.type_name for f in by_name[name].field if f.type_name)
    return {name: by_name[name] for name in seen}


def view(file_proto):
    strip_options(file_proto)
    service = file_proto.service[0]
    method = next(m for m in service.method if m.name == METHOD)
    return {
        "package": file_proto.package,
        "syntax": file_proto.syntax,
        "service": service.name,
        "method": json_format.MessageToDict(method, preserving_proto_field_name=True),
        "messages": {
            name: json_format.MessageToDict(m, preserving_proto_field_name=True)
            for name, m in reachable_messages(file_proto, method).items()
        },
    }


def main():
    sdk = descriptor_pb2.FileDescriptorProto()
    sdk_stt.DESCRIPTOR.CopyToProto(sdk)
    ours = descriptor_pb2.FileDescriptorProto.FromString(sys.stdin.buffer.read())
    sdk_view, our_view = view(sdk), view(ours)
    differences = [key for key in sdk_view if key != "messages" and sdk_view[key] != our_view[key]]
    differences += [
        "message " + name
        for name in sorted(sdk_view["messages"].keys() | our_view["messages"].keys())
        if sdk_view["messages"].get(name) != our_view["messages"].get(name)
    ]
    print(
        json.dumps(
            {"compared": sorted(sdk_view["messages"]), "differences": differences, "sdk": sdk_view, "ours": our_view},
            indent=1,
            sort_keys=True,
        )
    )
    sys.exit(1 if differences else 0)


if __name__ == "__main__":
    main()
