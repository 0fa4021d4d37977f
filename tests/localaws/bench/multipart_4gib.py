"""A 4 GiB multipart upload (100 MiB parts, CRC-64/NVME per part and for the
whole object, as download-media sends it), CompleteMultipartUpload and a
streamed GetObject against tests/moto_server.py, with moto's peak RSS.

usage: <moto venv>/bin/python multipart_4gib.py [SIZE_MIB] [PART_MIB]
Starts its own moto on a free 127.0.0.1 port and stops it by its PID.

Through localaws instead (the gateway, IAM and KMS checks in the path):
BENCH_ENDPOINT=<localaws URL> BENCH_ACCESS_KEY=<a function's key>
BENCH_BUCKET=<bucket> BENCH_PREFIX=media/ BENCH_MOTO_PID=<moto's pid>
[BENCH_GATEWAY_PID=<localaws' pid>]: nothing is started.
"""

import base64
import os
import socket
import subprocess
import sys
import time
import urllib.request

import boto3
from awscrt import checksums
from botocore.config import Config

HERE = os.path.dirname(os.path.abspath(__file__))
MOTO_SERVER = os.environ.get("MOTO_SERVER") or os.path.join(HERE, "..", "..", "moto_server.py")
MIB = 1024 * 1024


def rss_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def main():
    size_mib = int(sys.argv[1]) if len(sys.argv) > 1 else 4096
    part_mib = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    endpoint = os.environ.get("BENCH_ENDPOINT")
    bucket = os.environ.get("BENCH_BUCKET", "bench")
    key = os.environ.get("BENCH_PREFIX", "") + "video.mp4"
    gateway_pid = int(os.environ["BENCH_GATEWAY_PID"]) if os.environ.get("BENCH_GATEWAY_PID") else None
    if endpoint:
        moto = type("Moto", (), {"pid": int(os.environ["BENCH_MOTO_PID"]), "terminate": lambda self: None, "wait": lambda self: None})()
    else:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        endpoint = f"http://127.0.0.1:{port}"
        moto = subprocess.Popen([sys.executable, MOTO_SERVER, "127.0.0.1", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    gateway_peak = [0]
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/" if not gateway_pid else f"{endpoint}/_localaws/health", timeout=1)
                break
            except Exception:
                time.sleep(0.2)
        peak = [0]

        def sample():
            peak[0] = max(peak[0], rss_kib(moto.pid, "VmRSS"))
            if gateway_pid:
                gateway_peak[0] = max(gateway_peak[0], rss_kib(gateway_pid, "VmRSS"))

        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id=os.environ.get("BENCH_ACCESS_KEY", "AKIAPKGRELAYTESTONLY"),
            aws_secret_access_key="x",
            config=Config(s3={"addressing_style": "path"}, read_timeout=600, retries={"max_attempts": 0}),
        )
        if not os.environ.get("BENCH_ENDPOINT"):
            s3.create_bucket(Bucket=bucket)
        base = os.urandom(part_mib * MIB)
        t0 = time.time()
        up = s3.create_multipart_upload(Bucket=bucket, Key=key, ChecksumAlgorithm="CRC64NVME", ChecksumType="FULL_OBJECT")
        upload_id = up["UploadId"]
        crc = 0
        parts = []
        sent = 0
        n = 0
        while sent < size_mib * MIB:
            n += 1
            length = min(part_mib * MIB, size_mib * MIB - sent)
            body = n.to_bytes(4, "big") + base[4:length]
            crc = checksums.crc64nvme(body, crc)
            part_crc = base64.b64encode(checksums.crc64nvme(body).to_bytes(8, "big")).decode()
            r = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=n, Body=body, ChecksumCRC64NVME=part_crc)
            parts.append({"PartNumber": n, "ETag": r["ETag"]})
            sent += length
            sample()
            if os.environ.get("BENCH_TRACE"):
                print(f"part {n}: moto RSS {rss_kib(moto.pid, 'VmRSS') / 1024:.0f} MiB", flush=True)
        t_parts = time.time() - t0
        listed = s3.list_parts(Bucket=bucket, Key=key, UploadId=upload_id, MaxParts=1000)["Parts"]
        assert len(listed) == n, (len(listed), n)
        full = base64.b64encode(crc.to_bytes(8, "big")).decode()
        t1 = time.time()
        done = s3.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}, ChecksumCRC64NVME=full, ChecksumType="FULL_OBJECT"
        )
        t_complete = time.time() - t1
        sample()
        # (moto 5.2.5 unpatched answers no checksum: MOTO_SERVER=<its moto_server.py> measures it)
        checksum_answered = done.get("ChecksumCRC64NVME") == full
        assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")
        t2 = time.time()
        got = s3.get_object(Bucket=bucket, Key=key)
        received = 0
        crc_back = 0
        for chunk in got["Body"].iter_chunks(8 * MIB):
            received += len(chunk)
            crc_back = checksums.crc64nvme(chunk, crc_back)
            if received % (256 * MIB) < 8 * MIB:
                sample()
        t_get = time.time() - t2
        assert received == size_mib * MIB, received
        assert crc_back == crc
        hwm = rss_kib(moto.pid, "VmHWM")
        print(
            f"{size_mib} MiB in {n} parts of {part_mib} MiB: parts {t_parts:.1f} s, complete {t_complete:.1f} s, "
            f"GET {t_get:.1f} s ({received / MIB / t_get:.0f} MiB/s); moto peak RSS {hwm / 1024:.0f} MiB "
            f"(sampled {peak[0] / 1024:.0f} MiB)"
            + (f"; localaws peak RSS {rss_kib(gateway_pid, 'VmHWM') / 1024:.0f} MiB (sampled {gateway_peak[0] / 1024:.0f} MiB)" if gateway_pid else "")
            + f"; object checksum answered: {checksum_answered}; bytes read back verified"
        )
    finally:
        moto.terminate()
        moto.wait()


if __name__ == "__main__":
    main()
