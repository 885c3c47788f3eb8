"""Install the real clients the compatibility suite drives, each in an environment of its own.

    python3 compat/install.py            every client (Python venvs, then the npm packages)
    python3 compat/install.py ollama js  only those

Python clients: one venv per client under ``.compat/<client>/`` (git-ignored), installed from the
pinned file ``compat/python/<client>.txt``; never the app's ``.venv``, so a client's dependencies
cannot mask or break Hydra's. JavaScript: ``npm ci`` in ``compat/js`` from its lock file.

Idempotent: an environment whose stamp matches its requirement file is left alone, so a second
run costs a second. Each install prints what it does and how long it took; pip's and npm's own
output goes to ``.compat/logs/<client>.log``, whose tail is shown when an install fails.
"""
from __future__ import annotations

import hashlib
import subprocess
import sys
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PINS = ROOT / "compat" / "python"
JS = ROOT / "compat" / "js"
ENVS = ROOT / ".compat"
LOGS = ENVS / "logs"
PYTHON_CLIENTS = tuple(sorted(p.stem for p in PINS.glob("*.txt")))


class InstallError(RuntimeError):
    pass


def env_python(client: str) -> Path:
    return ENVS / client / "bin" / "python"


def _digest(*files: Path) -> str:
    return hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()


PROGRESS_EVERY_S = 20.0


def _run(cmd: list[str], log: Path, what: str, cwd: Path = ROOT) -> None:
    """Run one install step with its output in ``log``, a progress line every 20 s (pip's packages
    collected so far); on failure, the log's tail and what to try."""
    started = last = time.monotonic()
    collected = 0
    with log.open("a") as out:
        out.write(f"\n$ {' '.join(cmd)}\n")
        out.flush()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            out.write(line)
            collected += line.startswith("Collecting ")
            if time.monotonic() - last >= PROGRESS_EVERY_S:
                last = time.monotonic()
                step = "installing" if line.startswith(("Installing", "  ")) else "resolving and downloading"
                print(f"\n    ... {what}: {collected} packages collected, {step}, {last - started:.0f} s",
                      end="", flush=True)
        returncode = proc.wait()
    if returncode != 0:
        tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-25:])
        raise InstallError(f"{what} failed (exit {returncode}); the end of {log}:\n{tail}\n"
                           f"Check that the package registry is reachable, then rerun `make compat-setup` "
                           f"(or delete .compat/ to start clean).")


def install_python(client: str) -> bool:
    """Create ``.compat/<client>`` and install its pinned requirements; False when already up to date."""
    pins = PINS / f"{client}.txt"
    if not pins.exists():
        raise InstallError(f"no pinned requirements for {client!r}: expected {pins}")
    stamp = ENVS / client / ".installed"
    digest = _digest(pins)
    if stamp.exists() and stamp.read_text() == digest and env_python(client).exists():
        return False
    log = LOGS / f"{client}.log"
    if not env_python(client).exists():
        venv.create(ENVS / client, with_pip=True)
    _run([str(env_python(client)), "-m", "pip", "install", "--progress-bar", "off", "-r", str(pins)], log,
         f"installing {client} into .compat/{client}")
    stamp.write_text(digest)
    return True


def install_js() -> bool:
    lock = JS / "package-lock.json"
    stamp = JS / "node_modules" / ".hydra-installed"
    digest = _digest(JS / "package.json", lock)
    if stamp.exists() and stamp.read_text() == digest:
        return False
    _run(["npm", "ci", "--no-audit", "--no-fund"], LOGS / "js.log", "npm ci in compat/js", cwd=JS)
    stamp.write_text(digest)
    return True


def main(argv: list[str]) -> int:
    LOGS.mkdir(parents=True, exist_ok=True)
    wanted = argv or [*PYTHON_CLIENTS, "js"]
    unknown = [w for w in wanted if w not in (*PYTHON_CLIENTS, "js")]
    if unknown:
        print(f"unknown client(s) {', '.join(unknown)}; known: {', '.join((*PYTHON_CLIENTS, 'js'))}", file=sys.stderr)
        return 2
    total = time.monotonic()
    for i, client in enumerate(wanted, 1):
        where = "compat/js (npm ci)" if client == "js" else f".compat/{client}"
        print(f"[{i}/{len(wanted)}] {client}: {where} ...", end=" ", flush=True)
        start = time.monotonic()
        try:
            changed = install_js() if client == "js" else install_python(client)
        except InstallError as exc:
            print("FAILED", flush=True)
            print(exc, file=sys.stderr)
            return 1
        print(f"installed in {time.monotonic() - start:.0f} s" if changed else "up to date", flush=True)
    print(f"compat clients ready ({time.monotonic() - total:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
