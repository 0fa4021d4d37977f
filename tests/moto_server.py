"""moto in server mode on loopback, answering one request at a time.

moto's own `moto_server` handles requests on many threads without per-item
locking, so two conditional DynamoDB writes to the same item can both succeed
there (real DynamoDB serialises them). The pipeline's suite lease relies on
that atomicity, and its tests race executions on purpose: this launcher keeps
moto's threaded HTTP server (idle keep-alive connections must not block
others) but runs the application under one lock.

It also makes TransactWriteItems cost what it costs on DynamoDB: moto 5.2.5
deep-copies every table a transaction touches, on every transaction, to roll
back a cancelled one. For the packages table that is the whole store per
recorded package: recording 2,000 packages took minutes and grew with the
square of the count. Here the items the transaction names are saved instead,
and put back exactly as they were when it is cancelled (the only state a
transaction can change). The answers are unchanged.

And S3's events to EventBridge say how an object was created, as AWS's do:
moto 5.2.5 writes `"reason": "ObjectCreated"` for every creation, AWS writes
`PutObject`, `POST Object`, `CopyObject` or `CompleteMultipartUpload`. The
staging rule (statemachine/staging-rule.json) tells uploads from the
pipeline's own moves by that field.

usage: python moto_server.py HOST PORT
"""

import base64
import copy
import os
import sys
import threading

import moto.dynamodb.models as dynamodb_models
import moto.events.models as events_models
import moto.s3.notifications as s3_notifications
import moto.s3.responses as s3_responses
from moto.dynamodb.models import DynamoDBBackend
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple


class Serialized:
    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        with self.lock:
            # Consume the response inside the lock: a streamed body is part of the request.
            return list(self.app(environ, start_response))


class _TablesNotCopied:
    """Stands in for the `copy` module inside moto's transact_write_items:
    tables are not copied (their items are saved below), anything else is."""

    @staticmethod
    def deepcopy(value, *args):
        if isinstance(value, dynamodb_models.Table):
            return value
        return copy.deepcopy(value, *args)


_original_transact_write_items = DynamoDBBackend.transact_write_items


def _key_of(backend, op_type, op):
    table = backend.tables.get(op.get("TableName"))
    if table is None:
        return None
    if op_type == "Put":
        attrs = op.get("Item") or {}
        key = {table.hash_key_attr: attrs.get(table.hash_key_attr)}
        if table.range_key_attr is not None:
            key[table.range_key_attr] = attrs.get(table.range_key_attr)
        if any(v is None for v in key.values()):
            return None
        return key
    return op.get("Key")


def transact_write_items(self, transact_items):
    saved = []
    for entry in transact_items:
        if len(entry) != 1:
            continue  # moto refuses it itself, before writing anything
        op_type, op = next(iter(entry.items()))
        key = _key_of(self, op_type, op)
        if key is None:
            continue
        try:
            before = self.get_item(op["TableName"], key)
        except Exception:
            continue  # an invalid key: moto answers the error, nothing is written
        saved.append((op["TableName"], key, copy.deepcopy(before.to_json()["Attributes"]) if before else None))
    dynamodb_models.copy = _TablesNotCopied
    try:
        return _original_transact_write_items(self, transact_items)
    except Exception:
        # Cancelled: every named item back as it was (moto's own rollback
        # restored the same table objects, i.e. did nothing).
        for table_name, key, attributes in reversed(saved):
            if attributes is None:
                self.delete_item(table_name, key)
            else:
                self.put_item(table_name, attributes)
        raise
    finally:
        dynamodb_models.copy = copy


DynamoDBBackend.transact_write_items = transact_write_items

# The `reason` of S3's "Object Created" events on EventBridge, by how the
# object was created (AWS's EventBridge S3 event reference).
_AWS_REASONS = {
    "Put": "PutObject",
    "Post": "POST Object",
    "Copy": "CopyObject",
    "CompleteMultipartUpload": "CompleteMultipartUpload",
}
_original_send_event_bridge_message = s3_notifications._send_event_bridge_message


def _send_event_bridge_message(account_id, bucket, event_name, key):
    kind = str(getattr(event_name, "value", event_name)).split(":")[-1]
    reason = _AWS_REASONS.get(kind)
    if reason is None:
        return _original_send_event_bridge_message(account_id, bucket, event_name, key)
    rule_class = events_models.Rule
    send_to_targets = rule_class.send_to_targets

    def with_reason(self, event, *args, **kwargs):
        event = dict(event)
        event["detail"] = {**event.get("detail", {}), "reason": reason}
        return send_to_targets(self, event, *args, **kwargs)

    # Requests are serialised (Serialized below): nothing else runs meanwhile.
    rule_class.send_to_targets = with_reason
    try:
        return _original_send_event_bridge_message(account_id, bucket, event_name, key)
    finally:
        rule_class.send_to_targets = send_to_targets


s3_notifications._send_event_bridge_message = _send_event_bridge_message


# ListParts answers as S3 does: moto 5.2.5's serializer names the root element
# `ListPartsResponse`; S3 (and so every SDK's parser) says `ListPartsResult`.
# The media sync resumes an upload from the parts ListParts names.
_original_list_parts = s3_responses.S3Response.list_parts


def list_parts(self):
    status, headers, body = _original_list_parts(self)
    if isinstance(body, bytes):
        body = body.decode("utf-8")
    body = body.replace("<ListPartsResponse", "<ListPartsResult", 1).replace("</ListPartsResponse>", "</ListPartsResult>", 1)
    return status, headers, body


s3_responses.S3Response.list_parts = list_parts


# A body checked against the CRC-64/NVME its request names, as S3 checks it
# (PutObject and UploadPart with `x-amz-checksum-crc64nvme`): moto 5.2.5 stores
# the header's value without comparing it with the bytes. A mismatch is S3's
# 400 BadDigest, and nothing is written.
_original_key_response_put = s3_responses.S3Response._key_response_put


def _key_response_put(self, query, key_name):
    claimed = self.headers.get("x-amz-checksum-crc64nvme")
    if claimed:
        from awscrt import checksums

        body = self.body or b""
        actual = base64.b64encode(checksums.crc64nvme(body).to_bytes(8, "big")).decode()
        if actual != claimed:
            message = "The CRC64NVME you specified did not match the calculated checksum."
            xml = (
                '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>BadDigest</Code>'
                f"<Message>{message}</Message></Error>"
            )
            return 400, {"Content-Type": "application/xml"}, xml
    return _original_key_response_put(self, query, key_name)


s3_responses.S3Response._key_response_put = _key_response_put


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    os.environ.setdefault("MOTO_PORT", str(port))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(host, port, Serialized(app), threaded=True, use_reloader=False, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
