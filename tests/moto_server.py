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

And S3 as AWS runs it at media sizes (issue 14: multi-GiB videos, 100 MiB
parts, a full-object CRC-64/NVME), without holding objects in memory:
- CompleteMultipartUpload streams the parts into the new object's spooled
  temporary file (moto 5.2.5 concatenates every part into one bytearray, and
  a second time to checksum a FULL_OBJECT upload), computing the object's
  checksum on the way (FULL_OBJECT: over the object's bytes; COMPOSITE: over
  the parts' checksums), and verifies the one the client sends
  (`x-amz-checksum-<algorithm>`, `x-amz-checksum-type`): 400 BadDigest on a
  mismatch, and the upload stays (as on AWS, the client may complete again).
- PutObject and UploadPart verify the body's `x-amz-checksum-<algorithm>`
  (header or aws-chunked trailer): 400 BadDigest, nothing stored (moto
  echoes any value). CRC-64/NVME and CRC-32C come from awscrt (tests/run
  installs it: without it moto 5.2.5 silently answers a CRC-32 as the
  CRC-64/NVME).
- ListParts answers `ListPartsResult` (moto 5.2.5: `ListPartsResponse`, which
  the SDKs' parsers refuse) and names each part's checksum and the upload's
  algorithm and type (moto 5.2.5 keeps no part checksum).
- aws-chunked bodies are decoded in linear time (moto appends chunk by chunk
  to an immutable bytes object: quadratic, minutes for a 100 MiB part).
- GetObject answers from the object's file, in 8 MiB reads, instead of
  reading the whole object into one bytes object.

The lock: every request is still handled under the one lock, its answer
included, except the body of a GetObject answer. Under the lock the object's
file is pinned (a duplicate of its descriptor, or the bytes of an object small
enough to live in memory); the lock is released and the body is read from
that pinned copy while other requests run: the GET sends the object as it was
when the request was handled, as S3 does, even if it is overwritten or
deleted meanwhile. A request body over 8 MiB (an UploadPart's 100 MiB) or
chunked is read into a spooled temporary file before the lock is taken (a
client streaming a part as it downloads it would otherwise hold every other
request for the length of its upload); the application reads it from there.

usage: python moto_server.py HOST PORT
"""

import base64
import copy
import gc
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
        _spool_large_body(environ)
        with self.lock:
            _pending_sources.clear()
            result = self.app(environ, start_response)
            if not _pending_sources:
                # Consume the response inside the lock: a streamed body is part of the request.
                answer = list(result)
                if _large_body(environ):
                    _collect_request_cycles()
                return answer
            # A GetObject answer: the object's bytes are pinned here, under the
            # lock, and read outside it (see the module's docstring).
            sources = list(_pending_sources)
            _pending_sources.clear()
            for source in sources:
                source.pin()
        return _StreamedAnswer(result, sources)


def _spool_large_body(environ):
    """A large (or chunked) request body is read before the lock is taken,
    into a spooled temporary file the application then reads from: a client
    that streams an UploadPart's 100 MiB as it downloads them would
    otherwise hold every other request for as long as its upload lasts."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0) or None
    except ValueError:
        return
    chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
    if not chunked and (length is None or length <= _LARGE_BODY):
        return
    stream = environ["wsgi.input"]
    spool = tempfile.SpooledTemporaryFile(max_size=_LARGE_BODY)
    remaining = None if chunked else length
    while remaining is None or remaining > 0:
        chunk = stream.read(_READ if remaining is None else min(_READ, remaining))
        if not chunk:
            break
        spool.write(chunk)
        if remaining is not None:
            remaining -= len(chunk)
    size = spool.tell()
    spool.seek(0)
    environ["wsgi.input"] = spool
    environ["CONTENT_LENGTH"] = str(size)
    # Read to its end: the application reads `size` bytes, no more.
    environ.pop("HTTP_TRANSFER_ENCODING", None)
    environ["wsgi.input_terminated"] = False


def _large_body(environ):
    try:
        return int(environ.get("CONTENT_LENGTH") or 0) > _LARGE_BODY
    except ValueError:
        return False


def _collect_request_cycles():
    """moto's request and response objects form reference cycles that hold
    the request body (an UploadPart's 100 MiB) until the cyclic garbage
    collector happens to run: one part at a time, moto grew by a part's
    size per request (1 GiB after ten parts). A request with a large body is
    followed by a collection of the young generations (where that request's
    objects are: a few ms, whatever moto holds), so that its memory is
    returned at once."""
    gc.collect(1)


_LARGE_BODY = 8 * 1024 * 1024


class _StreamedAnswer:
    """The WSGI iterable of a GetObject answer, read after the lock is released."""

    def __init__(self, result, sources):
        self.result = result
        self.sources = sources

    def __iter__(self):
        return iter(self.result)

    def close(self):
        try:
            if hasattr(self.result, "close"):
                self.result.close()
        finally:
            for source in self.sources:
                source.release()


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


# ---------------------------------------------------------------------------
# S3 at media sizes: checksums, multipart completion, streamed GETs
# ---------------------------------------------------------------------------

import binascii
import codecs
import hashlib
import re
import tempfile

import moto.s3.models as s3_models
from moto.s3.exceptions import EntityTooSmall, InvalidPart, MalformedXML, S3ClientError
from moto.settings import S3_UPLOAD_PART_MIN_SIZE, get_s3_default_key_buffer_size
from moto.utilities.utils import md5_hash

try:
    from awscrt import checksums as _crt
except ImportError:  # tests/run installs it; without it CRC-64/NVME and CRC-32C cannot be checked
    _crt = None

_ALGORITHMS = ("CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256")
_READ = 8 * 1024 * 1024


class _Checksum:
    """One of S3's checksum algorithms, fed piece by piece."""

    def __init__(self, algorithm):
        self.algorithm = algorithm.upper()
        if self.algorithm not in _ALGORITHMS:
            raise ValueError(f"unknown checksum algorithm {algorithm}")
        if self.algorithm in ("CRC32C", "CRC64NVME") and _crt is None:
            raise RuntimeError(f"{self.algorithm} needs awscrt in moto's venv (tests/run installs it)")
        self._hash = hashlib.new(self.algorithm.lower()) if self.algorithm.startswith("SHA") else None
        self._crc = 0

    def update(self, data):
        if self._hash is not None:
            self._hash.update(data)
        elif self.algorithm == "CRC32":
            self._crc = binascii.crc32(data, self._crc)
        elif self.algorithm == "CRC32C":
            self._crc = _crt.crc32c(data, self._crc)
        else:
            self._crc = _crt.crc64nvme(data, self._crc)

    def digest(self):
        if self._hash is not None:
            return self._hash.digest()
        return self._crc.to_bytes(8 if self.algorithm == "CRC64NVME" else 4, "big")

    def base64(self):
        return base64.b64encode(self.digest()).decode()


class BadDigest(S3ClientError):
    code = "BadDigest"

    def __init__(self, algorithm):
        super().__init__("BadDigest", f"The {algorithm} you specified did not match the calculated checksum.")


def _decode_chunked(self, raw):
    """An aws-chunked body: `size[;ext]\r\n data \r\n … 0[;ext]\r\n trailers \r\n`,
    decoded in one pass; the trailers (x-amz-checksum-*) are kept on the response."""
    if not raw:
        self._localaws_trailers = {}
        return b""
    if not isinstance(raw, (bytes, bytearray)):
        raw = raw.read()
    view = memoryview(raw)
    pieces = []
    pos = 0
    while True:
        eol = raw.find(b"\r\n", pos)
        if eol < 0:
            break
        size = int(bytes(view[pos:eol]).split(b";")[0].strip() or b"0", 16)
        pos = eol + 2
        if size == 0:
            break
        pieces.append(view[pos : pos + size])
        pos += size + 2
    trailers = {}
    for line in bytes(view[pos:]).split(b"\r\n"):
        if b":" in line:
            name, value = line.split(b":", 1)
            trailers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    self._localaws_trailers = trailers
    return b"".join(pieces)


def _handle_encoded_body(self, body):
    return _decode_chunked(self, body)


def _handle_v4_chunk_signatures(self, body, content_length):
    decoded = _decode_chunked(self, body)
    return decoded[:content_length]


s3_responses.S3Response._handle_encoded_body = _handle_encoded_body
s3_responses.S3Response._handle_v4_chunk_signatures = _handle_v4_chunk_signatures


def _verify_body_checksum(self):
    """The body's x-amz-checksum-<algorithm> (header or trailer) against its bytes."""
    if self.headers.get("x-amz-copy-source"):
        return
    body = self.body if isinstance(self.body, (bytes, bytearray)) else self.raw_body
    if isinstance(body, str):
        body = body.encode("utf-8")
    trailers = getattr(self, "_localaws_trailers", None) or {}
    for algorithm in _ALGORITHMS:
        name = f"x-amz-checksum-{algorithm.lower()}"
        given = self.headers.get(name) or trailers.get(name)
        if not given:
            continue
        checksum = _Checksum(algorithm)
        checksum.update(body or b"")
        if checksum.base64() != given.strip():
            raise BadDigest(algorithm)


def _verifying(name):
    original = getattr(s3_responses.S3Response, name)

    def method(self):
        _verify_body_checksum(self)
        return original(self)

    method.__name__ = name
    return method


for _name in ("put_object", "upload_part"):
    setattr(s3_responses.S3Response, _name, _verifying(_name))

_verified_upload_part = s3_responses.S3Response.upload_part


def _upload_part(self):
    """UploadPart, and the part's checksum kept for ListParts (AWS lists each
    part's checksum of an upload created with a checksum algorithm; moto 5.2.5
    neither keeps nor lists it)."""
    answer = _verified_upload_part(self)
    try:
        multipart = self.backend.get_bucket(self.bucket_name).multiparts[self._get_param("uploadId")]
        part = multipart.parts[self._get_int_param("partNumber")]
    except KeyError:
        return answer
    algorithm = (multipart.metadata.get("x-amz-checksum-algorithm") or "").upper()
    if algorithm in _ALGORITHMS:
        body = self.body if isinstance(self.body, (bytes, bytearray)) else self.raw_body
        checksum = _Checksum(algorithm)
        checksum.update(body or b"")
        part.localaws_checksum = (algorithm, checksum.base64())
    return answer


s3_responses.S3Response.upload_part = _upload_part
_original_list_parts = s3_responses.S3Response.list_parts


def _list_parts(self):
    status, headers, body = _original_list_parts(self)
    # ListParts answers as S3 does: moto 5.2.5's serializer names the root
    # element `ListPartsResponse`; S3 (and so every SDK's parser, the Rust
    # SDK's included) says `ListPartsResult`.
    if isinstance(body, bytes):
        body = body.decode("utf-8")
    if isinstance(body, str):
        body = body.replace("<ListPartsResponse", "<ListPartsResult", 1).replace("</ListPartsResponse>", "</ListPartsResult>", 1)
    try:
        multipart = self.backend.get_bucket(self.bucket_name).multiparts[self._get_param("uploadId")]
    except KeyError:
        return status, headers, body
    algorithm = (multipart.metadata.get("x-amz-checksum-algorithm") or "").upper()
    if status != 200 or algorithm not in _ALGORITHMS or not isinstance(body, (bytes, str)):
        return status, headers, body
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    checksum_type = multipart.metadata.get("x-amz-checksum-type") or ("FULL_OBJECT" if algorithm == "CRC64NVME" else "COMPOSITE")

    def with_checksum(match):
        part = multipart.parts.get(int(match.group(1)))
        kept = getattr(part, "localaws_checksum", None)
        if not kept:
            return match.group(0)
        return f"{match.group(0)}<Checksum{kept[0]}>{kept[1]}</Checksum{kept[0]}>"

    text = re.sub(r"<PartNumber>(\d+)</PartNumber>", with_checksum, text)
    text = re.sub(
        r"(</ListPartsResult>\s*)$",
        lambda m: f"<ChecksumAlgorithm>{algorithm}</ChecksumAlgorithm><ChecksumType>{checksum_type}</ChecksumType>{m.group(1)}",
        text,
    )
    return status, headers, text.encode("utf-8") if isinstance(body, bytes) else text


s3_responses.S3Response.list_parts = _list_parts

# The headers of the CompleteMultipartUpload being handled (requests are serialized).
_complete_headers = {}
_original_key_response_post = s3_responses.S3Response._key_response_post


def _key_response_post(self, request, body, bucket_name, query, key_name):
    global _complete_headers
    _complete_headers = {k.lower(): v for k, v in request.headers.items()} if "uploadId" in query else {}
    try:
        answer = _original_key_response_post(self, request, body, bucket_name, query, key_name)
    finally:
        _complete_headers = {}
    # AWS names the object's checksum in the CompleteMultipartUpload result; moto 5.2.5 does not.
    if "uploadId" in query and isinstance(answer, tuple) and answer[0] == 200:
        key = self.backend.get_object(bucket_name, key_name)
        status, headers, text = answer
        if key is not None and key.checksum_algorithm and key.checksum_value:
            value = key.checksum_value if key.checksum_type != "COMPOSITE" else f"{key.checksum_value}-{key.checksum_parts}"
            extra = f"<Checksum{key.checksum_algorithm.upper()}>{value}</Checksum{key.checksum_algorithm.upper()}><ChecksumType>{key.checksum_type}</ChecksumType>"
            if isinstance(text, bytes):
                text = text.replace(b"</CompleteMultipartUploadResult>", extra.encode() + b"</CompleteMultipartUploadResult>")
            elif isinstance(text, str):
                text = text.replace("</CompleteMultipartUploadResult>", extra + "</CompleteMultipartUploadResult>")
            answer = (status, headers, text)
    return answer


s3_responses.S3Response._key_response_post = _key_response_post


class _Assembled:
    """A completed upload's bytes: a spooled temporary file the new key adopts."""

    def __init__(self, file, size):
        self.file = file
        self.size = size


def _complete(self, body):
    algorithm = (self.metadata.get("x-amz-checksum-algorithm") or "CRC64NVME").upper()
    checksum_type = self.metadata.get("x-amz-checksum-type") or ("FULL_OBJECT" if algorithm == "CRC64NVME" else "COMPOSITE")
    decode_hex = codecs.getdecoder("hex_codec")
    md5s = bytearray()
    parts = []
    last = None
    for pn, etag in body:
        part = self.parts.get(pn)
        part_etag = None
        if part is not None:
            part_etag = part.etag.replace('"', "")
            etag = etag.replace('"', "")
        if part is None or part_etag != etag:
            raise InvalidPart()
        if last is not None and last.contentsize < S3_UPLOAD_PART_MIN_SIZE:
            raise EntityTooSmall()
        md5s.extend(decode_hex(part_etag)[0])
        parts.append(part)
        last = part
    if not parts:
        raise MalformedXML
    given_type = _complete_headers.get("x-amz-checksum-type")
    if given_type and given_type.upper() != checksum_type:
        raise BadDigest(algorithm)
    out = tempfile.SpooledTemporaryFile(max_size=get_s3_default_key_buffer_size())
    try:
        whole = _Checksum(algorithm)
        composite = bytearray()
        size = 0
        for part in parts:
            per_part = _Checksum(algorithm) if checksum_type == "COMPOSITE" else whole
            with part.lock:
                part._value_buffer.seek(0)
                while True:
                    chunk = part._value_buffer.read(_READ)
                    if not chunk:
                        break
                    out.write(chunk)
                    size += len(chunk)
                    per_part.update(chunk)
            if checksum_type == "COMPOSITE":
                composite.extend(per_part.digest())
        if checksum_type == "COMPOSITE":
            of_parts = _Checksum(algorithm)
            of_parts.update(bytes(composite))
            value, count = of_parts.base64(), len(parts)
        else:
            value, count = whole.base64(), 1
        given = _complete_headers.get(f"x-amz-checksum-{algorithm.lower()}")
        if given and given.strip().split("-")[0] != value:
            raise BadDigest(algorithm)
    except BaseException:
        out.close()
        raise
    full_etag = md5_hash()
    full_etag.update(bytes(md5s))
    return _Assembled(out, size), f"{full_etag.hexdigest()}-{len(parts)}", (checksum_type, value, count)


s3_models.FakeMultipart.complete = _complete

_value_property = s3_models.FakeKey.value


def _set_value(self, new_value):
    if isinstance(new_value, _Assembled):
        old = self._value_buffer
        self._value_buffer = new_value.file
        self.contentsize = new_value.size
        old.close()
        return
    _value_property.fset(self, new_value)


s3_models.FakeKey.value = property(_value_property.fget, _set_value)


class _Source:
    """The bytes of one key for a GetObject answer: pinned under the lock
    (a duplicate descriptor of its file, or its bytes when it is in memory),
    read outside it."""

    def __init__(self, key):
        self.key = key
        self.fd = None
        self.data = None

    def pin(self):
        buffer = self.key._value_buffer
        with self.key.lock:
            if getattr(buffer, "_rolled", False):
                # The descriptor is read with pread, below Python's write
                # buffer: what is still in that buffer (an object's last few
                # KiB) must reach the file first.
                buffer.flush()
                self.fd = os.dup(buffer.fileno())
            else:
                buffer.seek(0)
                self.data = buffer.read()

    def read(self, offset, length):
        if self.fd is not None:
            return os.pread(self.fd, length, offset)
        if self.data is not None:
            return self.data[offset : offset + length]
        with self.key.lock:  # not pinned (moto used without Serialized)
            self.key._value_buffer.seek(offset)
            return self.key._value_buffer.read(length)

    def release(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        self.data = None


_pending_sources = []


class _KeyBody:
    """A GetObject answer's body: len() and slices (moto's Range handling) without reading; iterated in 8 MiB reads."""

    def __init__(self, source, start, stop):
        self.source = source
        self.start = start
        self.stop = stop

    def __len__(self):
        return self.stop - self.start

    def __getitem__(self, index):
        if not isinstance(index, slice):
            raise TypeError("a GetObject body is sliced, not indexed")
        start, stop, step = index.indices(len(self))
        if step != 1:
            raise ValueError("step")
        return _KeyBody(self.source, self.start + start, self.start + max(start, stop))

    def __iter__(self):
        offset = self.start
        while offset < self.stop:
            chunk = self.source.read(offset, min(_READ, self.stop - offset))
            if not chunk:
                raise IOError(f"object {self.source.key.name} ended at {offset} of {self.stop} bytes")
            offset += len(chunk)
            yield chunk


_streaming_get = False
_value_getter = _value_property.fget


def _get_value(self):
    if _streaming_get:
        source = _Source(self)
        _pending_sources.append(source)
        return _KeyBody(source, 0, self.contentsize)
    return _value_getter(self)


s3_models.FakeKey.value = property(_get_value, _set_value)
_original_get_object = s3_responses.S3Response.get_object


def _get_object(self):
    global _streaming_get
    _streaming_get = True
    try:
        return _original_get_object(self)
    finally:
        _streaming_get = False


s3_responses.S3Response.get_object = _get_object


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    os.environ.setdefault("MOTO_PORT", str(port))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(host, port, Serialized(app), threaded=True, use_reloader=False, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
