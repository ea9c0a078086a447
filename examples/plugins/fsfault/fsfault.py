#!/usr/bin/env python3
"""fsfault: a chaoshub plugin (protocol v1) that injects real faults into local directories.

Faults (Chaos Mesh PhysicalMachineChaos actions, with Chaos Mesh's field names):

  disk-fill    writes a file of `disk-fill.size` bytes named after the injection id into the
               target directory (or the directory `disk-fill.path` inside it), with zeros or,
               when `disk-fill.fill-by-fallocate` is true, with fallocate(2).
  file-create  creates the file `file-create.file-name` or the directory
               `file-create.dir-name` inside the target directory; refuses one that exists.
  file-append  appends `file-append.data` (`count` times, one line each) to the existing file
               `file-append.file-name` inside the target directory; recovery cuts out exactly
               the appended bytes, keeping anything written after them.

Every fault is written to a journal under --state-dir before it is applied. A reaper thread
removes each fault at its deadline plus --grace-secs (a dead man's switch: a fault never
outlives a hub that died), and on start the plugin removes whatever its journal says it left.

Standard library only; see README.md next to this file and docs/plugins.md for the protocol.
"""

from __future__ import annotations

import argparse
import datetime as dt
import errno
import hashlib
import hmac
import http.server
import json
import logging
import os
import re
import signal
import sys
import threading
import time
from typing import Any

PROTOCOL = "v1"
PLUGIN_NAME = "fsfault"
PLUGIN_VERSION = "0.1.0"
KIND = "PhysicalMachineChaos"
MAX_BODY_BYTES = 1024 * 1024
INJECTION_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
FILL_PREFIX = "chaoshub-fill-"
MAX_APPEND_BYTES = 16 * 1024 * 1024

# Chaos Mesh's disk-fill size units (see the PhysicalMachineChaos CRD): c=1, w=2, b=512,
# kB=1000, K=1024, MB=1000*1000, M=1024*1024, GB=1000*1000*1000, G=1024*1024*1024. A bare
# number is bytes.
SIZE_UNITS = {
    "": 1,
    "c": 1,
    "w": 2,
    "b": 512,
    "kB": 1000,
    "K": 1024,
    "MB": 1000**2,
    "M": 1024**2,
    "GB": 1000**3,
    "G": 1024**3,
}
SIZE_RE = re.compile(r"^\s*(\d+)\s*([A-Za-z]*)\s*$")

log = logging.getLogger(PLUGIN_NAME)


class PluginError(Exception):
    """An error answered as `{"error": {"code", "message"}}` with an HTTP status."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def bad_spec(path: str, message: str) -> PluginError:
    return PluginError(400, "invalid_spec", f"{path}: {message}")


# ---------------------------------------------------------------------------------------------
# Small helpers


def parse_size(text: Any, path: str) -> int:
    if isinstance(text, int) and not isinstance(text, bool):
        if text <= 0:
            raise bad_spec(path, "must be positive")
        return text
    if not isinstance(text, str):
        raise bad_spec(path, f"must be a string like \"1MB\", got {type(text).__name__}")
    match = SIZE_RE.match(text)
    if not match or match.group(2) not in SIZE_UNITS:
        units = ", ".join(u for u in SIZE_UNITS if u)
        raise bad_spec(path, f"{text!r} is not a size; use a number with one of the units {units}")
    size = int(match.group(1)) * SIZE_UNITS[match.group(2)]
    if size <= 0:
        raise bad_spec(path, "must be positive")
    return size


def parse_deadline(value: Any) -> float | None:
    """RFC 3339 → epoch seconds. Accepts `Z` and any number of fraction digits (chrono sends
    nanoseconds, which datetime.fromisoformat in 3.11 does not take)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise PluginError(400, "invalid_request", "deadline: must be an RFC 3339 string or null")
    match = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", value.strip())
    if not match:
        raise PluginError(400, "invalid_request", f"deadline: {value!r} is not an RFC 3339 timestamp")
    base, fraction, zone = match.groups()
    zone = "+00:00" if zone == "Z" else zone
    parsed = dt.datetime.fromisoformat(base + zone)
    seconds = parsed.timestamp()
    if fraction:
        seconds += float("0" + fraction)
    return seconds


def canonical_hash(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def inside(base: str, candidate: str) -> bool:
    base = os.path.realpath(base)
    candidate = os.path.realpath(candidate)
    return candidate == base or candidate.startswith(base + os.sep)


def resolve_inside(base: str, relative: Any, path: str, allow_base: bool = False) -> str:
    """A path named by the spec, which must stay inside the target directory."""
    if not isinstance(relative, str) or not relative.strip():
        raise bad_spec(path, "must be a non-empty string")
    joined = os.path.normpath(os.path.join(base, relative))
    if not inside(base, joined) or (not allow_base and os.path.realpath(joined) == os.path.realpath(base)):
        raise bad_spec(path, f"{relative!r} is outside the target directory {base}")
    return joined


def now() -> float:
    return time.time()


# ---------------------------------------------------------------------------------------------
# Faults. Each one has: plan (validate the spec, no side effects) → record; apply(record);
# check(record) → (state, message); remove(record). A record is plain JSON: it is journaled and
# returned to the hub as `details`, so the plugin can act on it after a restart.


class DiskFill:
    action = "disk-fill"

    def __init__(self, max_fill_bytes: int):
        self.max_fill_bytes = max_fill_bytes

    def plan(self, injection_id: str, target_dir: str, spec: dict) -> dict:
        block = spec.get("disk-fill")
        if not isinstance(block, dict):
            raise bad_spec("spec.disk-fill", "required for action disk-fill: {size, path?, fill-by-fallocate?}")
        if "size" not in block:
            raise bad_spec("spec.disk-fill.size", "required, e.g. \"100MB\"")
        size = parse_size(block["size"], "spec.disk-fill.size")
        if size > self.max_fill_bytes:
            raise bad_spec(
                "spec.disk-fill.size",
                f"{size} bytes is more than this plugin allows ({self.max_fill_bytes}, --max-fill-bytes)",
            )
        fallocate = block.get("fill-by-fallocate", False)
        if not isinstance(fallocate, bool):
            raise bad_spec("spec.disk-fill.fill-by-fallocate", "must be a boolean")
        directory = target_dir
        if block.get("path") not in (None, ""):
            directory = resolve_inside(target_dir, block["path"], "spec.disk-fill.path", allow_base=True)
            if not os.path.isdir(directory):
                raise bad_spec("spec.disk-fill.path", f"{directory} is not an existing directory")
        return {
            "action": self.action,
            "path": os.path.join(directory, FILL_PREFIX + injection_id),
            "sizeBytes": size,
            "fillByFallocate": fallocate,
        }

    def apply(self, record: dict) -> None:
        path, size = record["path"], record["sizeBytes"]
        if self.check(record)[0] == "active":
            return
        partial = path + ".partial"
        try:
            with open(partial, "wb") as f:
                if record["fillByFallocate"]:
                    os.posix_fallocate(f.fileno(), 0, size)
                else:
                    chunk = b"\0" * (1024 * 1024)
                    left = size
                    while left > 0:
                        left -= f.write(chunk[: min(left, len(chunk))])
                f.flush()
                os.fsync(f.fileno())
            # Renamed only once complete, so status never mistakes a half-written file for the fault.
            os.replace(partial, path)
        except OSError as e:
            for leftover in (partial, path):
                try:
                    os.unlink(leftover)
                except FileNotFoundError:
                    pass
            if e.errno == errno.ENOSPC:
                raise PluginError(507, "insufficient_storage", f"cannot fill {size} bytes at {path}: no space left")
            raise PluginError(500, "io_error", f"cannot fill {path}: {e}")

    def check(self, record: dict) -> tuple[str, str | None]:
        try:
            actual = os.stat(record["path"]).st_size
        except FileNotFoundError:
            return "absent", f"{record['path']} does not exist"
        if actual == record["sizeBytes"]:
            return "active", f"{record['path']} holds {actual} bytes"
        return "unknown", f"{record['path']} holds {actual} bytes, expected {record['sizeBytes']}"

    def remove(self, record: dict) -> None:
        for leftover in (record["path"], record["path"] + ".partial"):
            try:
                os.unlink(leftover)
            except FileNotFoundError:
                pass
            except OSError as e:
                raise PluginError(500, "io_error", f"cannot remove {leftover}: {e}")

    def owned_paths(self, record: dict) -> list[str]:
        return [record["path"]]


class FileCreate:
    action = "file-create"

    def plan(self, injection_id: str, target_dir: str, spec: dict) -> dict:
        block = spec.get("file-create")
        if not isinstance(block, dict):
            raise bad_spec("spec.file-create", "required for action file-create: {file-name} or {dir-name}")
        file_name, dir_name = block.get("file-name"), block.get("dir-name")
        if bool(file_name) == bool(dir_name):
            raise bad_spec("spec.file-create", "give exactly one of file-name and dir-name")
        field = "file-name" if file_name else "dir-name"
        path = resolve_inside(target_dir, file_name or dir_name, f"spec.file-create.{field}")
        if not os.path.isdir(os.path.dirname(path)):
            raise bad_spec(f"spec.file-create.{field}", f"the parent directory of {path} does not exist")
        return {"action": self.action, "path": path, "type": "file" if file_name else "directory"}

    def apply(self, record: dict) -> None:
        path = record["path"]
        # Already created by this injection (a repeated inject): nothing to do. Without an inode
        # on record, an existing path is somebody else's.
        if "inode" in record and self.check(record)[0] == "active":
            return
        try:
            if record["type"] == "file":
                # O_EXCL: never take over a file somebody else created.
                os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
            else:
                os.mkdir(path, 0o755)
        except FileExistsError:
            raise PluginError(409, "conflict", f"{path} already exists and was not created by this plugin")
        except OSError as e:
            raise PluginError(500, "io_error", f"cannot create {path}: {e}")
        stat = os.stat(path)
        record["inode"] = stat.st_ino

    def check(self, record: dict) -> tuple[str, str | None]:
        path = record["path"]
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            return "absent", f"{path} does not exist"
        if record.get("inode") not in (None, stat.st_ino):
            return "unknown", f"{path} exists but was replaced by somebody else"
        return "active", f"{path} exists"

    def remove(self, record: dict) -> None:
        path = record["path"]
        state, message = self.check(record)
        if state == "absent":
            return
        if state != "active":
            # Own only what you added: a replaced file belongs to whoever replaced it.
            log.warning("not removing %s: %s", path, message)
            return
        try:
            if record["type"] == "file":
                os.unlink(path)
            else:
                os.rmdir(path)
        except FileNotFoundError:
            pass
        except OSError as e:
            if e.errno == errno.ENOTEMPTY:
                raise PluginError(409, "conflict", f"{path} is no longer empty; move its contents away and recover again")
            raise PluginError(500, "io_error", f"cannot remove {path}: {e}")

    def owned_paths(self, record: dict) -> list[str]:
        return [record["path"]]


class FileAppend:
    action = "file-append"

    def plan(self, injection_id: str, target_dir: str, spec: dict) -> dict:
        block = spec.get("file-append")
        if not isinstance(block, dict):
            raise bad_spec("spec.file-append", "required for action file-append: {file-name, data, count?}")
        path = resolve_inside(target_dir, block.get("file-name"), "spec.file-append.file-name")
        if not os.path.isfile(path):
            raise bad_spec("spec.file-append.file-name", f"{path} is not an existing regular file")
        data = block.get("data")
        if not isinstance(data, str) or not data:
            raise bad_spec("spec.file-append.data", "required: the text to append")
        count = block.get("count", 1)
        if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 100000:
            raise bad_spec("spec.file-append.count", "must be an integer from 1 to 100000")
        line = data if data.endswith("\n") else data + "\n"
        payload = (line * count).encode()
        if len(payload) > MAX_APPEND_BYTES:
            raise bad_spec("spec.file-append", f"data × count is more than {MAX_APPEND_BYTES} bytes")
        return {
            "action": self.action,
            "path": path,
            "data": line,
            "count": count,
            "appendedBytes": len(payload),
            "appendedSha256": hashlib.sha256(payload).hexdigest(),
        }

    def _payload(self, record: dict) -> bytes:
        return (record["data"] * record["count"]).encode()

    def _find(self, record: dict) -> tuple[bytes | None, int | None]:
        """The file's content and the offset of our appended bytes in it (None when absent)."""
        try:
            with open(record["path"], "rb") as f:
                content = f.read()
        except FileNotFoundError:
            return None, None
        offset = record.get("offset")
        payload = self._payload(record)
        if offset is not None and content[offset : offset + len(payload)] == payload:
            return content, offset
        return content, None

    def prepare(self, record: dict) -> None:
        """Notes where the appended bytes will start, before anything is written, so the journal
        entry written before `apply` already locates them."""
        if record.get("offset") is None:
            try:
                size = os.stat(record["path"]).st_size
            except OSError as e:
                raise PluginError(500, "io_error", f"cannot stat {record['path']}: {e}")
            record["offset"] = size
            record["originalSize"] = size

    def apply(self, record: dict) -> None:
        if record.get("offset") is not None and self._find(record)[1] is not None:
            return
        path = record["path"]
        try:
            with open(path, "ab") as f:
                if f.tell() != record.get("offset"):
                    # Somebody wrote in between: our bytes start where the file ends now.
                    record["offset"] = f.tell()
                    record["originalSize"] = f.tell()
                f.write(self._payload(record))
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            raise PluginError(500, "io_error", f"cannot append to {path}: {e}")

    def check(self, record: dict) -> tuple[str, str | None]:
        content, offset = self._find(record)
        if content is None:
            return "absent", f"{record['path']} does not exist"
        if offset is not None:
            return "active", f"{record['appendedBytes']} appended bytes at offset {offset} of {record['path']}"
        return "absent", f"the appended bytes are not in {record['path']}"

    def remove(self, record: dict) -> None:
        content, offset = self._find(record)
        if content is None or offset is None:
            return
        # Cut out exactly our bytes: anything appended after them stays. The tail is read again
        # right before writing so lines a writer added meanwhile are kept.
        end = offset + record["appendedBytes"]
        try:
            with open(record["path"], "r+b") as f:
                f.seek(end)
                rest = f.read()
                f.seek(offset)
                f.write(rest)
                f.truncate(offset + len(rest))
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            raise PluginError(500, "io_error", f"cannot remove the appended bytes from {record['path']}: {e}")

    def owned_paths(self, record: dict) -> list[str]:
        return []


# ---------------------------------------------------------------------------------------------
# Journal


class Journal:
    """injectionId → entry, persisted to <state-dir>/journal.json with write-then-rename."""

    def __init__(self, state_dir: str):
        os.makedirs(state_dir, exist_ok=True)
        self.path = os.path.join(state_dir, "journal.json")
        self.entries: dict[str, dict] = {}
        if os.path.exists(self.path):
            with open(self.path) as f:
                self.entries = json.load(f).get("injections", {})

    def save(self) -> None:
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"injections": self.entries}, f, indent=2, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def put(self, injection_id: str, entry: dict) -> None:
        self.entries[injection_id] = entry
        self.save()

    def drop(self, injection_id: str) -> None:
        if self.entries.pop(injection_id, None) is not None:
            self.save()


# ---------------------------------------------------------------------------------------------
# The plugin


class Plugin:
    def __init__(self, targets: dict, labels: dict, state_dir: str, grace_secs: float, max_fill_bytes: int):
        self.targets = targets  # id → directory
        self.labels = labels  # id → {key: value}
        self.grace_secs = grace_secs
        self.faults = {f.action: f for f in (DiskFill(max_fill_bytes), FileCreate(), FileAppend())}
        # One lock for everything: faults are few and file operations short, and a single lock
        # makes inject/recover/reap trivially race-free.
        self.lock = threading.RLock()
        self.journal = Journal(state_dir)

    # -- protocol operations

    def describe(self) -> dict:
        return {
            "name": PLUGIN_NAME,
            "version": PLUGIN_VERSION,
            "protocol": PROTOCOL,
            "capabilities": [{"kind": KIND, "action": action} for action in self.faults],
        }

    def list_targets(self) -> dict:
        targets = []
        for target_id, directory in sorted(self.targets.items()):
            targets.append(
                {
                    "kind": "directory",
                    "id": target_id,
                    "name": target_id,
                    "labels": dict(self.labels.get(target_id, {})),
                    "annotations": {"fsfault/path": directory},
                }
            )
        return {"targets": targets}

    def target_dir(self, target: Any) -> tuple[str, str]:
        if not isinstance(target, dict) or not isinstance(target.get("id"), str):
            raise PluginError(400, "invalid_request", "target.id: required")
        target_id = target["id"]
        if target_id not in self.targets:
            known = ", ".join(sorted(self.targets)) or "none"
            raise PluginError(404, "unknown_target", f"no target {target_id!r} here (known: {known})")
        return target_id, self.targets[target_id]

    def inject(self, body: dict) -> dict:
        injection_id = injection_id_of(body)
        if body.get("kind") != KIND:
            raise PluginError(422, "unsupported", f"kind {body.get('kind')!r} is not supported; only {KIND}")
        spec = body.get("spec")
        if not isinstance(spec, dict):
            raise PluginError(400, "invalid_request", "spec: must be an object")
        action = spec.get("action")
        if action not in self.faults:
            raise PluginError(
                422, "unsupported", f"{KIND}/{action} is not supported (supported: {', '.join(self.faults)})"
            )
        target_id, target_dir = self.target_dir(body.get("target"))
        deadline = parse_deadline(body.get("deadline"))
        fault = self.faults[action]
        # The fault is identified by what it does, not by incidental fields such as the deadline.
        fingerprint = canonical_hash({"action": action, "target": target_id, "block": spec.get(action)})
        with self.lock:
            entry = self.journal.entries.get(injection_id)
            if entry is not None:
                if entry["fingerprint"] != fingerprint:
                    raise PluginError(
                        409,
                        "conflict",
                        f"injection {injection_id} already exists with a different target or spec",
                    )
                # Idempotent: make sure it is still in place and answer the same details.
                fault.apply(entry["record"])
                self.journal.put(injection_id, entry)
                return {"details": self.details(entry)}
            record = fault.plan(injection_id, target_dir, spec)
            entry = {
                "injectionId": injection_id,
                "experimentUid": body.get("experimentUid"),
                "targetId": target_id,
                "fingerprint": fingerprint,
                "deadline": deadline,
                "removeAt": None if deadline is None else deadline + self.grace_secs,
                "createdAt": now(),
                "record": record,
            }
            # Journal first: if we die half-way, the restart removes the partial fault.
            prepare = getattr(fault, "prepare", None)
            if prepare is not None:
                prepare(record)
            self.journal.put(injection_id, entry)
            try:
                fault.apply(record)
            except Exception:
                self.journal.drop(injection_id)
                raise
            self.journal.put(injection_id, entry)
            log.info("injected %s %s into %s: %s", injection_id, action, target_id, record)
            return {"details": self.details(entry)}

    def details(self, entry: dict) -> dict:
        details = dict(entry["record"])
        details["targetId"] = entry["targetId"]
        details["removeAt"] = entry["removeAt"]
        return details

    def record_for(self, body: dict) -> tuple[str, dict | None]:
        """The journaled record, else one rebuilt from the details the hub handed back (checked
        to stay inside the target, as the hub is not trusted to name arbitrary paths)."""
        injection_id = injection_id_of(body)
        target_id, target_dir = self.target_dir(body.get("target"))
        entry = self.journal.entries.get(injection_id)
        if entry is not None:
            return injection_id, entry["record"]
        details = body.get("details")
        if not isinstance(details, dict) or details.get("action") not in self.faults:
            return injection_id, None
        if not isinstance(details.get("path"), str) or not inside(target_dir, details["path"]):
            raise PluginError(400, "invalid_request", "details.path: not inside the target directory")
        if details["action"] == "disk-fill" and not os.path.basename(details["path"]) == FILL_PREFIX + injection_id:
            raise PluginError(400, "invalid_request", "details.path: not a fill file of this injection")
        if details["action"] == "file-create" and not isinstance(details.get("inode"), int):
            # Without the inode we created, a path alone could name a user's file.
            raise PluginError(400, "invalid_request", "details.inode: required to recover a file-create without a journal entry")
        return injection_id, details

    def status(self, body: dict) -> dict:
        with self.lock:
            injection_id, record = self.record_for(body)
            if record is None:
                return {"state": "absent", "message": f"no injection {injection_id} here"}
            try:
                state, message = self.faults[record["action"]].check(record)
            except (KeyError, TypeError) as e:
                return {"state": "unknown", "message": f"details are incomplete: {e}"}
            return {"state": state, "message": message}

    def recover(self, body: dict) -> dict:
        with self.lock:
            injection_id, record = self.record_for(body)
            if record is not None:
                self.faults[record["action"]].remove(record)
                log.info("recovered %s", injection_id)
            self.journal.drop(injection_id)
            return {"recovered": record is not None}

    # -- the dead man's switch

    def reap_expired(self) -> None:
        with self.lock:
            due = [
                (injection_id, entry)
                for injection_id, entry in self.journal.entries.items()
                if entry.get("removeAt") is not None and entry["removeAt"] <= now()
            ]
            for injection_id, entry in due:
                self.remove_entry(injection_id, entry, "its deadline plus grace passed")

    def remove_all(self, why: str) -> None:
        with self.lock:
            for injection_id, entry in list(self.journal.entries.items()):
                self.remove_entry(injection_id, entry, why)

    def remove_entry(self, injection_id: str, entry: dict, why: str) -> None:
        record = entry["record"]
        try:
            self.faults[record["action"]].remove(record)
        except PluginError as e:
            log.error("cannot remove %s (%s): %s", injection_id, why, e.message)
            return
        except Exception as e:  # noqa: BLE001 - one stuck fault must not stop the others' removal
            log.error("cannot remove %s (%s): %s", injection_id, why, e)
            return
        self.journal.drop(injection_id)
        log.warning("removed %s by itself: %s", injection_id, why)


def injection_id_of(body: dict) -> str:
    injection_id = body.get("injectionId")
    if not isinstance(injection_id, str) or not INJECTION_ID_RE.match(injection_id):
        raise PluginError(
            400, "invalid_request", "injectionId: required, 1-128 characters of letters, digits, '.', '_' or '-'"
        )
    return injection_id


# ---------------------------------------------------------------------------------------------
# HTTP


def make_handler(plugin: Plugin, token: str | None):
    class Handler(http.server.BaseHTTPRequestHandler):
        server_version = f"{PLUGIN_NAME}/{PLUGIN_VERSION}"
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes; on a kept-alive connection Nagle's algorithm
        # holds the body until the client's delayed ACK (about 40 ms per call). The hub keeps
        # its connection to a plugin alive, so every call would pay it.
        disable_nagle_algorithm = True

        routes = {
            ("GET", "/v1/describe"): lambda body: plugin.describe(),
            ("GET", "/v1/targets"): lambda body: plugin.list_targets(),
            ("POST", "/v1/inject"): plugin.inject,
            ("POST", "/v1/status"): plugin.status,
            ("POST", "/v1/recover"): plugin.recover,
        }

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            self.dispatch("GET")

        def do_POST(self) -> None:  # noqa: N802
            self.dispatch("POST")

        def dispatch(self, method: str) -> None:
            try:
                self.check_token()
                path = self.path.split("?", 1)[0]
                route = self.routes.get((method, path))
                if route is None:
                    if any(p == path for (_, p) in self.routes):
                        raise PluginError(405, "method_not_allowed", f"{method} {path} is not allowed")
                    raise PluginError(404, "not_found", f"no such endpoint {path} (protocol {PROTOCOL})")
                body = self.read_body() if method == "POST" else {}
                self.answer(200, route(body))
            except PluginError as e:
                self.answer(e.status, {"error": {"code": e.code, "message": e.message}})
            except Exception as e:  # a bug: answer 500 rather than dropping the connection
                log.exception("internal error")
                self.answer(500, {"error": {"code": "internal", "message": f"{type(e).__name__}: {e}"}})

        def check_token(self) -> None:
            if token is None:
                return
            given = self.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                raise PluginError(401, "unauthorized", "missing or wrong bearer token")

        def read_body(self) -> dict:
            try:
                length = int(self.headers.get("Content-Length", "0"))
            except ValueError:
                raise PluginError(400, "invalid_request", "bad Content-Length")
            if length > MAX_BODY_BYTES:
                raise PluginError(413, "too_large", f"bodies are limited to {MAX_BODY_BYTES} bytes")
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw or b"{}")
            except json.JSONDecodeError as e:
                raise PluginError(400, "invalid_request", f"body is not JSON: {e}")
            if not isinstance(body, dict):
                raise PluginError(400, "invalid_request", "body must be a JSON object")
            return body

        def answer(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, fmt: str, *args: Any) -> None:
            log.debug("%s %s", self.address_string(), fmt % args)

    return Handler


# ---------------------------------------------------------------------------------------------
# Command line


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="chaoshub plugin (protocol v1): real filesystem faults")
    parser.add_argument("--listen", default="127.0.0.1:8470", help="HOST:PORT; port 0 picks a free one")
    parser.add_argument("--port-file", help="write the bound port here once listening")
    parser.add_argument(
        "--target", action="append", default=[], metavar="ID=DIR", help="a target directory (repeatable)"
    )
    parser.add_argument(
        "--label", action="append", default=[], metavar="ID:KEY=VALUE", help="a label of a target (repeatable)"
    )
    parser.add_argument("--state-dir", required=True, help="where the journal lives")
    parser.add_argument("--grace-secs", type=float, default=30.0, help="removal delay after a deadline")
    parser.add_argument("--reap-interval-secs", type=float, default=1.0, help="how often deadlines are checked")
    parser.add_argument("--max-fill-bytes", type=int, default=1024**3, help="largest disk-fill allowed")
    parser.add_argument("--token", default=os.environ.get("FSFAULT_TOKEN"), help="require this bearer token")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)

    targets: dict[str, str] = {}
    for spec in args.target:
        target_id, sep, directory = spec.partition("=")
        if not sep or not INJECTION_ID_RE.match(target_id) or not os.path.isdir(directory):
            parser.error(f"--target {spec!r}: expected ID=DIR with an existing directory")
        targets[target_id] = os.path.realpath(directory)
    labels: dict[str, dict[str, str]] = {}
    for spec in args.label:
        target_id, sep1, pair = spec.partition(":")
        key, sep2, value = pair.partition("=")
        if not sep1 or not sep2 or not key or target_id not in targets:
            parser.error(f"--label {spec!r}: expected ID:KEY=VALUE for a --target ID")
        labels.setdefault(target_id, {})[key] = value
    args.targets, args.labels = targets, labels
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    plugin = Plugin(args.targets, args.labels, args.state_dir, args.grace_secs, args.max_fill_bytes)
    plugin.remove_all("a previous run left it behind")

    host, _, port = args.listen.rpartition(":")
    server = http.server.ThreadingHTTPServer((host or "127.0.0.1", int(port)), make_handler(plugin, args.token))
    server.daemon_threads = True
    bound = server.server_address[1]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{bound}\n")
        os.replace(tmp, args.port_file)  # readers never see a half-written port
    log.info("listening on %s:%d with targets %s", host, bound, args.targets)

    stop = threading.Event()

    def reaper() -> None:
        while not stop.wait(args.reap_interval_secs):
            try:
                plugin.reap_expired()
            except Exception:
                log.exception("reaper failed")

    threading.Thread(target=reaper, name="reaper", daemon=True).start()

    def shutdown(signum: int, _frame: Any) -> None:
        log.info("signal %d: shutting down", signum)
        stop.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    server.serve_forever()
    # Nobody polices the faults once we are gone, so a clean stop removes them all. (A crash
    # leaves them to the next start, which removes them from the journal.)
    plugin.remove_all("the plugin is stopping")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
