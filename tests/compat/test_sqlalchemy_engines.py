"""create_engine(poolclass=sessionpool.compat.sqlalchemy.QueuePool) with the ORM on top, on
SQLite, the real PostgreSQL (psycopg) and the real MariaDB (PyMySQL), and pre-ping replacing
connections that PostgreSQL killed. These tests need the servers: when one is down they fail.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, String, create_engine, event, exc, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from sessionpool.compat.sqlalchemy import NullPool, QueuePool

PG_URL = "postgresql+psycopg://127.0.0.1:5432/test"
MARIADB_URL = "mysql+pymysql://root@127.0.0.1:3306/test"
JOIN = 10.0  # bound on thread joins: the work they do takes well under a second


def suffix() -> str:
    return uuid.uuid4().hex[:10]


def engine_for(url: str, **options: Any) -> Engine:
    """An engine on our QueuePool with every pool argument create_engine knows."""
    settings: dict[str, Any] = {
        "poolclass": QueuePool,
        "pool_size": 3,
        "max_overflow": 2,
        "pool_timeout": 5,
        "pool_recycle": 3600,
        "pool_pre_ping": True,
        "pool_use_lifo": True,
        "pool_reset_on_return": "rollback",
    }
    settings.update(options)
    return create_engine(url, **settings)


def orm_round_trip(engine: Engine) -> None:
    """Create a table, write through one Session, read through another (from another thread,
    so a second pooled connection is used), update and roll back, drop."""

    class Base(DeclarativeBase):
        pass

    class Item(Base):
        __tablename__ = f"sp_items_{suffix()}"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(String(50))

    Base.metadata.create_all(engine)
    try:
        with Session(engine) as session:
            session.add_all([Item(name="first"), Item(name="second")])
            session.commit()
        found: list[list[str]] = []

        def read() -> None:
            with Session(engine) as session:
                found.append(list(session.scalars(select(Item.name).order_by(Item.id))))

        reader = threading.Thread(target=read)
        reader.start()
        reader.join(JOIN)
        assert found == [["first", "second"]]
        with Session(engine) as session:
            item = session.scalars(select(Item).where(Item.name == "first")).one()
            item.name = "changed"
            session.flush()
            session.rollback()  # the pool's reset and the ORM's rollback agree
        with Session(engine) as session:
            names = sorted(session.scalars(select(Item.name)))
        assert names == ["first", "second"]
    finally:
        Base.metadata.drop_all(engine)
    status = engine.pool.status()
    assert status.startswith("Pool size: 3  Connections in pool: "), status
    assert engine.pool.checkedout() == 0, status


def test_seed_queuepool_example() -> None:
    """The seed's "Constructing a QueuePool" example. Changed: the import, the connect
    arguments (the local server's), and the seed's `c.cursor.execute("setup_encodings()")`,
    which calls no cursor and a function no server has, becomes a real initialization
    statement."""
    import psycopg2

    from sessionpool.compat import sqlalchemy as pool  # was: import sqlalchemy.pool as pool

    def getconn() -> Any:
        c = psycopg2.connect(user="root", host="127.0.0.1", dbname="test")
        # execute an initialization function on the connection before returning
        c.cursor().execute("set application_name = 'seed_example'")
        return c

    p = pool.QueuePool(getconn, max_overflow=10, pool_size=5, use_threadlocal=True)

    conn = p.connect()
    cursor = conn.cursor()
    cursor.execute("select current_setting('application_name'), pg_backend_pid()")
    name, pid = cursor.fetchone()
    assert name == "seed_example"
    again = p.connect()  # use_threadlocal: this thread's connection, still checked out
    assert again is conn
    again.close()
    conn.close()
    assert p.status() == (
        "Pool size: 5  Connections in pool: 1 Current Overflow: -4 "
        "Current Checked out connections: 0"
    )
    conn = p.connect()
    cursor = conn.cursor()
    cursor.execute("select pg_backend_pid()")
    assert cursor.fetchone()[0] == pid  # pooled: the same session
    conn.close()
    p.dispose()


def test_orm_on_sqlite_file(tmp_path: Path) -> None:
    engine = engine_for(f"sqlite:///{tmp_path / 'app.db'}")
    assert type(engine.pool) is QueuePool
    orm_round_trip(engine)
    engine.dispose()
    assert engine.pool.checkedin() == 0


def test_orm_on_postgresql() -> None:
    engine = engine_for(PG_URL)
    orm_round_trip(engine)
    assert engine.pool.sessionpool.stats().acquires >= 4
    engine.dispose()


def test_orm_on_mariadb() -> None:
    engine = engine_for(MARIADB_URL)
    orm_round_trip(engine)
    engine.dispose()


def test_sessionpool_settings_pass_through_create_engine() -> None:
    """sessionpool's own settings are create_engine() arguments too: min_size opens
    connections ahead of need (the dialect's first-connect set-up runs on them)."""
    engine = engine_for(PG_URL, min_size=2, pool_pre_ping=False)
    inner = engine.pool.sessionpool
    inner.wait(timeout=JOIN)
    assert inner.opened == 2 and engine.pool.checkedin() == 2
    with engine.connect() as conn:
        assert conn.execute(text("select 1")).scalar() == 1
    assert inner.stats().connections_opened == 2  # served by one opened ahead
    engine.dispose()


def test_timeout_through_the_engine() -> None:
    engine = engine_for(PG_URL, pool_size=1, max_overflow=0, pool_timeout=0.2)
    with engine.connect(), pytest.raises(exc.TimeoutError, match="QueuePool limit of size 1"):
        engine.connect()
    engine.dispose()


# -- pre-ping against connections the server killed ---------------------------------------------


@pytest.fixture
def app_name() -> str:
    return f"sp_sa_{suffix()}"


@pytest.fixture
def pg_engine(app_name: str) -> Iterator[Engine]:
    engine = engine_for(
        PG_URL,
        pool_size=4,
        max_overflow=0,
        connect_args={"application_name": app_name},
    )
    yield engine
    engine.dispose()


def backend_pids(engine: Engine, count: int) -> set[int]:
    """Check out ``count`` connections at once and return their backend pids."""
    conns = [engine.connect() for _ in range(count)]
    try:
        return {conn.execute(text("select pg_backend_pid()")).scalar_one() for conn in conns}
    finally:
        for conn in conns:
            conn.close()


def terminate(app_name: str) -> int:
    """pg_terminate_backend on this test's own sessions only (never anyone else's)."""
    with psycopg.connect("host=127.0.0.1 dbname=test", autocommit=True) as admin:
        rows = admin.execute(
            "select pg_terminate_backend(pid) from pg_stat_activity where application_name = %s",
            (app_name,),
        ).fetchall()
        # Wait (bounded) until the backends are gone, rather than sleeping a guess.
        for _ in range(200):
            left = admin.execute(
                "select count(*) from pg_stat_activity where application_name = %s",
                (app_name,),
            ).fetchone()
            if left is not None and left[0] == 0:
                break
            admin.execute("select pg_sleep(0.01)")
    return len(rows)


def test_pre_ping_replaces_connections_killed_by_the_server(
    pg_engine: Engine, app_name: str
) -> None:
    before = backend_pids(pg_engine, 4)
    assert pg_engine.pool.checkedin() == 4
    assert terminate(app_name) == 4
    errors = 0
    seen: set[int] = set()
    for _ in range(20):
        try:
            with pg_engine.connect() as conn:
                seen.add(conn.execute(text("select pg_backend_pid()")).scalar_one())
        except exc.DBAPIError:
            errors += 1
    assert errors == 0, f"{errors} of 20 checkouts failed although pre_ping is on"
    assert seen and not (seen & before), (before, seen)
    assert pg_engine.pool.sessionpool.opened <= 4


def test_without_pre_ping_the_killed_connection_is_seen_once(app_name: str) -> None:
    """The contrast that shows pre_ping is doing the work above: without it the first
    checkout meets a dead connection, SQLAlchemy invalidates the pool, and the rest work."""
    engine = engine_for(
        PG_URL,
        pool_size=4,
        max_overflow=0,
        pool_pre_ping=False,
        connect_args={"application_name": app_name},
    )
    invalidated: list[Any] = []
    event.listen(engine.pool, "invalidate", lambda *args: invalidated.append(args))
    try:
        backend_pids(engine, 4)
        assert terminate(app_name) == 4
        errors = 0
        for _ in range(20):
            try:
                with engine.connect() as conn:
                    conn.execute(text("select 1"))
            except exc.DBAPIError as error:
                assert error.connection_invalidated
                errors += 1
        assert errors == 1, errors
        assert invalidated  # SQLAlchemy's invalidate event fired through our pool
    finally:
        engine.dispose()


def test_null_pool_engine_opens_a_connection_per_checkout(app_name: str) -> None:
    engine = create_engine(PG_URL, poolclass=NullPool, connect_args={"application_name": app_name})
    pids = set()
    for _ in range(3):
        with engine.connect() as conn:
            pids.add(conn.execute(text("select pg_backend_pid()")).scalar_one())
    assert len(pids) == 3
    assert terminate(app_name) == 0  # nothing kept open
    engine.dispose()


@pytest.mark.parametrize("pool_class", [QueuePool, NullPool])
def test_asyncio_engines_are_refused_by_sqlalchemy(pool_class: type) -> None:
    """The face's pools are threaded: an asyncio dialect gets SQLAlchemy's own refusal rather
    than a pool that would block its event loop."""
    with pytest.raises(exc.ArgumentError, match="cannot be used with asyncio engine"):
        create_engine("sqlite+aiosqlite://", poolclass=pool_class)
