"""``aesweep dashboard [SWEEP_DIR | STORAGE]``: optuna-dashboard on a sweep's study, with each trial's pictures.

A sweep folder names its study and storage in ``study.yaml``; a storage is a journal file, ``sqlite:///path.db``
or ``postgresql://...`` (default: the journal every sweep shares, ``outputs/optuna/journal.log``). The sweeper
uploads each trial's files into ``artifact_dir(storage)``, and the dashboard serves them from there, so a
trial's page shows its confusion matrix and reconstructions. The storage is only read: nothing is created.

Refused in one line, exit status 2: a folder without a study, a storage that cannot be read, a port in use,
optuna-dashboard not installed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from aesweep.errors import AesweepError, one_line
from aesweep.storage import (
    DEFAULT_STORAGE,
    STORAGE_FORMS,
    STUDY_FILE,
    StorageUnavailable,
    is_journal_file,
    local_file,
    rdb_url,
    read_study_file,
)

if TYPE_CHECKING:
    from optuna.storages import BaseStorage

ARTIFACTS_FOLDER = "artifacts"  # beside the storage file: outputs/optuna/artifacts for the default journal
DEFAULT_HOST = "127.0.0.1"  # this machine only: the dashboard can delete studies and has no login
DEFAULT_PORT = 8080  # optuna-dashboard's own default


def artifact_dir(storage: str, launch_dir: Path) -> Path:
    """Where a storage's trial files live: an ``artifacts`` folder beside a journal or SQLite file, and for a
    database server ``<launch_dir>/outputs/optuna/artifacts``."""
    file = local_file(storage)
    folder = file.parent if file is not None else Path(DEFAULT_STORAGE).parent
    return (launch_dir / folder / ARTIFACTS_FOLDER).resolve()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", nargs="?", default=DEFAULT_STORAGE, metavar="SWEEP_DIR | STORAGE",
                        help=f"a sweep folder (holds {STUDY_FILE}) or a storage: {STORAGE_FORMS} "
                             f"(default: {DEFAULT_STORAGE})")
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default: {DEFAULT_HOST})")
    parser.add_argument("--port", type=_port, default=DEFAULT_PORT,
                        help=f"port to listen on; 0 picks a free one (default: {DEFAULT_PORT})")


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed: a port number 0-65535 (0: any free port)")
    return port


def run(args: argparse.Namespace, prog: str) -> int:
    """Open the storage, bind the port, print the URL, serve until Ctrl-C."""
    storage_url, study_name = resolve_target(args.target)
    storage = open_existing_storage(storage_url)
    study_id = _study_id(storage, storage_url, study_name)
    artifacts = artifact_dir(storage_url, Path.cwd())
    server = serve(storage, artifacts, args.host, args.port)
    host, port = server.server_address[:2]
    url = f"http://{host}:{port}/dashboard" + (f"/studies/{study_id}" if study_id is not None else "")
    print(url, flush=True)
    what = f"study '{study_name}' in {storage_url}" if study_name else storage_url
    print(f"{prog}: {what}; trial files from {artifacts}; Ctrl-C to stop", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def resolve_target(target: str) -> tuple[str, str | None]:
    """(storage, study name) for a sweep folder; (storage, None) for a storage string."""
    path = Path(target).expanduser()
    if not path.is_dir():
        return target, None
    info = read_study_file(path)
    if not info:
        raise StorageUnavailable(f"{target} holds no readable {STUDY_FILE}: give a sweep folder "
                                 f"(outputs/sweeps/<sweep>/<time>) or a storage ({STORAGE_FORMS})")
    if not info.get("storage") or not info.get("study_name"):
        raise StorageUnavailable(f"{path / STUDY_FILE} names no storage and study (the study lived in memory)")
    return str(info["storage"]), str(info["study_name"])


def open_existing_storage(storage: str) -> BaseStorage:
    """The storage a string names, read to check it: StorageUnavailable when absent or unreadable, and never
    created (a mistyped path must not become an empty journal)."""
    from optuna.storages import JournalStorage, RDBStorage
    from optuna.storages.journal import JournalFileBackend

    file = local_file(storage)
    if file is not None and not file.is_file():
        raise StorageUnavailable(f"storage {storage} cannot be read: no such file ({STORAGE_FORMS})")
    try:
        if is_journal_file(storage):
            opened: BaseStorage = JournalStorage(JournalFileBackend(str(file)))
        else:
            url, engine_kwargs = rdb_url(storage)
            opened = RDBStorage(url, engine_kwargs=engine_kwargs, skip_table_creation=True)
        opened.get_all_studies()
    except Exception as error:  # Optuna and SQLAlchemy raise many kinds; the user needs one line
        raise StorageUnavailable(f"storage {storage} cannot be read: {one_line(error)}") from None
    return opened


def _study_id(storage: BaseStorage, storage_url: str, study_name: str | None) -> int | None:
    if study_name is None:
        return None
    try:
        return storage.get_study_id_from_name(study_name)
    except KeyError:
        raise StorageUnavailable(f"study '{study_name}' is not in {storage_url} (deleted since the sweep ran?)"
                                 ) from None


class _ThreadedServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a browser's open connections must not keep Ctrl-C from ending the command


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # one line per request would bury the URL
        pass


def serve(storage: BaseStorage, artifacts: Path, host: str, port: int) -> WSGIServer:
    """optuna-dashboard's WSGI app on a bound server (not yet serving); a port in use is refused in one line."""
    try:
        from optuna.artifacts import FileSystemArtifactStore
        from optuna_dashboard import wsgi
    except ImportError:
        raise AesweepError("optuna-dashboard is not installed: pip install -e '.[dashboard]'") from None
    app = wsgi(storage, artifact_store=FileSystemArtifactStore(artifacts))
    try:
        return make_server(host, port, app, server_class=_ThreadedServer, handler_class=_QuietHandler)
    except OSError as error:
        raise AesweepError(f"--port={port} on {host} is not free: {error.strerror or one_line(error)} "
                           "(pick another with --port, or --port 0 for any free one)") from None
