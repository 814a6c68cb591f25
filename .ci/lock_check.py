"""Compare what a virtual environment holds with the lock files: every package pinned, at its version.

    python .ci/lock_check.py requirements.lock ...           exit 1 and list every difference
    python .ci/lock_check.py --extras requirements.lock ...  print installed packages no lock names

Run by `make install` (after installing) and by tests/test_lock.py; it reads `pip freeze --all` of
the Python that runs it, so pip and setuptools count too.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?(?:==|\s+@\s+)([^\s;\\]+)")


def normalize(name: str) -> str:
    """PEP 503 names: `Foo_Bar.baz` and `foo-bar-baz` are one package."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(text: str) -> dict[str, str]:
    """name -> version for every `name==version` line of a lock or `pip freeze` output."""
    found = {}
    for line in text.splitlines():
        match = PIN.match(line.strip())
        if match:
            found[normalize(match.group(1))] = match.group(2)
    return found


def differences(installed: dict[str, str], locked: dict[str, str]) -> list[str]:
    """One line per package that is unpinned, pinned at another version, or locked but missing."""
    lines = []
    for name, version in sorted(installed.items()):
        if name not in locked:
            lines.append(f"{name}=={version} is installed but no lock file pins it")
        elif locked[name] != version:
            lines.append(f"{name}=={version} is installed; the lock pins {locked[name]}")
    lines += [f"{name}=={version} is locked but not installed"
              for name, version in sorted(locked.items()) if name not in installed]
    return lines


def installed_pins() -> dict[str, str]:
    freeze = subprocess.run([sys.executable, "-m", "pip", "freeze", "--all", "--disable-pip-version-check"],
                            capture_output=True, text=True, check=True).stdout
    return pins(freeze)


def main(argv: list[str]) -> int:
    extras_only = argv[:1] == ["--extras"]
    locks = argv[1:] if extras_only else argv
    if not locks:
        print(__doc__, file=sys.stderr)
        return 2
    locked: dict[str, str] = {}
    for path in locks:
        locked.update(pins(Path(path).read_text(encoding="utf-8")))
    installed = installed_pins()
    if extras_only:
        print(" ".join(sorted(set(installed) - set(locked))))
        return 0
    problems = differences(installed, locked)
    for line in problems:
        print(f"lock check: {line}", file=sys.stderr)
    if problems:
        print("lock check: the environment differs from the locks; `make clean install` rebuilds it, "
              "`make lock` changes the locks on purpose", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
