"""The seed's Python example (SpeechKit STT v2 streaming docs), run with the official SDK's
generated stubs (PyPI `yandexcloud`) against a SpeechKit v2 compatible endpoint.

Runs in its own virtualenv (.venv-yandexcloud): the SDK pins protobuf < 7 and registers the
same proto file as voiced's stubs. Changes from the seed, each one forced:
- `--endpoint` and a plain channel instead of TLS to stt.api.cloud.yandex.net:443 (loopback);
- `language_code='en-US'` and `--rate`: the local server's model is English;
- errors caught as `grpc.RpcError` (the seed's `grpc._channel._Rendezvous` is private).
Everything else (the spec fields, 16000-byte chunks, `authorization` metadata, the output
format) is the seed's.
"""

import argparse
import sys

import grpc
import yandex.cloud.ai.stt.v2.stt_service_pb2 as stt_service_pb2
import yandex.cloud.ai.stt.v2.stt_service_pb2_grpc as stt_service_pb2_grpc

CHUNK_SIZE = 16000


def gen(folder_id, audio_file_name, rate):
    # Specify the recognition settings.
    specification = stt_service_pb2.RecognitionSpec(
        language_code="en-US",
        profanity_filter=True,
        model="general",
        partial_results=True,
        audio_encoding="LINEAR16_PCM",
        sample_rate_hertz=rate,
    )
    streaming_config = stt_service_pb2.RecognitionConfig(specification=specification, folder_id=folder_id)

    # Send a message with the recognition settings.
    yield stt_service_pb2.StreamingRecognitionRequest(config=streaming_config)

    # Read the audio file and send its contents in chunks.
    with open(audio_file_name, "rb") as f:
        data = f.read(CHUNK_SIZE)
        while data != b"":
            yield stt_service_pb2.StreamingRecognitionRequest(audio_content=data)
            data = f.read(CHUNK_SIZE)


def run(endpoint, folder_id, iam_token, audio_file_name, rate):
    # Establish a connection with the server.
    channel = grpc.insecure_channel(endpoint)
    stub = stt_service_pb2_grpc.SttServiceStub(channel)

    # Send data for recognition.
    it = stub.StreamingRecognize(
        gen(folder_id, audio_file_name, rate), metadata=(("authorization", f"Bearer {iam_token}"),)
    )

    # Process server responses and output the result to the console.
    try:
        for r in it:
            try:
                print("Start chunk: ")
                for alternative in r.chunks[0].alternatives:
                    print("alternative: ", alternative.text)
                print("Is final: ", r.chunks[0].final)
                print("")
            except LookupError:
                print("Not available chunks")
    except grpc.RpcError as err:
        print(f"Error code {err.code()}, message: {err.details()}")
        sys.exit(1)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", required=True, help="host:port of the server")
    parser.add_argument("--token", required=True, help="IAM token")
    parser.add_argument("--folder_id", required=True, help="folder ID")
    parser.add_argument("--path", required=True, help="audio file path")
    parser.add_argument("--rate", type=int, default=8000, help="sample rate of the raw PCM file")
    args = parser.parse_args()

    print(f"stubs: {stt_service_pb2.__file__}", file=sys.stderr)
    run(args.endpoint, args.folder_id, args.token, args.path, args.rate)
