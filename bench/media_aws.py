"""bench/media.sh's AWS half, run with the moto venv's python (boto3):
setting up what the media functions need on moto, resetting it between
runs, reading the outcome; and the tools a user would write instead of
pkgrelay's list-media and download-media (plain urllib + json, boto3).

usage: python media_aws.py COMMAND ARGS...   (AWS_ENDPOINT_URL names moto)

  setup BUCKET SECRET_NAME COOKIE_TOKEN USER_ID   bucket + secret; prints `secret_arn=`, `secret_version=`
  table TABLE                                     a fresh status table (pk S, on demand, GSI by-status)
  reset BUCKET TABLE KEY PK                       delete the object and the status item (the next copy starts over)
  status TABLE PK                                 the status item as JSON (plain values)
  head BUCKET KEY                                 `size=` and `crc64nvme=` of the object
  item API COOKIE USER ID OUT                     the MediaItem (shared/src/media/mod.rs) of ID, from the listing
  get-items BUCKET KEY                            count of items.json
  # the peers
  py-list API COOKIE USER OUT                     every page with urllib, ready items to OUT (JSON)
  py-plan API COOKIE USER TABLE BUCKET KEY        the same + BatchGetItem of every item (100 a request), new
                                                  items PENDING (BatchWriteItem), the due items PUT to
                                                  s3://BUCKET/KEY (what list-media does)
  py-copy URL BUCKET KEY                          urllib GET streamed into boto3's upload_fileobj (its defaults)
  # where list-media's time goes on moto
  probe-reads TABLE N                             list-media's reads of N items from boto3, timed: 100-key
                                                  BatchGetItem of full items (ConsistentRead), the same with
                                                  a pk + status projection, the by-status Query of PENDING
"""

import json
import os
import sys
import time
import urllib.request

import boto3
from botocore.config import Config

ACCEPT = "application/vnd.gopro.jk.media+json; version=2.0.0"
UA = "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0"
FIELDS = "id,type,filename,file_extension,file_size,captured_at,created_at,ready_to_view,camera_model"


def client(service):
    return boto3.client(
        service,
        endpoint_url=os.environ["AWS_ENDPOINT_URL"],
        region_name=os.environ.get("AWS_REGION", "us-east-1"),
        config=Config(s3={"addressing_style": "path"}, read_timeout=900, retries={"max_attempts": 2}),
    )


def api_get(api, cookie, user, path):
    req = urllib.request.Request(
        api + path,
        headers={"Accept": ACCEPT, "User-Agent": UA, "Cookie": f"gp_access_token={cookie}; gp_user_id={user}"},
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.load(r)


def pages(api, cookie, user):
    page = 1
    while True:
        doc = api_get(api, cookie, user, f"/media/search?fields={FIELDS}&order_by=created_at&per_page=100&page={page}")
        media = doc["_embedded"]["media"]
        yield from media
        if not media or page >= doc["_pages"]["total_pages"]:
            return
        page += 1


def as_item(m):
    return {
        "id": m["id"],
        "kind": m.get("type", ""),
        "filename": m.get("filename") or "",
        "file_extension": m.get("file_extension") or "",
        "file_size": m.get("file_size"),
        "captured_at": m.get("captured_at") or m.get("created_at"),
        "state": m.get("ready_to_view") or "",
        "camera_model": m.get("camera_model"),
    }


def ready_items(api, cookie, user):
    seen, items = set(), []
    for m in pages(api, cookie, user):
        if m["id"] in seen or m.get("ready_to_view") != "ready":
            continue
        seen.add(m["id"])
        items.append(as_item(m))
    return items


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "setup":
        bucket, name, cookie, user = args
        client("s3").create_bucket(Bucket=bucket)
        secret = json.dumps({"kind": "cookie", "access_token": cookie, "user_id": user})
        made = client("secretsmanager").create_secret(Name=name, SecretString=secret)
        print(f"secret_arn={made['ARN']}")
        print(f"secret_version={made['VersionId']}")
    elif cmd == "table":
        (table,) = args
        client("dynamodb").create_table(
            TableName=table,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "status", "AttributeType": "S"},
                {"AttributeName": "updated_at", "AttributeType": "S"},
            ],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": "by-status",
                    "KeySchema": [
                        {"AttributeName": "status", "KeyType": "HASH"},
                        {"AttributeName": "updated_at", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "ALL"},
                }
            ],
        )
    elif cmd == "reset":
        bucket, table, key, pk = args
        client("s3").delete_object(Bucket=bucket, Key=key)
        s3 = client("s3")
        for up in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
            s3.abort_multipart_upload(Bucket=bucket, Key=up["Key"], UploadId=up["UploadId"])
        client("dynamodb").delete_item(TableName=table, Key={"pk": {"S": pk}})
    elif cmd == "status":
        table, pk = args
        from boto3.dynamodb.types import TypeDeserializer

        item = client("dynamodb").get_item(TableName=table, Key={"pk": {"S": pk}}, ConsistentRead=True).get("Item")
        d = TypeDeserializer()
        plain = {k: d.deserialize(v) for k, v in (item or {}).items()}
        print(json.dumps(plain, default=lambda v: int(v) if v == int(v) else float(v)))
    elif cmd == "head":
        bucket, key = args
        h = client("s3").head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
        print(f"size={h['ContentLength']}")
        print(f"crc64nvme={h.get('ChecksumCRC64NVME', '')}")
    elif cmd == "item":
        api, cookie, user, media_id, out = args
        for m in pages(api, cookie, user):
            if m["id"] == media_id:
                with open(out, "w") as f:
                    json.dump(as_item(m), f)
                return
        sys.exit(f"{media_id} is not listed")
    elif cmd == "get-items":
        bucket, key = args
        body = client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
        print(f"items={len(json.loads(body))}")
    elif cmd == "py-list":
        api, cookie, user, out = args
        items = ready_items(api, cookie, user)
        with open(out, "w") as f:
            json.dump(items, f)
        print(f"items={len(items)}")
    elif cmd == "py-plan":
        api, cookie, user, table, bucket, key = args
        items = ready_items(api, cookie, user)
        ddb = client("dynamodb")
        done, seen_rows = set(), set()
        for i in range(0, len(items), 100):
            keys = [{"pk": {"S": f"gopro#{it['id']}"}} for it in items[i : i + 100]]
            request = {table: {"Keys": keys, "ProjectionExpression": "pk, #s", "ExpressionAttributeNames": {"#s": "status"}}}
            while request:
                answer = ddb.batch_get_item(RequestItems=request)
                for row in answer["Responses"].get(table, []):
                    seen_rows.add(row["pk"]["S"])
                    if row.get("status", {}).get("S") == "COMPLETED":
                        done.add(row["pk"]["S"])
                request = answer.get("UnprocessedKeys") or None
        due = [it for it in items if f"gopro#{it['id']}" not in done]
        # New items recorded PENDING, as list-media records them (BatchWriteItem, 25 a request).
        with boto3.resource("dynamodb", endpoint_url=os.environ["AWS_ENDPOINT_URL"]).Table(table).batch_writer() as w:
            now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            for it in due:
                if f"gopro#{it['id']}" not in seen_rows:
                    w.put_item(Item={"pk": f"gopro#{it['id']}", "provider": "gopro", "media_id": it["id"], "status": "PENDING",
                                     "attempts": 0, "bytes": 0, "captured_at": it["captured_at"], "updated_at": now})
        client("s3").put_object(Bucket=bucket, Key=key, Body=json.dumps(due).encode())
        print(f"items={len(due)}")
    elif cmd == "py-copy":
        url, bucket, key = args
        t0 = time.time()
        with urllib.request.urlopen(url, timeout=60) as r:
            client("s3").upload_fileobj(r, bucket, key)
        size = client("s3").head_object(Bucket=bucket, Key=key)["ContentLength"]
        print(f"bytes={size}")
        print(f"copy_s={time.time() - t0:.3f}")
    elif cmd == "probe-reads":
        table, n = args[0], int(args[1])
        ddb = client("dynamodb")
        keys = [f"gopro#M{i:07}" for i in range(n)]
        variants = [
            ("full items, ConsistentRead", {"ConsistentRead": True}),
            ("pk + status only", {"ProjectionExpression": "pk, #s", "ExpressionAttributeNames": {"#s": "status"}}),
        ]
        for label, extra in variants:
            t0 = time.time()
            for i in range(0, n, 100):
                ddb.batch_get_item(RequestItems={table: {"Keys": [{"pk": {"S": k}} for k in keys[i : i + 100]], **extra}})
            print(f"{(n + 99) // 100} BatchGetItem, {label}: {time.time() - t0:.2f} s")
        t0, found, start = time.time(), 0, None
        while True:
            more = {"ExclusiveStartKey": start} if start else {}
            r = ddb.query(
                TableName=table,
                IndexName="by-status",
                KeyConditionExpression="#s = :s",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":s": {"S": "PENDING"}},
                ProjectionExpression="pk",
                **more,
            )
            found += len(r["Items"])
            start = r.get("LastEvaluatedKey")
            if not start:
                break
        print(f"Query by-status PENDING: {found} keys, {time.time() - t0:.2f} s")
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
