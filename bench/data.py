"""The benchmark data set: ``flask seed`` run once into a cache and reused while it is current.

    python -m bench.data [--quick] [--database-url postgresql://...] [--rebuild]

SQLite: the data set lives in ``.bench/`` at the top of the repository (git-ignored through
``.bench/.gitignore``), as ``<name>.sqlite3`` beside a ``<name>.stamp`` file, and each run of
the benchmarks works on a copy of it, so checkouts and logins never change the cached one.
PostgreSQL: the database named by the URL is seeded in place (its ``public`` schema is
replaced first), and the stamp is kept in ``.bench/`` under a digest of the URL; runs add
orders and login records to it but never touch the posts, which is what the stamp vouches
for.

A stamp records what the data set was made from: the sizes and random seed, the newest
migration and a digest of ``blog/seed``. Any difference (a new migration, a change to the
seeder) builds the data set again, so a run never measures an old schema.

The seed goes through the real ``flask db upgrade`` and ``flask seed`` commands, each timed:
the issue asks the README to state what ``make bench`` measures, and the seed time is one of
the numbers.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.exc import SQLAlchemyError

REPOSITORY = Path(__file__).resolve().parent.parent
#: The cache of data sets and everything else a run writes (logs, instance folders).
CACHE = REPOSITORY / ".bench"
FLASK = REPOSITORY / ".venv" / "bin" / "flask"
#: A fixed key for every process the benchmarks start: sessions made by one (the login of
#: the in-process app) must open in the others (gunicorn, the floor).
SECRET_KEY = "inkwell-bench-secret-key-0123456789abcdef"


@dataclass(frozen=True)
class Sizes:
    """What ``flask seed`` is asked for. About 47.5% of members write (the seeder makes the
    admin and about half the other active members authors), so 2,110 members give about
    1,000 authors, the issue's figure."""

    posts: int
    users: int
    products: int = 16
    orders: int = 30
    seed: int = 15

    @property
    def name(self) -> str:
        return f"posts{self.posts}-users{self.users}-seed{self.seed}"


FULL = Sizes(posts=100_000, users=2_110)
QUICK = Sizes(posts=2_000, users=200)


@dataclass
class Dataset:
    """A seeded database ready for a run."""

    url: str  # SQLAlchemy URL (sqlite:///... or postgresql://...)
    sizes: Sizes
    #: Seconds ``flask seed`` took when the data set was built (perhaps on an earlier run).
    seed_seconds: float
    upgrade_seconds: float
    #: The seed command's own summary ("2,000 posts (97 drafts) ...").
    summary: list[str]
    #: Whether this run built it (False: reused from the cache).
    built: bool

    @property
    def kind(self) -> str:
        return "postgresql" if self.url.startswith("postgres") else "sqlite"

    @property
    def authors(self) -> int | None:
        """How many authors the seed made, read from its summary."""
        for line in self.summary:
            found = re.search(r"([\d,]+) authors?", line)
            if found:
                return int(found.group(1).replace(",", ""))
        return None


def _head_revision() -> str:
    """The newest migration (what ``flask db upgrade`` brings a database to)."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(REPOSITORY / "migrations"))
    heads = ScriptDirectory.from_config(config).get_heads()
    return ",".join(sorted(heads))


def _seed_digest() -> str:
    """A digest of the seeder's source: a change to it makes different data."""
    digest = hashlib.sha256()
    for path in sorted((REPOSITORY / "blog" / "seed").glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _wanted_stamp(sizes: Sizes) -> dict[str, object]:
    return {"sizes": asdict(sizes), "head": _head_revision(), "seed_code": _seed_digest()}


def flask_env(url: str, instance: Path) -> dict[str, str]:
    """The environment of every Inkwell process the benchmarks start: the database, the
    fixed key, and an instance folder of their own (so a developer's ``instance/config.py``,
    cache and job queue stay out of it)."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("FLASK_") and key not in ("DATABASE_URL", "REDIS_URL", "SITE_URL")}
    instance.mkdir(parents=True, exist_ok=True)
    env.update(DATABASE_URL=url, SECRET_KEY=SECRET_KEY, INKWELL_INSTANCE_PATH=str(instance),
               FLASK_APP="wsgi")
    return env


def _run_flask(args: list[str], env: dict[str, str]) -> tuple[float, str]:
    """Run ``flask <args>``, failing loudly with its output; return (seconds, stdout)."""
    started = time.perf_counter()
    done = subprocess.run([str(FLASK), *args], cwd=REPOSITORY, env=env, capture_output=True, text=True,
                          check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"flask {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return seconds, done.stdout


def _seed(url: str, sizes: Sizes, instance: Path, log: bool) -> tuple[float, float, list[str]]:
    env = flask_env(url, instance)
    if log:
        print(f"  flask db upgrade on {_display(url)} ...", flush=True)
    upgrade_seconds, _ = _run_flask(["db", "upgrade"], env)
    if log:
        print(f"  flask seed --posts {sizes.posts} --users {sizes.users} ...", flush=True)
    seed_seconds, output = _run_flask(
        ["seed", "--posts", str(sizes.posts), "--users", str(sizes.users), "--products",
         str(sizes.products), "--orders", str(sizes.orders), "--seed", str(sizes.seed)], env)
    summary = [line for line in output.splitlines() if line.strip()]
    return upgrade_seconds, seed_seconds, summary[:5]


def _display(url: str) -> str:
    """The URL without a password, for printing."""
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


def _read_stamp(path: Path) -> dict[str, object] | None:
    try:
        stamp: dict[str, object] = json.loads(path.read_text())
        return stamp
    except (OSError, ValueError):
        return None


def _write_stamp(path: Path, wanted: dict[str, object], upgrade: float, seed: float,
                 summary: list[str]) -> None:
    path.write_text(json.dumps({**wanted, "upgrade_seconds": upgrade, "seed_seconds": seed,
                                "summary": summary}, indent=1))


def _ensure_cache() -> None:
    CACHE.mkdir(exist_ok=True)
    ignore = CACHE / ".gitignore"
    if not ignore.exists():
        # Keeps the whole folder out of git without a line in the repository's .gitignore.
        ignore.write_text("*\n")


def sqlite_dataset(sizes: Sizes, *, rebuild: bool = False, log: bool = True) -> Dataset:
    """The SQLite data set for ``sizes``, built unless a current one is cached."""
    _ensure_cache()
    database = CACHE / f"{sizes.name}.sqlite3"
    stamp_path = CACHE / f"{sizes.name}.stamp"
    wanted = _wanted_stamp(sizes)
    stamp = _read_stamp(stamp_path)
    if not rebuild and stamp and database.exists() and all(stamp.get(k) == v for k, v in wanted.items()):
        return Dataset(f"sqlite:///{database}", sizes, float(stamp["seed_seconds"]),  # type: ignore[arg-type]
                       float(stamp["upgrade_seconds"]), list(stamp["summary"]), built=False)  # type: ignore[call-overload, arg-type]
    stamp_path.unlink(missing_ok=True)
    # Built under another name and renamed at the end, so an interrupted seed never passes
    # for a finished one.
    building = CACHE / f"{sizes.name}.building.sqlite3"
    for leftover in (building, Path(f"{building}-wal"), Path(f"{building}-shm")):
        leftover.unlink(missing_ok=True)
    if log:
        print(f"Building the SQLite data set {database.name} (kept for later runs) ...", flush=True)
    upgrade, seed, summary = _seed(f"sqlite:///{building}", sizes, CACHE / "instance-seed", log)
    # Fold the write-ahead log into the file, so the one file is the whole data set.
    engine = create_engine(f"sqlite:///{building}")
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    os.replace(building, database)
    for leftover in (Path(f"{building}-wal"), Path(f"{building}-shm")):
        leftover.unlink(missing_ok=True)
    _write_stamp(stamp_path, wanted, upgrade, seed, summary)
    return Dataset(f"sqlite:///{database}", sizes, seed, upgrade, summary, built=True)


def working_copy(dataset: Dataset, name: str) -> Dataset:
    """A copy of a SQLite data set for one run to change (orders, logins); PostgreSQL data
    sets are used in place."""
    if dataset.kind != "sqlite":
        return dataset
    source = Path(dataset.url.removeprefix("sqlite:///"))
    target = CACHE / f"{name}.sqlite3"
    for leftover in (target, Path(f"{target}-wal"), Path(f"{target}-shm")):
        leftover.unlink(missing_ok=True)
    shutil.copyfile(source, target)
    return Dataset(f"sqlite:///{target}", dataset.sizes, dataset.seed_seconds, dataset.upgrade_seconds,
                   dataset.summary, dataset.built)


def postgresql_dataset(url: str, sizes: Sizes, *, rebuild: bool = False, log: bool = True) -> Dataset:
    """The data set in the PostgreSQL database at ``url``: its schema is replaced and seeded
    unless the stamp says it holds the current data set already."""
    _ensure_cache()
    key = hashlib.sha256(url.encode()).hexdigest()[:12]
    stamp_path = CACHE / f"pg-{key}-{sizes.name}.stamp"
    wanted = _wanted_stamp(sizes)
    stamp = _read_stamp(stamp_path)
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        if not rebuild and stamp and all(stamp.get(k) == v for k, v in wanted.items()):
            with engine.connect() as connection:
                try:
                    head = connection.scalar(text("SELECT string_agg(version_num, ',' ORDER BY version_num) "
                                                  "FROM alembic_version"))
                    posts = connection.scalar(text("SELECT count(*) FROM posts"))
                except SQLAlchemyError:  # no schema yet, or another one
                    head = posts = None
            # The stamp is only a note beside the database: check the database agrees.
            if head == wanted["head"] and posts == sizes.posts:
                return Dataset(url, sizes, float(stamp["seed_seconds"]),  # type: ignore[arg-type]
                               float(stamp["upgrade_seconds"]), list(stamp["summary"]),  # type: ignore[call-overload, arg-type]
                               built=False)
        # Whatever data set this database held before, it holds none after this.
        for old in CACHE.glob(f"pg-{key}-*.stamp"):
            old.unlink(missing_ok=True)
        if log:
            print(f"Building the PostgreSQL data set in {_display(url)} (its schema is replaced) ...",
                  flush=True)
        with engine.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
        upgrade, seed, summary = _seed(url, sizes, CACHE / "instance-seed", log)
        # What autovacuum would do within a minute or so of a bulk load: statistics for the
        # planner and the visibility map for index-only scans. Without it the first minutes
        # of a run would measure plans made without statistics.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE"))
    finally:
        engine.dispose()
    _write_stamp(stamp_path, wanted, upgrade, seed, summary)
    return Dataset(url, sizes, seed, upgrade, summary, built=True)


def dataset(database_url: str | None, sizes: Sizes, *, rebuild: bool = False, log: bool = True) -> Dataset:
    """The data set on SQLite (``database_url`` None) or in the given PostgreSQL database."""
    if database_url is None:
        return sqlite_dataset(sizes, rebuild=rebuild, log=log)
    if not database_url.startswith(("postgresql://", "postgres://")):
        raise SystemExit(f"--database-url must be a postgresql:// URL, not {_display(database_url)}")
    return postgresql_dataset(database_url.replace("postgres://", "postgresql://", 1), sizes,
                              rebuild=rebuild, log=log)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=None, help="PostgreSQL (its schema is replaced); "
                        "default: a SQLite file in .bench/")
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK.posts:,} posts instead of {FULL.posts:,}")
    parser.add_argument("--rebuild", action="store_true", help="build it even if a current one is cached")
    # Known only: `make bench-data` passes the same BENCH_ARGS as `make bench`.
    args, _ = parser.parse_known_args()
    made = dataset(args.database_url, QUICK if args.quick else FULL, rebuild=args.rebuild)
    state = "built" if made.built else "reused (built earlier)"
    print(f"{made.kind} data set {state}: {_display(made.url)}")
    print(f"  flask db upgrade {made.upgrade_seconds:.1f} s, flask seed {made.seed_seconds:.1f} s")
    for line in made.summary:
        print(f"  {line}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
