"""Every migration and every runtime statement of the ClickHouse store on the in-process
ClickHouse of chdb, for the SQL the binary renders for a current server (24.8) and for
18.16, with representative rows, checking results. Run by run.sh (scripts/test.sh).

    python chdb_test.py SITETALLY_BINARY
"""

import datetime
import json
import subprocess
import sys
import tempfile

import chdb
from chdb.session import Session

DB = "st"
TODAY = (datetime.datetime.now(datetime.timezone.utc).date() - datetime.date(1970, 1, 1)).days
D = TODAY - 5  # a day every TTL keeps
OLD = TODAY - 500  # older than the sightings TTL (400 days), newer than the sketch TTL (800)
CATEGORIES = ["UNKNOWN", "OT", "IOT", "NETWORK", "COMPUTERS_MOBILE"]
FILTER = {"OT", "IOT"}  # what the `:filtered` renderings keep, agent-managed devices excluded
SEEN = 1700000000  # the seen_at second of every test sighting
failures = []


def check(what, got, want):
    if got != want:
        failures.append(f"{what}: got {got!r}, want {want!r}")
        print(f"  FAIL {what}: got {got!r}, want {want!r}")
    else:
        print(f"  ok   {what}")


def binary_output(binary, *args):
    return subprocess.run([binary, "migrate", "--database", DB, *args], check=True,
                          capture_output=True, text=True).stdout


def migrations(binary, version):
    """{version: [statement, ...]} as `migrate --print-sql` renders them."""
    out, current = {}, None
    for chunk in binary_output(binary, "--print-sql", "--server-version", version).split("\n;\n"):
        lines = chunk.strip("\n").split("\n")
        for line in lines:
            if line.startswith("-- migration "):
                current = int(line[len("-- migration "):].split("_")[0])
                out.setdefault(current, [])
        body = [l for l in lines if not l.startswith("-- migration ") and not l.startswith("-- skipped")]
        if any(l.strip() and not l.lstrip().startswith("--") for l in body):
            out[current].append("\n".join(body))
    return out


def literal(v):
    if isinstance(v, int):
        return str(v)
    return "'" + str(v).replace("\\", "\\\\").replace("'", "\\'") + "'"


def bind(sql, params):
    parts = sql.split("?")
    assert len(parts) == len(params) + 1, f"{len(parts) - 1} placeholders, {len(params)} values: {sql}"
    return "".join(p + (literal(v) if i < len(params) else "") for i, (p, v) in
                   enumerate(zip(parts, list(params) + [None])))


def rows(session, sql):
    text = str(session.query(sql, "TSV"))
    return [line.split("\t") for line in text.splitlines()]


def date(day):
    return (datetime.date(1970, 1, 1) + datetime.timedelta(days=day)).isoformat()


def sighting(tenant, site, day, key):
    category = CATEGORIES[key % 5]
    return (tenant, site, day, key, category, int(key % 10 == 0))


# plant: 500 devices over two days; yard: 40 devices, 20 of them also at plant; beta: 7.
SIGHTINGS = ([sighting("acme", "plant", D - (k % 2), k) for k in range(500)]
             + [sighting("acme", "yard", D, k) for k in range(480, 520)]
             + [sighting("beta", "x", D, k) for k in range(7)])
BACKFILL = [sighting("acme", "old", OLD, k) for k in range(30)]


def insert(session, rows_):
    values = ", ".join(
        f"({literal(t)}, {literal(s)}, {literal(date(d))}, {k}, 'dev-{k}', {literal(c)}, {a}, 'sensor-1', {SEEN})"
        for t, s, d, k, c, a in rows_)
    session.query(f"INSERT INTO {DB}.sightings (tenant, site, day, device_key, device_label, category, "
                  f"agent_managed, sensor, seen_at) VALUES {values}")


def distinct(pred, rows_=SIGHTINGS):
    return len({k for t, s, d, k, c, a in rows_ if pred(t, s, d, k, c, a)})


def kept(c, a):
    return c in FILTER and a == 0


def expected(name, modern):
    """(parameters, expected TSV rows) of each catalogue entry; None = no case (a failure)."""
    filtered = name.endswith(":filtered")
    base = name.split(":")[0]
    f = (lambda c, a: kept(c, a)) if filtered else (lambda c, a: True)
    rng = (D - 10, D)
    sites = [("acme", "plant"), ("acme", "yard"), ("beta", "x")]
    site_rows = lambda tenants: [[t, s, str(distinct(lambda t2, s2, d, k, c, a: (t2, s2) == (t, s) and f(c, a)))]
                                 for t, s in sites if t in tenants]
    acme = distinct(lambda t, s, d, k, c, a: t == "acme" and f(c, a))
    plant = distinct(lambda t, s, d, k, c, a: s == "plant" and f(c, a))
    daily = sorted({(d, CATEGORIES.index(c)) for t, s, d, k, c, a in SIGHTINGS if s == "plant" and f(c, a)})
    cases = {
        "version": ([], None),
        "dedup_probe": ([], [["1"]]),
        "ping": ([], [["1"]]),
        # Count binds: whole days, then the boundary day and second (day 0: no boundary).
        "site_counts": (list(rng) + [0, 0], site_rows({"acme", "beta"})),
        "site_counts_of_tenant": (list(rng) + ["acme", 0, 0, "acme"], site_rows({"acme"})),
        "exact_site_count": (["acme", "plant", *rng, 0, 0], [[str(plant)]]),
        "tenant_count": (["acme", *rng, "acme", 0, 0], [[str(acme)]]),
        "exact_tenant_count": (["acme", *rng, 0, 0], [[str(acme)]]),
        "daily_counts": (["acme", "plant", *rng], [[str(d), str(c), str(distinct(
            lambda t, s, d2, k, c2, a: s == "plant" and d2 == d and CATEGORIES.index(c2) == c and f(c2, a)))]
            for d, c in daily]),
        "sighting_rows": ([], [[str(len(SIGHTINGS) + (0 if modern else len(BACKFILL)))]]),
        "distinct_sightings": ([], [[str(len(SIGHTINGS) + (0 if modern else len(BACKFILL)))]]),
    }
    return cases.get(base)


HISTORY = ["save_alert_state", "new_alert_state", "alert_states", "newest_alert_state", "record_alerts",
           "alerts", "record_runs", "latest_decisions", "runs_by_id", "put_licences", "licence_documents"]


def history(session, q):
    """The reconciler's memory: save, read back, newest wins."""
    for subject, doc, ms in [("acme/plant", '{"v":1}', 100), ("acme/plant", '{"v":2}', 200),
                             ("acme", '{"t":1}', 150)]:
        session.query(bind(q["save_alert_state"], [subject, "acme", doc, ms]))
    check("alert_states: newest save per subject", sorted(r[0] for r in rows(session, q["alert_states"])),
          ['{"t":1}', '{"v":2}'])
    check("newest_alert_state", rows(session, bind(q["newest_alert_state"], ["acme/plant"])), [["200"]])
    t0 = 1_790_000_000
    alert = lambda key, at: [at, key, "acme", "plant", "acme/plant", "ok", "over", 520, "exact", 0, "S", "M",
                             "over tier", json.dumps({"key": key}, separators=(",", ":"))]
    for key, at in [("k1", t0), ("k2", t0 + 60), ("k1", t0)]:  # k1 redelivered
        session.query(bind(q["record_alerts"], alert(key, at)))
    check("alerts: newest first, a redelivery once",
          rows(session, bind(q["alerts"], ["acme", t0 - 1, t0 + 3600, 10])),
          [['{"key":"k2"}'], ['{"key":"k1"}']])
    check("alerts: limit", len(rows(session, bind(q["alerts"], ["acme", t0 - 1, t0 + 3600, 1]))), 1)
    check("alerts: other tenant", rows(session, bind(q["alerts"], ["beta", t0 - 1, t0 + 3600, 10])), [])
    run = lambda run_id, subject, doc: [t0, run_id, "acme", "plant", subject, "ok", 500, "exact", 0, 1, 0,
                                        "M", "M", 0.5, doc]
    for r in [run("20261201T000000.000Z", "acme/plant", "old"), run("20261202T000000.000Z", "acme/yard", "y"),
              run("20261202T000000.000Z", "acme/plant", "p")]:
        session.query(bind(q["record_runs"], r))
    check("latest_decisions: the latest run, by subject",
          rows(session, bind(q["latest_decisions"], ["acme", "acme"])), [["p"], ["y"]])
    check("runs_by_id", rows(session, q["runs_by_id"]),
          [["20261201T000000.000Z", "1"], ["20261202T000000.000Z", "2"]])
    for tenant, doc, ms in [("acme", "a1", 1), ("", "global", 1), ("acme", "a2", 2)]:
        session.query(bind(q["put_licences"], [tenant, doc, ms]))
    check("licence_documents: newest import per tenant", rows(session, q["licence_documents"]),
          [["", "global"], ["acme", "a2"]])


def table(session, name):
    return str(session.query(f"SHOW CREATE TABLE {DB}.{name}", "TSVRaw"))


def run(binary, version, modern, catalogue):
    print(f"rendering for {version} on chdb {chdb.__version__}")
    session = Session(tempfile.mkdtemp(prefix="sitetally-chdb-"))
    session.query(f"CREATE DATABASE {DB}")
    for number, statements in sorted(migrations(binary, version).items()):
        for statement in statements:
            session.query(statement)
    check(f"{version}: sightings TTL", "TTL" in table(session, "sightings"), modern)
    check(f"{version}: sketch insert dedup",
          "non_replicated_deduplication_window = 1000" in table(session, "site_devices_daily"), modern)
    for name in ["sightings", "site_devices_daily"]:
        check(f"{version}: {name} tenant and site LowCardinality",
              "`tenant` LowCardinality(String),\n    `site` LowCardinality(String)" in table(session, name), modern)
    insert(session, SIGHTINGS)
    insert(session, BACKFILL)
    q = dict(catalogue)
    for name, sql in catalogue:
        if name.split(":")[0] in HISTORY:
            continue
        case = expected(name, modern)
        if case is None:
            failures.append(f"no chdb case for the query {name}: add one to {__file__}")
            continue
        params, want = case
        got = rows(session, bind(sql, params))
        check(f"{version}: {name}", got if want is not None else bool(got), want if want is not None else True)
    # A back-fill older than the sightings TTL reaches only the sketches on a current server.
    old = (OLD - 1, OLD + 1)
    check(f"{version}: back-fill, exact", rows(session, bind(q["exact_site_count"], ["acme", "old", *old, 0, 0])),
          [["0" if modern else "30"]])
    check(f"{version}: back-fill, sketch", rows(session, bind(q["site_counts_of_tenant"], [*old, "acme", 0, 0, "acme"])),
          [["acme", "old", "30"]])
    # The billing window's boundary day (D - 1, every row seen at SEEN): counted from the
    # sightings seen since the boundary second, merged with the whole day D's sketches.
    # Tenant-wide: plant's devices and yard's 480..519 (yard shares 480..499 with plant).
    for since, plant_want, tenant_want in [(SEEN, 500, 520), (SEEN + 1, 250, 280)]:
        bounds = [D, D, D - 1, since]
        check(f"{version}: boundary at {since}, exact",
              rows(session, bind(q["exact_site_count"], ["acme", "plant", *bounds])), [[str(plant_want)]])
        check(f"{version}: boundary at {since}, sketch",
              rows(session, bind(q["site_counts_of_tenant"], [D, D, "acme", D - 1, since, "acme"])),
              [["acme", "plant", str(plant_want)], ["acme", "yard", "40"]])
        check(f"{version}: boundary at {since}, tenant",
              rows(session, bind(q["tenant_count"], ["acme", D, D, "acme", D - 1, since])),
              [[str(tenant_want)]])
    # A retried batch: deduplicated (sightings and sketch rows) only where the server can.
    sketch_rows = lambda: rows(session, f"SELECT count() FROM {DB}.site_devices_daily")
    before = sketch_rows()
    insert(session, SIGHTINGS)
    check(f"{version}: retried batch adds no sketch rows", sketch_rows() == before, modern)
    check(f"{version}: counts unchanged by the retry",
          rows(session, bind(q["exact_tenant_count"], ["acme", D - 10, D, 0, 0])), [["520"]])
    history(session, q)
    session.close()


def upgrade(binary):
    """A database made on 18.16, then served by a current server: migration 008."""
    print("upgrade: 18.16 rendering, then the 24.8 rendering of what is not applied")
    session = Session(tempfile.mkdtemp(prefix="sitetally-chdb-"))
    session.query(f"CREATE DATABASE {DB}")
    old, new = migrations(binary, "18.16"), migrations(binary, "24.8")
    check("18.16 skips 008", old[8], [])
    for number in sorted(old):
        for statement in old[number]:
            session.query(statement)
    insert(session, SIGHTINGS)
    for statement in new[8]:
        session.query(statement)
    check("upgraded: sightings TTL", "TTL day + toIntervalDay(400)" in table(session, "sightings"), True)
    check("upgraded: sketch TTL", "TTL day + toIntervalDay(800)" in table(session, "site_devices_daily"), True)
    for name in ["sightings", "site_devices_daily"]:
        create = table(session, name)
        check(f"upgraded: {name} settings",
              "non_replicated_deduplication_window = 1000" in create and "ttl_only_drop_parts = 1" in create, True)
    check("upgraded: rows kept", rows(session, f"SELECT uniqExact(device_key) FROM {DB}.sightings"), [["520"]])
    session.close()


def main():
    binary = sys.argv[1]
    print("chdb", chdb.__version__, "server", str(chdb.query("SELECT version()", "TSV")).strip())
    catalogue = json.loads(binary_output(binary, "--print-queries"))
    for name, _ in catalogue:
        if name.split(":")[0] not in HISTORY and expected(name, True) is None:
            failures.append(f"no chdb case for the query {name}")
    run(binary, "24.8", True, catalogue)
    run(binary, "18.16", False, catalogue)
    upgrade(binary)
    if failures:
        print(f"{len(failures)} failures:\n  " + "\n  ".join(failures))
        sys.exit(1)
    print("all chdb checks passed")


if __name__ == "__main__":
    main()
