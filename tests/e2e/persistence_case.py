"""Helpers shared by test_persistence.py and test_persistence_go.py: whether
the stock `age` tools are here, a multi-line value with every awkward byte,
a key pair from age-keygen, a time as Go marshals it, and the daemon's live
leases by id."""

import datetime as dt
import shutil
import subprocess

HAVE_AGE = shutil.which("age") is not None and shutil.which("age-keygen") is not None
MULTI = b"line one\n\tline \"two\" $X \\ caf\xc3\xa9 \xf0\x9f\x94\x91\n\n"


def age_keygen():
    p = subprocess.run(["age-keygen"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30, check=True)
    lines = p.stdout.decode().splitlines()
    key = [l for l in lines if l.startswith("AGE-SECRET-KEY-1")][0]
    recipient = [l.split(": ", 1)[1] for l in lines if l.startswith("# public key: ")][0]
    return key, recipient


def go_time(t, nanos_suffix="789", offset_hours=2):
    """A time as Go's time.Time marshals it with a +02:00 zone and nanoseconds."""
    local = t.astimezone(dt.timezone(dt.timedelta(hours=offset_hours)))
    sign = "+" if offset_hours >= 0 else "-"
    return local.strftime("%Y-%m-%dT%H:%M:%S.%f") + nanos_suffix + "%s%02d:00" % (sign, abs(offset_hours))


def lease_ids(home):
    reply = home.rpc("secrets.leases")
    return {l["lease_id"]: l for l in reply["result"]["leases"]}
