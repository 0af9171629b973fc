"""The repository the scheduler writes through and the CLI reads; every state change is compare-and-set."""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Connection, Row, Select, Table, bindparam, delete, func, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, SQLAlchemyError, StatementError
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Update
from typing_extensions import TypeVarTuple, Unpack

from hpoqueue.errors import NotFoundError, StorageError, StorageUnavailableError, redact
from hpoqueue.results.optimize_mode import best_first
from hpoqueue.states import ExperimentState, TrialState
from hpoqueue.storage import _schema
from hpoqueue.storage._engine import one_line, open_engine, parse_url
from hpoqueue.storage._models import Base, EventRow, ExperimentRow, MetricRow, TrialRow, utcnow
from hpoqueue.storage._records import EventRecord, ExperimentRecord, MetricRecord, TrialRecord

if TYPE_CHECKING:
    from sqlalchemy.dialects.postgresql import Insert as PgInsert
    from sqlalchemy.dialects.sqlite import Insert as SqliteInsert

#: trial columns that transition() and update_trial() may set besides the state
TRIAL_FIELDS = frozenset({"attempt", "queue", "host", "gpus", "pid", "exit_code", "exit_reason",
                          "final_value", "final_data", "started_at", "ended_at"})
METRIC_KINDS = ("intermediate", "final", "loss")

_Ts = TypeVarTuple("_Ts")
_Row = TypeVar("_Row", ExperimentRow, TrialRow, MetricRow, EventRow)


def default_storage_url(home: Path) -> str:
    """The SQLite file used when the config names no storage."""
    return f"sqlite:///{home / 'hpoqueue.db'}"


def make_trial_id(exp_id: str, seq: int) -> str:
    """The id of trial number ``seq`` of experiment ``exp_id``."""
    return f"{exp_id}-{seq}"


class Storage:
    """Experiments, trials, metrics and events in one SQLite file or PostgreSQL database.

    Each call is its own short transaction, unless made inside ``transaction()``, which groups every call of
    the same thread into one commit. Use one object from one thread at a time (each thread gets its own
    transaction); other processes open their own ``Storage`` on the same URL.
    """

    def __init__(self, url: str, *, upgrade: bool = False, create: bool = True) -> None:
        """Open the storage at ``url``. A new database is made only with ``create`` (without it, the CLI's
        reading commands, a missing SQLite file or an empty database is a StorageError naming it); an older
        schema is upgraded when ``upgrade`` (the scheduler's commands), else refused with the command that
        upgrades it."""
        parsed = parse_url(url)
        self.url: str = parsed.render_as_string(hide_password=False)
        self.safe_url: str = redact(parsed)  #: the URL with the password masked, for messages
        self._engine = open_engine(parsed, create=create)
        self._local = threading.local()
        self._closed = False
        try:
            _schema.ensure(self._engine, self.safe_url, upgrade=upgrade, create=create, secret=parsed.password)
        except StorageError:
            self._engine.dispose()
            raise
        # the dialect's own INSERT (ON CONFLICT DO NOTHING), imported for the one in use: loading PostgreSQL's
        # costs SQLite users a seventh of the storage's start-up
        dialect = importlib.import_module(f"sqlalchemy.dialects.{self._engine.dialect.name}")
        self._insert = dialect.insert
        self._insert_metric = self._insert_for_trial(MetricRow).on_conflict_do_nothing(
            index_elements=["trial_id", "attempt", "kind", "step"])
        self._insert_event = self._insert_for_trial(EventRow)
        self._trial_updates: dict[tuple[str, ...], Update] = {}
        experiments = _table(ExperimentRow)
        self._take_seqs = (update(experiments).where(experiments.c.id == bindparam("_id"))
                           .values(next_seq=experiments.c.next_seq + bindparam("_count"))
                           .returning(experiments.c.next_seq))

    def __repr__(self) -> str:
        return f"Storage({self.safe_url!r})"

    def __enter__(self) -> Storage:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Release every pooled connection; later calls raise StorageError."""
        self._closed = True
        self._engine.dispose()

    # --- transactions ----------------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group every call made inside (same thread) into one commit; roll all of it back on an exception.

        A nested ``transaction()`` is a savepoint: an exception leaving it undoes only its own calls.
        """
        active: Session | None = getattr(self._local, "session", None)
        if active is not None:
            with self._translated(), active.begin_nested():
                active.connection()  # emits the SAVEPOINT, which _connection()'s cached lookups skip
                yield
            return
        with self._session() as session:
            self._local.session = session
            try:
                yield
            finally:
                self._local.session = None

    @contextmanager
    def _session(self) -> Iterator[Session]:
        """The thread's open transaction, or a new one that commits when the block ends."""
        active: Session | None = getattr(self._local, "session", None)
        if active is not None:
            with self._translated():
                yield active
            return
        if self._closed:
            raise StorageError(f"storage {self.safe_url} is closed")
        with self._translated(), Session(self._engine, expire_on_commit=False) as session, session.begin():
            yield session

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """Database failures become one-line StorageErrors; unstorable values stay TypeError/ValueError."""
        try:
            yield
        except StatementError as exc:
            if not isinstance(exc, DBAPIError) and isinstance(exc.orig, (TypeError, ValueError)):
                raise exc.orig from None  # a value the caller passed cannot be stored (naive datetime, ...)
            if _disconnected(exc):
                raise StorageUnavailableError(f"storage {self.safe_url}: {one_line(exc)}") from exc
            raise StorageError(f"storage {self.safe_url}: {one_line(exc)}") from exc
        except SQLAlchemyError as exc:
            raise StorageError(f"storage {self.safe_url}: {one_line(exc)}") from exc

    @staticmethod
    def _rows(session: Session, stmt: Select[_Row]) -> list[_Row]:
        # populate_existing: rows read again in one transaction reflect UPDATEs made with plain SQL
        return list(session.scalars(stmt.execution_options(populate_existing=True)))

    @staticmethod
    def _update(session: Session, model: type[Base], *where: Any, **values: Any) -> int:
        stmt = update(model).where(*where).values(**values).execution_options(synchronize_session=False)
        return session.execute(stmt).rowcount  # type: ignore[attr-defined]

    # --- experiments -----------------------------------------------------------------------------------

    def create_experiment(self, exp_id: str, *, name: str | None, config: dict, work_dir: str,
                          optimize_mode: str, concurrency: int, max_trial_number: int | None,
                          max_duration: float | None) -> ExperimentRecord:
        """Insert a RUNNING experiment started now, whose first trial will be seq 1."""
        now = utcnow()
        row = ExperimentRow(id=exp_id, name=name, state=ExperimentState.RUNNING, config=config,
                         work_dir=work_dir, optimize_mode=optimize_mode, concurrency=concurrency,
                         max_trial_number=max_trial_number, max_duration=max_duration, next_seq=1,
                         created_at=now, started_at=now, ended_at=None, message=None)
        try:
            with self._session() as session:
                session.add(row)
                session.flush()
                return ExperimentRecord.from_row(row)
        except StorageError as exc:
            if isinstance(exc.__cause__, IntegrityError):
                raise StorageError(f"experiment {exp_id!r} already exists in {self.safe_url}") from None
            raise

    def get_experiment(self, exp_id: str) -> ExperimentRecord:
        with self._session() as session:
            return ExperimentRecord.from_row(self._experiment_row(session, exp_id))

    def list_experiments(self) -> list[ExperimentRecord]:
        """Every experiment, newest first."""
        stmt = select(ExperimentRow).order_by(ExperimentRow.created_at.desc(), ExperimentRow.id.desc())
        with self._session() as session:
            return [ExperimentRecord.from_row(row) for row in self._rows(session, stmt)]

    def set_experiment_state(self, exp_id: str, new: ExperimentState, *,
                             expected: Iterable[ExperimentState] | None = None,
                             message: str | None = None) -> bool:
        """Move to ``new`` if the state is one of ``expected`` (any when None); True iff it moved.

        ``message`` replaces the stored one (None clears it); ``ended_at`` is set when ``new`` is
        finished and cleared when it is RUNNING (a resume).
        """
        new = ExperimentState(new)
        where = [ExperimentRow.id == exp_id]
        if expected is not None:
            where.append(ExperimentRow.state.in_([ExperimentState(s) for s in expected]))
        ended_at = utcnow() if new.is_finished() else None
        with self._session() as session:
            if self._update(session, ExperimentRow, *where, state=new, message=message, ended_at=ended_at):
                return True
            self._experiment_row(session, exp_id)
            return False

    def select(self, stmt: Select[Unpack[_Ts]]) -> list[Row[Unpack[_Ts]]]:
        """The rows of a read-only query on the models, for faces that sort, filter and page in SQL."""
        with self._session() as session:
            return list(session.execute(stmt).all())

    def update_experiment(self, exp_id: str, *, concurrency: int | None = None,
                          max_trial_number: int | None = None,
                          max_duration: float | None = None, config: dict | None = None) -> ExperimentRecord:
        """Change the budgets (or config) given (None leaves a value as it is); returns the experiment."""
        given = {"concurrency": concurrency, "max_trial_number": max_trial_number,
                 "max_duration": max_duration, "config": config}
        values = {key: value for key, value in given.items() if value is not None}
        with self._session() as session:
            if values:
                self._update(session, ExperimentRow, ExperimentRow.id == exp_id, **values)
            return ExperimentRecord.from_row(self._experiment_row(session, exp_id))

    def delete_experiment(self, exp_id: str) -> None:
        """Remove the experiment with its trials, metrics and events (one transaction)."""
        with self._session() as session:
            self._experiment_row(session, exp_id)
            trial_ids = select(TrialRow.id).where(TrialRow.experiment_id == exp_id).scalar_subquery()
            for model in (MetricRow, EventRow):
                session.execute(delete(model).where(model.trial_id.in_(trial_ids)))
            session.execute(delete(TrialRow).where(TrialRow.experiment_id == exp_id))
            session.execute(delete(ExperimentRow).where(ExperimentRow.id == exp_id))

    def _experiment_row(self, session: Session, exp_id: str) -> ExperimentRow:
        rows = self._rows(session, select(ExperimentRow).where(ExperimentRow.id == exp_id))
        if not rows:
            raise NotFoundError(f"no experiment {exp_id!r} (see `hpoqueue list`)")
        return rows[0]

    # --- trials ----------------------------------------------------------------------------------------

    def create_trials(self, exp_id: str, params_list: Sequence[dict],
                      queues: Sequence[str | None] | None = None) -> list[TrialRecord]:
        """Insert WAITING trials (attempt 1) numbered from the experiment's ``next_seq``, each bound to its
        entry of `queues` when given.

        The seq block is taken with one ``UPDATE ... SET next_seq = next_seq + n RETURNING``, which locks
        the experiment row until commit, so concurrent writers never get the same seq and no seq is reused.
        """
        count = len(params_list)
        with self._session() as session:
            if not count:
                self._experiment_row(session, exp_id)
                return []
            connection = _connection(session)
            end = connection.execute(self._take_seqs, {"_id": exp_id, "_count": count}).scalar()
            if end is None:
                raise NotFoundError(f"no experiment {exp_id!r} (see `hpoqueue list`)")
            now = utcnow()
            values: list[dict[str, Any]]
            values = [dict(id=make_trial_id(exp_id, seq), experiment_id=exp_id, seq=seq, params=params,
                           state=TrialState.WAITING, attempt=1, created_at=now, queue=queue)
                      for seq, params, queue in zip(range(end - count, end), params_list,
                                                    queues or [None] * count, strict=True)]
            connection.execute(_table(TrialRow).insert(), values)
            return [TrialRecord(host=None, gpus=None, pid=None, exit_code=None, exit_reason=None,
                                final_value=None, final_data=None, started_at=None, ended_at=None, **value)
                    for value in values]

    def get_trial(self, trial_id: str) -> TrialRecord:
        with self._session() as session:
            return TrialRecord.from_row(self._trial_row(session, trial_id))

    def trials(self, exp_id: str, *, states: Iterable[TrialState] | None = None, sort: str = "seq",
               optimize_mode: str = "minimize", limit: int | None = None,
               after_seq: int | None = None) -> list[TrialRecord]:
        """The experiment's trials, only those in ``states`` when given, in ``sort`` order: ``seq``, ``state``
        (then seq) or ``value`` (best first under ``optimize_mode``, no value last, then seq); at most
        ``limit`` of them, and only those after seq ``after_seq`` (reading a long experiment page by page).
        Order and limit run in the database: a long experiment is never loaded whole for a top 20."""
        stmt = select(TrialRow).where(TrialRow.experiment_id == exp_id)
        if states is not None:
            stmt = stmt.where(TrialRow.state.in_([TrialState(s) for s in states]))
        if after_seq is not None:
            stmt = stmt.where(TrialRow.seq > after_seq)
        if sort == "value":
            value = best_first(TrialRow.final_value.expression, optimize_mode)
            stmt = stmt.order_by(TrialRow.final_value.is_(None), value, TrialRow.seq)
        else:
            stmt = stmt.order_by(TrialRow.state, TrialRow.seq) if sort == "state" else stmt.order_by(TrialRow.seq)
        stmt = stmt.limit(limit) if limit is not None else stmt
        with self._session() as session:
            rows = self._rows(session, stmt)
            if not rows:
                self._experiment_row(session, exp_id)
            return [TrialRecord.from_row(row) for row in rows]

    def trial_pages(self, exp_id: str, size: int = 1000) -> Iterator[list[TrialRecord]]:
        """The experiment's trials in seq order, `size` at a time, each page its own short read: what a
        long experiment's readers hold at once is one page, not every trial."""
        last = 0
        while page := self.trials(exp_id, limit=size, after_seq=last):
            yield page
            last = page[-1].seq

    def count_trials(self, exp_id: str) -> dict[TrialState, int]:
        """How many trials are in each state; every state is a key, zeros included."""
        stmt = (select(TrialRow.state, func.count()).where(TrialRow.experiment_id == exp_id)
                .group_by(TrialRow.state))
        with self._session() as session:
            counts = {state: 0 for state in TrialState}
            counts.update({TrialState(state): n for state, n in session.execute(stmt)})
            if not any(counts.values()):
                self._experiment_row(session, exp_id)
            return counts

    def transition(self, trial_id: str, new: TrialState, *, expected: Iterable[TrialState],
                   **fields: Any) -> bool:
        """Move the trial to ``new`` (setting ``fields``) only if its state is in ``expected``.

        Returns True iff it moved, so a duplicate or late event is harmless. A finished ``new`` sets
        ``ended_at`` to now unless given.
        """
        new = TrialState(new)
        values = _trial_fields("transition", fields)
        if new.is_finished():
            values.setdefault("ended_at", utcnow())
        states = [TrialState(s) for s in expected]
        with self._session() as session:
            if self._update_trial(session, trial_id, states, state=new, **values):
                return True
            self._trial_row(session, trial_id)
            return False

    def update_trial(self, trial_id: str, **fields: Any) -> None:
        """Set ``fields`` (e.g. a final value arriving) without touching the state."""
        values = _trial_fields("update_trial", fields)
        with self._session() as session:
            if not values or not self._update_trial(session, trial_id, None, **values):
                self._trial_row(session, trial_id)

    def _update_trial(self, session: Session, trial_id: str, states: list[TrialState] | None,
                      **values: Any) -> int:
        """UPDATE one trial (only in ``states`` when given) with a Core statement built once per set of
        columns: the scheduler runs this for every trial event, and building SQL each time cost ~1 ms."""
        key = (*sorted(values), "?state" if states is not None else "")
        stmt = self._trial_updates.get(key)
        if stmt is None:
            table = _table(TrialRow)
            where = [table.c.id == bindparam("_id")]
            if states is not None:
                where.append(table.c.state.in_(bindparam("_states", expanding=True)))
            stmt = update(table).where(*where).values({c: bindparam(c) for c in sorted(values)})
            self._trial_updates[key] = stmt
        params = {"_id": trial_id, **values} if states is None else {"_id": trial_id, "_states": states, **values}
        return _connection(session).execute(stmt, params).rowcount

    def _trial_row(self, session: Session, trial_id: str) -> TrialRow:
        rows = self._rows(session, select(TrialRow).where(TrialRow.id == trial_id))
        if not rows:
            raise NotFoundError(f"no trial {trial_id!r} (trial ids are EXPERIMENT-SEQ; see `hpoqueue list`)")
        return rows[0]

    # --- metrics and events ----------------------------------------------------------------------------

    def add_metric(self, trial_id: str, attempt: int, kind: str, step: int, value: float,
                   data: Any = None) -> bool:
        """Store one metric; a duplicate (same trial, attempt, kind, step) changes nothing and gives False."""
        if kind not in METRIC_KINDS:
            raise ValueError(f"metric kind {kind!r} is not one of {METRIC_KINDS}")
        values = dict(trial_id=trial_id, attempt=attempt, kind=kind, step=step, value=value, data=data,
                      created_at=utcnow())
        with self._session() as session:
            if _connection(session).execute(self._insert_metric, values).first() is not None:
                return True
            self._trial_row(session, trial_id)
            return False

    def metrics(self, trial_id: str, *, kind: str | None = None) -> list[MetricRecord]:
        """The trial's metrics (of ``kind`` when given), ordered by attempt then step."""
        stmt = select(MetricRow).where(MetricRow.trial_id == trial_id).order_by(MetricRow.attempt, MetricRow.kind,
                                                                           MetricRow.step)
        if kind is not None:
            stmt = stmt.where(MetricRow.kind == kind)
        with self._session() as session:
            rows = self._rows(session, stmt)
            if not rows:
                self._trial_row(session, trial_id)
            return [MetricRecord.from_row(row) for row in rows]

    def intermediate_values(self, exp_id: str, *, seqs: tuple[int, int] | None = None) -> dict[str, list[float]]:
        """Trial id -> intermediate values of its current attempt in step order (none: absent); only of the
        trials whose seq is in the inclusive range ``seqs`` when given."""
        stmt = (select(MetricRow.trial_id, MetricRow.value)
                .join(TrialRow, TrialRow.id == MetricRow.trial_id)
                .where(TrialRow.experiment_id == exp_id, MetricRow.kind == "intermediate",
                       MetricRow.attempt == TrialRow.attempt)
                .order_by(TrialRow.seq, MetricRow.step))
        if seqs is not None:
            stmt = stmt.where(TrialRow.seq.between(*seqs))
        result: dict[str, list[float]] = {}
        with self._session() as session:
            for tid, value in session.execute(stmt):
                result.setdefault(tid, []).append(value)
            if not result:
                self._experiment_row(session, exp_id)
        return result

    def curves(self, exp_id: str, *, seqs: tuple[int, int]) -> dict[str, list[MetricRecord]]:
        """Trial id -> the per-step metrics (intermediate results and report_loss's curve) of its current
        attempt in step order, for the trials whose seq is in the inclusive range ``seqs``: one query a page."""
        stmt = (select(MetricRow).join(TrialRow, TrialRow.id == MetricRow.trial_id)
                .where(TrialRow.experiment_id == exp_id, MetricRow.kind.in_(["intermediate", "loss"]),
                       MetricRow.attempt == TrialRow.attempt, TrialRow.seq.between(*seqs))
                .order_by(TrialRow.seq, MetricRow.kind, MetricRow.step))
        result: dict[str, list[MetricRecord]] = {}
        with self._session() as session:
            for row in self._rows(session, stmt):
                result.setdefault(row.trial_id, []).append(MetricRecord.from_row(row))
        return result

    def add_event(self, trial_id: str, attempt: int, kind: str, data: dict | None = None) -> None:
        """Append one entry to the trial's event log (claimed, heartbeat lost, retried, ...)."""
        values = dict(trial_id=trial_id, attempt=attempt, kind=kind, data=data or {}, created_at=utcnow())
        with self._session() as session:
            if _connection(session).execute(self._insert_event, values).first() is None:
                self._trial_row(session, trial_id)

    def _insert_for_trial(self, model: type[MetricRow] | type[EventRow]) -> PgInsert | SqliteInsert:
        """``INSERT ... SELECT :values WHERE the trial exists``, built once: an unknown trial inserts nothing
        instead of breaking a foreign key, which on PostgreSQL would abort the whole surrounding
        transaction(). RETURNING tells whether a row went in (rowcount is -1 for INSERT ... SELECT under
        psycopg)."""
        table = _table(model)
        columns = [c.name for c in table.columns if c.name != "id"]
        params = {name: bindparam(name, type_=table.c[name].type) for name in columns}
        row = select(*params.values()).where(
            select(TrialRow.id).where(TrialRow.id == params["trial_id"]).exists())
        return self._insert(table).from_select(columns, row).returning(table.c.id)

    def started_events(self, trials: Sequence[tuple[str, int]]) -> dict[str, EventRecord]:
        """Trial id -> the last `started` event of the given attempt, for (trial id, attempt) pairs: one
        query a thousand trials, so a listing never reads events trial by trial."""
        wanted = dict(trials)
        result: dict[str, EventRecord] = {}
        ids = list(wanted)
        with self._session() as session:
            for start in range(0, len(ids), 1000):
                stmt = (select(EventRow).where(EventRow.trial_id.in_(ids[start:start + 1000]),
                                               EventRow.kind == "started").order_by(EventRow.id))
                for row in self._rows(session, stmt):
                    if row.attempt == wanted[row.trial_id]:
                        result[row.trial_id] = EventRecord.from_row(row)
        return result

    def events(self, trial_id: str) -> list[EventRecord]:
        """The trial's event log, oldest first."""
        stmt = select(EventRow).where(EventRow.trial_id == trial_id).order_by(EventRow.id)
        with self._session() as session:
            rows = self._rows(session, stmt)
            if not rows:
                self._trial_row(session, trial_id)
            return [EventRecord.from_row(row) for row in rows]


def _disconnected(exc: StatementError) -> bool:
    """Whether the error is the connection going away, not a statement the database refused. (SQLite's
    OperationalError is a locked or broken file, which waiting does not cure.)"""
    if not isinstance(exc, DBAPIError):
        return False
    return exc.connection_invalidated or (isinstance(exc, OperationalError)
                                          and not type(exc.orig).__module__.startswith("sqlite3"))


def _trial_fields(method: str, fields: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(fields) - TRIAL_FIELDS)
    if unknown:
        raise TypeError(f"{method}() got unknown trial field(s) {', '.join(unknown)}; "
                        f"allowed: {', '.join(sorted(TRIAL_FIELDS))}")
    return dict(fields)


def _table(model: type[Base]) -> Table:
    """The model's Table (the ORM types ``__table__`` as any FromClause)."""
    return Base.metadata.tables[model.__tablename__]


def _connection(session: Session) -> Connection:
    """The session's connection, looked up once per session: Session.connection() walks the ORM's
    transaction state on every call, which the scheduler's several writes per event paid each time."""
    connection = session.info.get("connection")
    if connection is None:
        connection = session.info["connection"] = session.connection()
    return connection
