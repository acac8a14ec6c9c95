"""Shared helpers for the Switchboard interop scripts in tests/interop/.

- a tiny check runner (`check`, `summary_and_exit`): one `ok`/`FAIL` line per check, a final
  `N passed, N failed` line, exit status 1 on any failure;
- `Gateway`: starts `<bin> serve` on ephemeral 127.0.0.1 ports in a fresh temp dir and stops it;
- SDK / raw HTTP client factories that never use a proxy (127.0.0.1 only);
- `Upstream`: a child process (an MCP server fixture) started, waited for (bounded port polling)
  and stopped by PID;
- `main_with_gateway`: argument parsing + gateway lifecycle shared by the scripts.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

try:  # mistralai 3.7.0 ships on top of `httpx2` (same API as httpx)
    import httpx2 as httpx
except ImportError:  # pragma: no cover
    import httpx  # type: ignore

from mistralai.client import Mistral, errors

STARTUP_TIMEOUT_S = float(os.environ.get("INTEROP_STARTUP_TIMEOUT", "60"))
REQUEST_TIMEOUT_S = 30.0
LOOPBACK = "127.0.0.1"

# --------------------------------------------------------------------------------------------
# tiny runner
# --------------------------------------------------------------------------------------------

RESULTS: List[bool] = []
VERBOSE = bool(os.environ.get("INTEROP_VERBOSE"))


def _one_line(text: Any, limit: int = 600) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + "..."


one_line = _one_line


def check(name: str, fn: Callable[[], Any]) -> bool:
    """Run one check; print exactly one line for it."""
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - every failure is a failed check
        RESULTS.append(False)
        print(f"FAIL {name}: {type(exc).__name__}: {_one_line(exc)}", flush=True)
        if VERBOSE:
            traceback.print_exc(file=sys.stderr)
        return False
    RESULTS.append(True)
    print(f"ok   {name}", flush=True)
    return True


def record_abort(exc: BaseException) -> None:
    """A bug in the harness itself: count it as one failure."""
    RESULTS.append(False)
    print(f"FAIL test harness aborted: {type(exc).__name__}: {_one_line(exc)}", flush=True)
    traceback.print_exc(file=sys.stderr)


def summary_and_exit() -> None:
    passed = sum(1 for r in RESULTS if r)
    failed = len(RESULTS) - passed
    print(f"{passed} passed, {failed} failed", flush=True)
    sys.exit(1 if failed else 0)


# --------------------------------------------------------------------------------------------
# gateway process
# --------------------------------------------------------------------------------------------


class Gateway:
    def __init__(self, binary: str, extra_env: Optional[Mapping[str, str]] = None):
        self.binary = binary
        self.tmp = tempfile.mkdtemp(prefix="switchboard-interop-")
        self.bootstrap_key = "sbk_" + secrets.token_urlsafe(32)
        # Inherit the environment, minus any SWITCHBOARD_* variable of the caller (e.g. the
        # harness' own SWITCHBOARD_BIN): the gateway rejects SWITCHBOARD_* names it does not know,
        # and a developer's settings must not leak into this hermetic run.
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
        self.env.update(
            {
                "SWITCHBOARD_API_LISTEN": f"{LOOPBACK}:0",
                "SWITCHBOARD_ADMIN_LISTEN": f"{LOOPBACK}:0",
                "SWITCHBOARD_STORE_URL": f"sqlite://{self.tmp}/switchboard.db",
                "SWITCHBOARD_VAULT_KEY_FILE": f"{self.tmp}/vault.key",
                "SWITCHBOARD_AUTH_BOOTSTRAP_KEY": self.bootstrap_key,
                "SWITCHBOARD_LOG_FORMAT": "json",
                # upstream fixtures run on loopback over plain HTTP (the SSRF guard's allow-list)
                "SWITCHBOARD_OUTBOUND_ALLOW": "127.0.0.0/8,::1",
                "SWITCHBOARD_OUTBOUND_ALLOW_HTTP": "true",
            }
        )
        if extra_env:
            self.env.update(extra_env)
        self.proc: Optional[subprocess.Popen] = None
        self.lines: List[str] = []
        self._lines_lock = threading.Lock()
        self._queue: "queue.Queue[Optional[str]]" = queue.Queue()
        self.api: Optional[str] = None
        self.admin: Optional[str] = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "serve"],
            env=self.env,
            cwd=self.tmp,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
        )
        threading.Thread(target=self._drain, daemon=True).start()
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RuntimeError(
                    f"no 'switchboard listening' log line within {STARTUP_TIMEOUT_S:.0f}s; "
                    f"output so far:\n{self.output()}"
                )
            try:
                line = self._queue.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                continue
            if line is None:  # EOF: the process exited (or closed stdout)
                try:
                    rc = self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    rc = "still running, stdout closed"
                raise RuntimeError(
                    f"gateway exited before it was ready (status {rc}); output:\n{self.output()}"
                )
            addrs = self._parse_listening(line)
            if addrs:
                self.api, self.admin = addrs
                return

    @staticmethod
    def _parse_listening(line: str):
        try:
            obj = json.loads(line)
        except ValueError:
            return None
        if not isinstance(obj, dict):
            return None
        fields = obj.get("fields")
        if not isinstance(fields, dict):
            return None
        if fields.get("message") != "switchboard listening":
            return None
        api, admin = fields.get("api"), fields.get("admin")
        if not isinstance(api, str) or not api:
            raise RuntimeError(f"'switchboard listening' line without fields.api: {line!r}")
        return api, admin if isinstance(admin, str) else None

    def _drain(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            with self._lines_lock:
                self.lines.append(line)
            self._queue.put(line)
        self._queue.put(None)

    def output(self) -> str:
        with self._lines_lock:
            return "\n".join(self.lines)

    def mark(self) -> int:
        """Current log position, for `output_since`."""
        with self._lines_lock:
            return len(self.lines)

    def output_since(self, mark: int) -> str:
        with self._lines_lock:
            return "\n".join(self.lines[mark:])

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- helpers -----------------------------------------------------------------------------
    def create_key(self, user: str, workspace: str, org: str, admin: bool = False) -> str:
        cmd = [self.binary, "keys", "create", "--user", user, "--workspace", workspace, "--org", org]
        if admin:
            cmd.append("--admin")
        res = subprocess.run(
            cmd, env=self.env, cwd=self.tmp, capture_output=True, text=True, timeout=60,
            stdin=subprocess.DEVNULL,
        )
        if res.returncode != 0:
            raise RuntimeError(
                f"{' '.join(cmd)} exited {res.returncode}; stdout={res.stdout!r} stderr={res.stderr!r}"
            )
        lines = [l.strip() for l in res.stdout.splitlines() if l.strip()]
        if not lines:
            raise RuntimeError(f"{' '.join(cmd)} printed nothing; stderr={res.stderr!r}")
        return lines[-1]

    @property
    def base_url(self) -> str:
        return f"http://{self.api}"


# --------------------------------------------------------------------------------------------
# SDK / raw HTTP helpers
# --------------------------------------------------------------------------------------------


def http_client(event_hooks: Optional[Dict[str, list]] = None, **kwargs: Any) -> "httpx.Client":
    return httpx.Client(
        trust_env=False,  # never go through a proxy: 127.0.0.1 only
        follow_redirects=False,
        timeout=REQUEST_TIMEOUT_S,
        event_hooks=event_hooks or {},
        **kwargs,
    )


def sdk_client(base_url: str, key: Optional[str], event_hooks: Optional[Dict[str, list]] = None) -> Mistral:
    return Mistral(api_key=key, server_url=base_url, client=http_client(event_hooks),
                   timeout_ms=int(REQUEST_TIMEOUT_S * 1000))


def raw_client(base_url: str) -> "httpx.Client":
    return httpx.Client(base_url=base_url, trust_env=False, timeout=REQUEST_TIMEOUT_S)


def bearer(key: str) -> Dict[str, str]:
    return {"Authorization": f"Bearer {key}", "Accept": "application/json"}


def expect_raises(fn: Callable[[], Any], exc_type, status: int):
    try:
        result = fn()
    except exc_type as exc:
        assert exc.status_code == status, f"expected HTTP {status}, got {exc.status_code}: {exc}"
        return exc
    except errors.MistralError as exc:
        raise AssertionError(
            f"expected {exc_type.__name__} {status}, got {type(exc).__name__} "
            f"{exc.status_code}: {exc}"
        ) from exc
    raise AssertionError(f"expected {exc_type.__name__} {status}, call succeeded with {result!r}")


def expect_sdk_error(fn: Callable[[], Any], status: int) -> "errors.SDKError":
    return expect_raises(fn, errors.SDKError, status)


def pin_no_proxy() -> None:
    """Never let a proxy setting send 127.0.0.1 traffic elsewhere."""
    for var in ("NO_PROXY", "no_proxy"):
        os.environ[var] = ",".join(filter(None, [os.environ.get(var), LOOPBACK, "localhost"]))


# --------------------------------------------------------------------------------------------
# upstream processes (MCP server fixtures)
# --------------------------------------------------------------------------------------------


def free_port() -> int:
    """An ephemeral port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def listening_addresses(port: int) -> List[str]:
    """Local addresses with a TCP socket in LISTEN state on `port` (from /proc/net/tcp{,6})."""
    found: List[str] = []
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        try:
            with open(table, encoding="ascii") as fh:
                rows = fh.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if len(cols) < 4 or cols[3] != "0A":  # 0A = LISTEN
                continue
            addr_hex, port_hex = cols[1].split(":")
            if int(port_hex, 16) != port:
                continue
            if width == 8:
                raw = bytes.fromhex(addr_hex)[::-1]
                found.append(socket.inet_ntop(socket.AF_INET, raw))
            else:
                raw = b"".join(bytes.fromhex(addr_hex[i:i + 8])[::-1] for i in range(0, 32, 8))
                found.append(socket.inet_ntop(socket.AF_INET6, raw))
    return found


class Upstream:
    """A child process serving MCP on 127.0.0.1:<port>; output captured to a file."""

    def __init__(self, name: str, argv: Sequence[str], port: int, env: Optional[Mapping[str, str]] = None,
                 cwd: Optional[str] = None):
        self.name = name
        self.argv = list(argv)
        self.port = port
        self.env = dict(os.environ if env is None else env)
        self.cwd = cwd
        self.proc: Optional[subprocess.Popen] = None
        self._log_fd, self.log_path = tempfile.mkstemp(prefix=f"interop-{name}-", suffix=".log")

    def launch(self) -> "Upstream":
        """Start the process without waiting (see `wait_ready`)."""
        self.proc = subprocess.Popen(
            self.argv, env=self.env, cwd=self.cwd, stdin=subprocess.DEVNULL,
            stdout=self._log_fd, stderr=subprocess.STDOUT,
        )
        return self

    def start(self, timeout: float = STARTUP_TIMEOUT_S) -> "Upstream":
        self.launch()
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        """Poll until the port accepts TCP connections (bounded); fail fast if the process exits."""
        deadline = time.monotonic() + timeout
        delay = 0.02
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with status {self.proc.returncode} before "
                                   f"listening on {LOOPBACK}:{self.port}; output:\n{self.output()}")
            try:
                with socket.create_connection((LOOPBACK, self.port), timeout=1.0):
                    return
            except OSError:
                pass
            if time.monotonic() >= deadline:
                raise RuntimeError(f"{self.name} not listening on {LOOPBACK}:{self.port} after "
                                   f"{timeout:.0f}s; output:\n{self.output()}")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.25)

    def output(self) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as fh:
                return fh.read()
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        try:
            os.close(self._log_fd)
        except OSError:
            pass
        try:
            os.unlink(self.log_path)
        except OSError:
            pass


# --------------------------------------------------------------------------------------------
# shared main
# --------------------------------------------------------------------------------------------


def parse_bin(description: str) -> str:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--bin", default=os.environ.get("SWITCHBOARD_BIN"),
                        help="path to the switchboard binary (default: $SWITCHBOARD_BIN)")
    args = parser.parse_args()
    if not args.bin:
        parser.error("--bin (or SWITCHBOARD_BIN) is required")
    return os.path.abspath(args.bin)


def print_gateway_tail(gw: Gateway, lines: int = 60) -> None:
    out = gw.output()
    tail = "\n".join(out.splitlines()[-lines:])
    print(f"--- gateway output (last {lines} lines) ---\n{tail}\n--- end gateway output ---", file=sys.stderr)


def main_with_gateway(description: str, run_checks: Callable[[Gateway], None],
                      extra_env: Optional[Mapping[str, str]] = None) -> None:
    """Parse --bin, start the gateway (one check), run `run_checks(gw)`, stop, summarize, exit."""
    binary = parse_bin(description)
    pin_no_proxy()
    gw = Gateway(binary, extra_env=extra_env)
    try:
        started = check("gateway starts and logs 'switchboard listening' (json)", gw.start)
        if started:
            try:
                run_checks(gw)
            except Exception as exc:  # noqa: BLE001 - a bug in the harness itself
                record_abort(exc)
    finally:
        gw.stop()
    if VERBOSE or (RESULTS and not all(RESULTS)):
        print_gateway_tail(gw)
    summary_and_exit()
