"""Reference protobuf messages for what ig-metrics writes by hand: Prometheus'
client_model (io.prometheus.client.MetricFamily, the protobuf exposition) and
prompb (prometheus.WriteRequest, remote write 1.0), built here from
descriptors with the `protobuf` package, field by field as the .proto files
of client_model and prometheus/prompb (v2.42) declare them. The protobuf
library's own encoder then says what the exact bytes must be."""

from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

F = descriptor_pb2.FieldDescriptorProto
OPTIONAL, REPEATED = F.LABEL_OPTIONAL, F.LABEL_REPEATED
T = {"double": F.TYPE_DOUBLE, "uint64": F.TYPE_UINT64, "int64": F.TYPE_INT64,
     "uint32": F.TYPE_UINT32, "sint32": F.TYPE_SINT32, "sint64": F.TYPE_SINT64,
     "string": F.TYPE_STRING, "enum": F.TYPE_ENUM, "message": F.TYPE_MESSAGE}


def _message(file, name: str, fields: list[tuple], oneofs: tuple[str, ...] = ()):
    message = file.message_type.add(name=name)
    for oneof in oneofs:
        message.oneof_decl.add(name=oneof)
    for spec in fields:
        number, field_name, kind, *rest = spec
        label = REPEATED if "repeated" in rest else OPTIONAL
        entry = message.field.add(name=field_name, number=number, type=T[kind], label=label)
        for extra in rest:
            if extra.startswith("."):
                entry.type_name = extra
            elif extra.startswith("oneof:"):
                entry.oneof_index = oneofs.index(extra.removeprefix("oneof:"))
    return message


def _build():
    pool = descriptor_pool.DescriptorPool()
    client = descriptor_pb2.FileDescriptorProto(name="client_model.proto",
                                                package="io.prometheus.client", syntax="proto3")
    kind = client.enum_type.add(name="MetricType")
    for number, name in enumerate(["COUNTER", "GAUGE", "SUMMARY", "UNTYPED", "HISTOGRAM"]):
        kind.value.add(name=name, number=number)
    c = ".io.prometheus.client."
    _message(client, "LabelPair", [(1, "name", "string"), (2, "value", "string")])
    _message(client, "Gauge", [(1, "value", "double")])
    _message(client, "Counter", [(1, "value", "double")])
    _message(client, "Bucket", [(1, "cumulative_count", "uint64"),
                                (2, "upper_bound", "double")])
    _message(client, "BucketSpan", [(1, "offset", "sint32"), (2, "length", "uint32")])
    _message(client, "Histogram", [
        (1, "sample_count", "uint64"), (2, "sample_sum", "double"),
        (3, "bucket", "message", "repeated", c + "Bucket"),
        (5, "schema", "sint32"), (6, "zero_threshold", "double"), (7, "zero_count", "uint64"),
        (9, "negative_span", "message", "repeated", c + "BucketSpan"),
        (10, "negative_delta", "sint64", "repeated"),
        (12, "positive_span", "message", "repeated", c + "BucketSpan"),
        (13, "positive_delta", "sint64", "repeated")])
    _message(client, "Metric", [
        (1, "label", "message", "repeated", c + "LabelPair"),
        (2, "gauge", "message", c + "Gauge"), (3, "counter", "message", c + "Counter"),
        (7, "histogram", "message", c + "Histogram"), (6, "timestamp_ms", "int64")])
    _message(client, "MetricFamily", [
        (1, "name", "string"), (2, "help", "string"), (3, "type", "enum", c + "MetricType"),
        (4, "metric", "message", "repeated", c + "Metric")])
    pool.Add(client)

    prompb = descriptor_pb2.FileDescriptorProto(name="prompb.proto", package="prometheus",
                                                syntax="proto3")
    p = ".prometheus."
    _message(prompb, "Label", [(1, "name", "string"), (2, "value", "string")])
    _message(prompb, "Sample", [(1, "value", "double"), (2, "timestamp", "int64")])
    _message(prompb, "BucketSpan", [(1, "offset", "sint32"), (2, "length", "uint32")])
    _message(prompb, "Histogram", [
        (1, "count_int", "uint64", "oneof:count"), (2, "count_float", "double", "oneof:count"),
        (3, "sum", "double"), (4, "schema", "sint32"), (5, "zero_threshold", "double"),
        (6, "zero_count_int", "uint64", "oneof:zero_count"),
        (7, "zero_count_float", "double", "oneof:zero_count"),
        (11, "positive_spans", "message", "repeated", p + "BucketSpan"),
        (12, "positive_deltas", "sint64", "repeated"), (15, "timestamp", "int64")],
        oneofs=("count", "zero_count"))
    _message(prompb, "TimeSeries", [
        (1, "labels", "message", "repeated", p + "Label"),
        (2, "samples", "message", "repeated", p + "Sample"),
        (4, "histograms", "message", "repeated", p + "Histogram")])
    _message(prompb, "WriteRequest", [(1, "timeseries", "message", "repeated",
                                       p + "TimeSeries")])
    pool.Add(prompb)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(name))
            for name in ("io.prometheus.client.MetricFamily", "prometheus.WriteRequest")}


_CLASSES = _build()
MetricFamily = _CLASSES["io.prometheus.client.MetricFamily"]
WriteRequest = _CLASSES["prometheus.WriteRequest"]


def read_delimited(data: bytes) -> list:
    """The MetricFamily messages of a delimited exposition body."""
    from google.protobuf.internal.decoder import _DecodeVarint  # noqa: PLC0415
    families, position = [], 0
    while position < len(data):
        size, position = _DecodeVarint(data, position)
        families.append(MetricFamily.FromString(data[position:position + size]))
        position += size
    return families
