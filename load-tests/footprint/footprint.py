"""Bytes per row of the sightings and sketch tables on a generated day, for the capacity
plan (docs/capacity.md). The schema is what `sitetally migrate --print-sql` renders; the
rows are generated in SQL (random 64-bit device keys, MAC-like labels, one row per
device-day as ingest writes them); the sketch table is filled by its materialized view, as
in production. Tables are merged (OPTIMIZE FINAL) before system.parts is read.

    python footprint.py SITETALLY_BINARY chdb [SITES DEVICES_PER_SITE]
    python footprint.py SITETALLY_BINARY http://127.0.0.1:8123 [SITES DEVICES_PER_SITE]

The first form runs on chdb (current ClickHouse in-process) with the 24.8 rendering; the
second on a server (the rig's 18.16), rendered for that server's version.
"""

import os
import sys
import tempfile
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../../services/store/tests/chdb"))
import chdb_test  # noqa: E402  (the --print-sql parser, written once; needs chdb-core)

DB = "footprint"
SENSORS = 6
CATEGORIES = 5


def chdb_backend():
    from chdb.session import Session
    session = Session(tempfile.mkdtemp(prefix="footprint-"))
    return "24.8", lambda sql: str(session.query(sql, "TSV"))


def http_backend(url):
    def run(sql):
        req = urllib.request.Request(url, data=sql.encode(), method="POST")
        with urllib.request.urlopen(req, timeout=600) as r:
            return r.read().decode()
    version = run("SELECT version()").strip()
    return ".".join(version.split(".")[:2]), run


def generate(run, sites, per_site):
    """One day: `sites` sites of `per_site` devices, 20 tenants."""
    n = sites * per_site
    run(f"""
INSERT INTO {DB}.sightings (tenant, site, day, device_key, device_label, category,
                            agent_managed, sensor, seen_at)
SELECT
    concat('tenant-', toString((number % {sites}) % 20)),
    concat('site-', toString(number % {sites})),
    today(),
    cityHash64(number),
    lower(concat('02:42:', hex(toUInt8(cityHash64(number, 1) % 256)), ':',
                 hex(toUInt8(cityHash64(number, 2) % 256)), ':',
                 hex(toUInt8(cityHash64(number, 3) % 256)), ':',
                 hex(toUInt8(cityHash64(number, 4) % 256)))),
    toUInt8(1 + cityHash64(number, 8) % 4),
    toUInt8(cityHash64(number, 5) % 10 = 0),
    concat('sensor-', toString(number % {sites}), '-', toString(cityHash64(number, 6) % {SENSORS})),
    toDateTime(today()) + toIntervalSecond(cityHash64(number, 7) % 86400)
FROM numbers({n})""")


def footprint(run, table):
    line = run(f"""
SELECT sum(rows), sum(bytes_on_disk), sum(data_uncompressed_bytes)
FROM system.parts WHERE database = '{DB}' AND table = '{table}' AND active""").strip()
    rows, disk, raw = (int(x) for x in line.split("\t"))
    return rows, disk, raw


def main():
    binary, where = sys.argv[1], sys.argv[2]
    sites = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
    per_site = int(sys.argv[4]) if len(sys.argv) > 4 else 1000
    version, run = chdb_backend() if where == "chdb" else http_backend(where)
    run(f"DROP DATABASE IF EXISTS {DB}")
    run(f"CREATE DATABASE {DB}")
    chdb_test.DB = DB
    for statements in chdb_test.migrations(binary, version).values():
        for s in statements:
            run(s)
    generate(run, sites, per_site)
    for table in ["sightings", "site_devices_daily"]:
        run(f"OPTIMIZE TABLE {DB}.{table} FINAL")
    print(f"ClickHouse {run('SELECT version()').strip()} (schema rendered for {version}), "
          f"{sites} sites x {per_site} devices, one day")
    print("| table | rows | bytes on disk | bytes/row on disk | uncompressed bytes/row |")
    print("|---|---:|---:|---:|---:|")
    for table in ["sightings", "site_devices_daily"]:
        rows, disk, raw = footprint(run, table)
        print(f"| {table} | {rows:,} | {disk:,} | {disk / rows:.1f} | {raw / rows:.1f} |")
    merge_rate(run)
    run(f"DROP DATABASE IF EXISTS {DB}")


def merge_rate(run):
    """How fast the per-site count query (every site's states merged) reads sketch states:
    what a reconciliation over all sites costs per day of window."""
    _, disk, raw = footprint(run, "site_devices_daily")
    best = None
    for _ in range(3):
        started = time.perf_counter()
        run(f"SELECT tenant, site, uniqCombinedMerge(devices) FROM {DB}.site_devices_daily "
            f"GROUP BY tenant, site FORMAT Null")
        took = time.perf_counter() - started
        best = took if best is None else min(best, took)
    print(f"per-site counts over all sketch states: best of 3 {best * 1000:.0f} ms, "
          f"{raw / best / 1e6:.0f} MB/s of uncompressed state ({disk / best / 1e6:.0f} MB/s on disk)")


if __name__ == "__main__":
    main()
